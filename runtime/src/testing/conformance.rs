//! The store conformance suite: the guarantees every [`EventStore`] gives, written once
//! and run against every backend (memory, SQLite, PostgreSQL, and yours).
//!
//! Each check takes a store that is empty when the check starts and panics with a
//! message naming the broken guarantee. [`run_contract`] runs the single-writer checks
//! ([`commands_run_once`] among them); [`conflict_storm`], [`follower_sees_every_event`],
//! [`filtered_follower_sees_every_event`] and [`concurrent_commands_run_once`] race many
//! writers.
//!
//! Among the single-writer checks, [`accepted_values_read_back`], [`refused_snapshots`]
//! and [`repository_reads_back_what_it_executes`] hold a backend to the rule that what
//! it accepts reads back equal: it must check the [limits] before
//! writing (call [`check_append`](crate::store::limits::check_append) and
//! [`check_snapshot`](crate::store::limits::check_snapshot) first, as factum's stores do).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use factum::store::MemoryStore;
//! use factum::testing::conformance;
//!
//! conformance::run_contract(MemoryStore::new).await;
//! # }
//! ```

mod application;
mod commands;
mod decisions;
pub mod process;
pub mod read_model;
mod repository;
pub mod shop;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use crate::store::limits::{self, Limit};
use crate::store::{CommandRecord, EventStore, ExpectedVersion, StoreError, VisitError};

pub use application::application_routes_commands;
pub use commands::{commands_run_once, concurrent_commands_run_once};
pub use decisions::{
    a_condition_fails_only_on_a_matching_event_after_its_position,
    idempotency_comes_before_the_condition, last_seat_race, queries_match_names_and_all_tags,
    run_decisions,
};
pub use repository::{
    Never, Note, Notebook, NotebookCommand, NotebookEvent, Noted,
    repository_authorizes_before_deciding, repository_reads_back_what_it_executes,
    repository_runs_a_command_once,
};

/// Runs every single-writer check, each on a fresh store from `fresh_store`.
pub async fn run_contract<S, F, Fut>(mut fresh_store: F)
where
    S: EventStore + 'static,
    F: FnMut() -> Fut,
    Fut: IntoStore<S>,
{
    atomic_batches(&fresh_store().into_store().await).await;
    expected_versions(&fresh_store().into_store().await).await;
    idempotent_re_append(&fresh_store().into_store().await).await;
    reading_ranges_and_all(&fresh_store().into_store().await).await;
    visiting_streams(&fresh_store().into_store().await).await;
    metadata_round_trip(&fresh_store().into_store().await).await;
    tags_read_back(&fresh_store().into_store().await).await;
    large_payloads(&fresh_store().into_store().await).await;
    hostile_stream_ids(&fresh_store().into_store().await).await;
    many_streams(&fresh_store().into_store().await).await;
    snapshots(&fresh_store().into_store().await).await;
    filtered_reads(&fresh_store().into_store().await).await;
    head_of_the_log(&fresh_store().into_store().await).await;
    waiting_for_events(&fresh_store().into_store().await).await;
    accepted_values_read_back(&fresh_store().into_store().await).await;
    refused_snapshots(&fresh_store().into_store().await).await;
    commands_run_once(&fresh_store().into_store().await).await;
    repository_reads_back_what_it_executes(fresh_store().into_store().await).await;
    repository_authorizes_before_deciding(fresh_store().into_store().await).await;
    repository_runs_a_command_once(fresh_store().into_store().await).await;
    application_routes_commands(fresh_store().into_store().await).await;
}

/// What a store factory returns: a store, or a future of one.
pub trait IntoStore<S> {
    /// Resolves to the store.
    fn into_store(self) -> impl Future<Output = S>;
}

impl<S: EventStore> IntoStore<S> for S {
    async fn into_store(self) -> S {
        self
    }
}

/// A future of a store (for backends that connect asynchronously).
pub struct Connecting<Fut>(pub Fut);

impl<S: EventStore, Fut: Future<Output = S>> IntoStore<S> for Connecting<Fut> {
    async fn into_store(self) -> S {
        self.0.await
    }
}

/// A new event of type "Tick" whose payload is `{"n": n}`.
pub fn tick(n: u64) -> NewEvent {
    NewEvent::new("Tick", 1, payload(&json!({ "n": n })), Metadata::default())
}

fn ticks(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(tick).collect()
}

fn payload(value: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a JSON value serialises")
}

async fn all_events<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(0, usize::MAX).await.expect("read_all")
}

async fn stream_events<S: EventStore>(store: &S, stream_id: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream_id, 1, usize::MAX)
        .await
        .expect("read_stream")
}

/// An append is all or nothing: a batch that fails part way (here: its fifth event
/// re-uses the id of an event stored in another stream) writes none of its events, and
/// the stream stays as it was.
pub async fn atomic_batches<S: EventStore>(store: &S) {
    store
        .append("atomic", "T", ExpectedVersion::NoStream, ticks(0..3))
        .await
        .expect("a first batch of three is stored");
    let elsewhere = tick(100);
    store
        .append(
            "atomic-other",
            "T",
            ExpectedVersion::NoStream,
            vec![elsewhere.clone()],
        )
        .await
        .expect("an event of another stream is stored");
    let mut batch = ticks(3..8);
    batch[4].event_id = elsewhere.event_id;
    let refused = store
        .append("atomic", "T", ExpectedVersion::Exact(3), batch)
        .await;
    assert!(
        matches!(refused, Err(StoreError::DuplicateEventId { .. })),
        "a batch re-using a stored event id must be refused with DuplicateEventId, got {refused:?}"
    );
    assert_eq!(
        stream_events(store, "atomic").await.len(),
        3,
        "a refused batch must write none of its events"
    );
    assert_eq!(
        store.stream_version("atomic").await.expect("version"),
        Some(3)
    );
    let outcome = store
        .append("atomic", "T", ExpectedVersion::Exact(3), ticks(3..103))
        .await
        .expect("a batch of 100 is stored");
    assert_eq!((outcome.stream_version, outcome.written), (103, true));
    let versions: Vec<u64> = stream_events(store, "atomic")
        .await
        .iter()
        .map(|event| event.stream_version)
        .collect();
    assert_eq!(
        versions,
        (1..=103).collect::<Vec<_>>(),
        "versions are gapless from 1"
    );
    assert!(
        matches!(
            store
                .append("atomic", "T", ExpectedVersion::Any, vec![])
                .await,
            Err(StoreError::EmptyAppend { .. })
        ),
        "an empty append is refused"
    );
}

/// Expected versions: any / no stream / stream exists / exact. A wrong expectation is a
/// typed conflict that names the actual version and writes nothing.
pub async fn expected_versions<S: EventStore>(store: &S) {
    let conflict = |result: Result<_, StoreError>, actual: Option<u64>, what: &str| match result {
        Err(StoreError::Conflict {
            actual: found,
            stream_id,
            ..
        }) => {
            assert_eq!(
                found, actual,
                "{what}: the conflict names the actual version"
            );
            assert_eq!(stream_id, "expect", "{what}: the conflict names the stream");
        }
        other => panic!("{what}: expected a conflict, got {other:?}"),
    };
    conflict(
        store
            .append("expect", "T", ExpectedVersion::StreamExists, ticks(0..1))
            .await,
        None,
        "StreamExists on a missing stream",
    );
    conflict(
        store
            .append("expect", "T", ExpectedVersion::Exact(0), ticks(0..1))
            .await,
        None,
        "Exact(0) on a missing stream",
    );
    assert!(
        all_events(store).await.is_empty(),
        "conflicts write nothing"
    );
    store
        .append("expect", "T", ExpectedVersion::NoStream, ticks(0..2))
        .await
        .expect("NoStream on a missing stream");
    conflict(
        store
            .append("expect", "T", ExpectedVersion::NoStream, ticks(2..3))
            .await,
        Some(2),
        "NoStream on an existing stream",
    );
    conflict(
        store
            .append("expect", "T", ExpectedVersion::Exact(1), ticks(2..3))
            .await,
        Some(2),
        "a stale Exact",
    );
    conflict(
        store
            .append("expect", "T", ExpectedVersion::Exact(3), ticks(2..3))
            .await,
        Some(2),
        "a future Exact",
    );
    assert_eq!(all_events(store).await.len(), 2, "conflicts write nothing");
    for expected in [
        ExpectedVersion::Exact(2),
        ExpectedVersion::StreamExists,
        ExpectedVersion::Any,
    ] {
        store
            .append("expect", "T", expected, ticks(10..11))
            .await
            .unwrap_or_else(|error| panic!("{expected:?} must succeed: {error}"));
    }
    store
        .append("expect-any", "T", ExpectedVersion::Any, ticks(0..1))
        .await
        .expect("Any creates a stream");
    assert_eq!(
        store.stream_version("expect").await.expect("version"),
        Some(5)
    );
    assert_eq!(
        store.stream_version("missing").await.expect("version"),
        None
    );
    let mismatch = store
        .append("expect", "U", ExpectedVersion::Any, ticks(20..21))
        .await;
    assert!(
        matches!(mismatch, Err(StoreError::StreamTypeMismatch { .. })),
        "appending with another stream type is refused, got {mismatch:?}"
    );
}

/// Re-appending the same batch (same event ids, same expectation) succeeds without
/// writing twice; re-using stored ids in another batch is refused.
pub async fn idempotent_re_append<S: EventStore>(store: &S) {
    let batch = ticks(0..4);
    let first = store
        .append("idem", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("first append");
    let again = store
        .append("idem", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("re-appending the same batch succeeds");
    assert!(
        !again.written,
        "a re-append reports that nothing was written"
    );
    assert_eq!(
        (again.stream_version, again.last_position),
        (first.stream_version, first.last_position),
        "a re-append reports the original outcome"
    );
    assert_eq!(
        all_events(store).await.len(),
        4,
        "a re-append writes nothing"
    );
    // The batch created the stream; `Exact(0)` never matches a missing stream, so this is
    // not the same append again.
    let other_expectation = store
        .append("idem", "T", ExpectedVersion::Exact(0), batch.clone())
        .await;
    assert!(
        matches!(other_expectation, Err(StoreError::DuplicateEventId { .. })),
        "re-appending with an expectation the first append would not have met is refused, got {other_expectation:?}"
    );
    let mut mixed = ticks(4..5);
    mixed.push(batch[0].clone());
    let refused = store.append("idem", "T", ExpectedVersion::Any, mixed).await;
    assert!(
        matches!(refused, Err(StoreError::DuplicateEventId { .. })),
        "a stored id inside another batch is refused, got {refused:?}"
    );
    let elsewhere = store
        .append("other", "T", ExpectedVersion::Any, vec![batch[2].clone()])
        .await;
    assert!(
        matches!(elsewhere, Err(StoreError::DuplicateEventId { .. })),
        "a stored id on another stream is refused, got {elsewhere:?}"
    );
    assert_eq!(
        all_events(store).await.len(),
        4,
        "refused batches write nothing"
    );
}

/// Streams read from any version with a limit; "all" reads after any position, in
/// commit order, with strictly increasing positions.
pub async fn reading_ranges_and_all<S: EventStore>(store: &S) {
    store
        .append("a", "T", ExpectedVersion::NoStream, ticks(0..3))
        .await
        .expect("a");
    store
        .append("b", "T", ExpectedVersion::NoStream, ticks(3..5))
        .await
        .expect("b");
    store
        .append("a", "T", ExpectedVersion::Exact(3), ticks(5..7))
        .await
        .expect("a");

    let range = store.read_stream("a", 2, 3).await.expect("range");
    assert_eq!(
        range.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [2, 3, 4],
        "read_stream(from 2, limit 3)"
    );
    assert!(
        range
            .iter()
            .all(|e| e.stream_id == "a" && e.stream_type == "T")
    );
    assert!(
        store
            .read_stream("a", 6, 10)
            .await
            .expect("past the end")
            .is_empty()
    );
    assert!(
        store
            .read_stream("none", 1, 10)
            .await
            .expect("missing")
            .is_empty()
    );

    let all = all_events(store).await;
    let order: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e.stream_id.clone(), e.stream_version))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
        ("a", 4),
        ("a", 5),
    ]
    .into_iter()
    .map(|(s, v)| (s.to_owned(), v))
    .collect();
    assert_eq!(order, expected, "read_all is in commit order");
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "positions strictly increase"
    );
    let payloads: Vec<&str> = all.iter().map(|e| e.payload.get()).collect();
    assert_eq!(payloads[5], r#"{"n":5}"#, "payloads read back verbatim");

    let after = all[2].position;
    let tail = store.read_all(after, 3).await.expect("read_all after");
    assert_eq!(
        tail.iter().map(|e| e.position).collect::<Vec<_>>(),
        all[3..6].iter().map(|e| e.position).collect::<Vec<_>>(),
        "read_all(after, limit) continues right after `after`"
    );
    let last = all[6].position;
    assert!(
        store
            .read_all(last, 10)
            .await
            .expect("at the end")
            .is_empty()
    );
}

/// Visiting a stream lends every event from a version on, in order, and stops at the
/// visitor's first error; a replay of it sees the same.
pub async fn visiting_streams<S: EventStore>(store: &S) {
    store
        .append("visit", "T", ExpectedVersion::NoStream, ticks(0..2100))
        .await
        .expect("a long stream");
    let mut seen = Vec::new();
    store
        .for_each_in_stream("visit", 1000, |event| {
            seen.push(event.stream_version);
            Ok::<_, ()>(())
        })
        .await
        .expect("visit");
    assert_eq!(
        seen,
        (1000..=2100).collect::<Vec<_>>(),
        "visits every event from 1000 on"
    );
    let mut count = 0;
    let stopped = store
        .for_each_in_stream("visit", 1, |_| {
            count += 1;
            if count == 1500 { Err("stop") } else { Ok(()) }
        })
        .await;
    assert!(matches!(stopped, Err(VisitError::Visitor("stop"))));
    assert_eq!(count, 1500, "visiting stops at the first error");

    // A replay sees what a visit sees of each event, and stops the same way.
    let mut visited = Vec::new();
    store
        .for_each_in_stream("visit", 1000, |event| {
            visited.push((
                event.stream_version,
                event.position,
                event.name.clone(),
                event.payload.get().to_owned(),
            ));
            Ok::<_, ()>(())
        })
        .await
        .expect("visit");
    let mut replayed = Vec::new();
    store
        .replay_stream("visit", 1000, |event| {
            assert_eq!(event.stream_id, "visit");
            replayed.push((
                event.stream_version,
                event.position,
                event.name.to_owned(),
                event.payload.to_owned(),
            ));
            Ok::<_, ()>(())
        })
        .await
        .expect("replay");
    assert_eq!(replayed, visited, "a replay sees what a visit sees");
    let mut count = 0;
    let stopped = store
        .replay_stream("visit", 1, |_| {
            count += 1;
            if count == 1500 { Err("stop") } else { Ok(()) }
        })
        .await;
    assert!(matches!(stopped, Err(VisitError::Visitor("stop"))));
    assert_eq!(count, 1500, "a replay stops at the first error");
}

/// Ids, timestamps (to the microsecond), names, versions and every metadata field come
/// back as they were appended.
pub async fn metadata_round_trip<S: EventStore>(store: &S) {
    let mut event = NewEvent::new(
        "Übergabe erfolgt",
        7,
        payload(&json!({ "nested": { "list": [1, 2.5, null, "x"], "ok": true } })),
        Metadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: Some(Uuid::now_v7()),
            actor: Some("zoë@example.org".into()),
            actor_kind: Some("care_coordinator".into()),
            tenant: Some("clinic-7".into()),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            extra: BTreeMap::from([
                ("tenant".to_owned(), json!("acme")),
                ("retries".to_owned(), json!(3)),
                ("tags".to_owned(), json!(["a", "b"])),
            ]),
        },
    );
    event.timestamp = Utc
        .with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
        .single()
        .expect("a valid date")
        + chrono::TimeDelta::microseconds(123_456);
    let bare = tick(1);
    store
        .append(
            "meta",
            "Order",
            ExpectedVersion::NoStream,
            vec![event.clone(), bare.clone()],
        )
        .await
        .expect("append");
    let read = stream_events(store, "meta").await;
    let first = &read[0];
    assert_eq!(first.event_id, event.event_id, "event id");
    assert_eq!(first.name, event.name, "name");
    assert_eq!(first.schema_version, 7, "schema version");
    assert_eq!(
        first.timestamp, event.timestamp,
        "timestamp to the microsecond"
    );
    assert_eq!(first.metadata, event.metadata, "metadata");
    assert_eq!(first.stream_type, "Order", "stream type");
    let reparsed: serde_json::Value = serde_json::from_str(first.payload.get()).expect("JSON");
    assert_eq!(
        reparsed,
        json!({ "nested": { "list": [1, 2.5, null, "x"], "ok": true } })
    );
    assert_eq!(read[1].metadata, Metadata::default(), "empty metadata");
    assert_eq!(read[1].event_id, bare.event_id);
}

/// An event's tags read back as a set (each once, sorted), in every read, whether an
/// append or a command's append wrote them; an untagged event beside them has none.
pub async fn tags_read_back<S: EventStore>(store: &S) {
    let tag = |key: &str, value: &str| crate::tag::Tag::new(key, value);
    let tagged = tick(1).with_tags([
        tag("student", "s-2"),
        tag("course", "c:1"),
        tag("student", "s-2"),
    ]);
    store
        .append(
            "tagged",
            "Course",
            ExpectedVersion::NoStream,
            vec![tick(0), tagged],
        )
        .await
        .expect("a tagged append");
    let read = stream_events(store, "tagged").await;
    assert!(read[0].tags.is_empty(), "an untagged event has no tags");
    let expected = [tag("course", "c:1"), tag("student", "s-2")];
    assert_eq!(read[1].tags, expected, "each tag once, sorted");
    assert_eq!(all_events(store).await[1].tags, expected, "read_all");
    let mut visited = Vec::new();
    store
        .for_each_in_stream("tagged", 1, |event| {
            visited.push(event.tags.clone());
            Ok::<_, ()>(())
        })
        .await
        .expect("a visit");
    assert_eq!(
        visited,
        [Vec::new(), expected.to_vec()],
        "for_each_in_stream"
    );

    let command = CommandRecord::new(Uuid::now_v7(), "tagged");
    store
        .append_command(
            "tagged",
            "Course",
            ExpectedVersion::Exact(2),
            vec![tick(2).with_tags([tag("course", "c:2")])],
            command,
        )
        .await
        .expect("a command's tagged append");
    assert_eq!(
        stream_events(store, "tagged").await[2].tags,
        [tag("course", "c:2")],
        "a command's event"
    );
}

/// Payloads of several megabytes are stored and read back whole.
pub async fn large_payloads<S: EventStore>(store: &S) {
    let big = "ä€😀x".repeat(300_000);
    let event = NewEvent::new(
        "Big",
        1,
        payload(&json!({ "text": big })),
        Metadata::default(),
    );
    let expected = event.payload.get().to_owned();
    store
        .append("large", "T", ExpectedVersion::NoStream, vec![event])
        .await
        .expect("a 3 MB payload is stored");
    let read = stream_events(store, "large").await;
    assert_eq!(
        read[0].payload.get().len(),
        expected.len(),
        "the payload length"
    );
    assert!(
        read[0].payload.get() == expected,
        "the payload reads back whole"
    );
}

/// Stream ids are data: quotes, SQL text, unicode and long ids are stored as given.
pub async fn hostile_stream_ids<S: EventStore>(store: &S) {
    let ids = [
        "O'Brien",
        "\"quoted\"",
        "'; DROP TABLE events; --",
        "Robert'); DELETE FROM streams WHERE ('1' = '1",
        "%_ wildcard\\escape",
        "日本語-ストリーム",
        "emoji-🦀-stream",
        "tab\tand\nnewline",
        &"long".repeat(200),
    ];
    for (index, id) in ids.iter().enumerate() {
        store
            .append(id, "T", ExpectedVersion::NoStream, ticks(0..2))
            .await
            .unwrap_or_else(|error| panic!("stream id {id:?}: {error}"));
        let read = stream_events(store, id).await;
        assert_eq!(read.len(), 2, "stream id {id:?} reads its own events");
        assert!(
            read.iter().all(|e| e.stream_id == *id),
            "stream id {id:?} round-trips"
        );
        assert_eq!(store.stream_version(id).await.expect("version"), Some(2));
        assert_eq!(
            all_events(store).await.len(),
            2 * (index + 1),
            "no other stream was touched"
        );
    }
    assert!(
        stream_events(store, "%").await.is_empty() && stream_events(store, "_").await.is_empty(),
        "stream ids are not patterns"
    );
}

/// Many streams stay separate.
pub async fn many_streams<S: EventStore>(store: &S) {
    for stream in 0..500u64 {
        store
            .append(
                &format!("many-{stream}"),
                "T",
                ExpectedVersion::NoStream,
                ticks(stream..stream + 1 + stream % 3),
            )
            .await
            .expect("append");
    }
    for stream in [0u64, 1, 2, 250, 499] {
        let read = stream_events(store, &format!("many-{stream}")).await;
        assert_eq!(read.len() as u64, 1 + stream % 3, "stream many-{stream}");
        assert_eq!(read[0].payload.get(), format!(r#"{{"n":{stream}}}"#));
    }
    let expected: usize = (0..500u64).map(|s| 1 + (s % 3) as usize).sum();
    assert_eq!(all_events(store).await.len(), expected);
}

/// The latest snapshot of a stream is saved, replaced and loaded as it was.
pub async fn snapshots<S: EventStore>(store: &S) {
    assert!(store.load_snapshot("snap").await.expect("load").is_none());
    let snapshot = |version: u64, schema_version: u32| Snapshot {
        stream_id: "snap".into(),
        stream_version: version,
        schema_version,
        state: payload(&json!({ "version": version, "name": "Zoë" })),
        taken_at: Utc
            .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
            .single()
            .expect("a valid date"),
    };
    store.save_snapshot(snapshot(10, 1)).await.expect("save");
    store.save_snapshot(snapshot(20, 2)).await.expect("replace");
    let loaded = store
        .load_snapshot("snap")
        .await
        .expect("load")
        .expect("a snapshot");
    assert_eq!((loaded.stream_version, loaded.schema_version), (20, 2));
    assert_eq!(loaded.state.get(), snapshot(20, 2).state.get());
    assert_eq!(loaded.taken_at, snapshot(20, 2).taken_at);
    assert!(store.load_snapshot("other").await.expect("load").is_none());
}

/// What a [`conflict_storm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormReport {
    /// Appends attempted.
    pub attempts: u64,
    /// Appends that won.
    pub successes: u64,
    /// Appends that lost with a conflict.
    pub conflicts: u64,
}

/// `writers` concurrent writers race on `streams` streams for `attempts` appends in all,
/// each appending one or two events at the version it last read. Afterwards every
/// stream's versions are gapless, no event is lost or duplicated, and every loser got a
/// conflict (any other error fails the check).
pub async fn conflict_storm<S: EventStore + 'static>(
    store: Arc<S>,
    writers: u64,
    streams: u64,
    attempts: u64,
) -> StormReport {
    let per_writer = attempts.div_ceil(writers);
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut won = Vec::new();
            let mut conflicts = 0u64;
            for attempt in 0..per_writer {
                let stream = format!("storm-{}", (writer + attempt) % streams);
                let version = store.stream_version(&stream).await.expect("stream_version");
                let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                let batch = ticks(0..1 + (writer + attempt) % 2);
                let ids: Vec<Uuid> = batch.iter().map(|event| event.event_id).collect();
                match store.append(&stream, "Storm", expected, batch).await {
                    Ok(outcome) => {
                        assert!(outcome.written, "a fresh batch is written");
                        won.extend(ids);
                    }
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(other) => panic!("a losing writer must get a conflict, got: {other}"),
                }
            }
            (won, conflicts)
        });
    }
    let mut won = HashSet::new();
    let mut report = StormReport {
        attempts: per_writer * writers,
        successes: 0,
        conflicts: 0,
    };
    while let Some(result) = tasks.join_next().await {
        let (ids, conflicts) = result.expect("a writer task panicked");
        report.conflicts += conflicts;
        won.extend(ids);
    }
    report.successes = report.attempts - report.conflicts;

    let all = all_events(&*store).await;
    let stored: HashSet<Uuid> = all.iter().map(|event| event.event_id).collect();
    assert_eq!(stored.len(), all.len(), "no event is stored twice");
    assert_eq!(
        stored, won,
        "exactly the winners' events are stored: none lost, none extra"
    );
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "positions increase"
    );
    let mut appends_seen = 0;
    for stream in 0..streams {
        let events = stream_events(&*store, &format!("storm-{stream}")).await;
        let versions: Vec<u64> = events.iter().map(|event| event.stream_version).collect();
        assert_eq!(
            versions,
            (1..=versions.len() as u64).collect::<Vec<_>>(),
            "stream storm-{stream} is gapless"
        );
        appends_seen += events.len();
    }
    assert_eq!(appends_seen, all.len());
    assert!(
        report.conflicts > 0,
        "a storm with {writers} writers on {streams} streams must produce conflicts"
    );
    report
}

/// A follower reads "all" from its last position while `writers` concurrent writers
/// append `events_per_writer` events each (in batches of one to three): it must see every
/// event exactly once, in position order. Returns the number of events it saw.
///
/// Fails (instead of hanging) if the follower has not seen everything within
/// `patience` after the writers finished.
pub async fn follower_sees_every_event<S: EventStore + 'static>(
    store: Arc<S>,
    writers: u64,
    events_per_writer: u64,
    patience: Duration,
) -> usize {
    let writing = Arc::new(AtomicBool::new(true));
    let appended = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        let appended = Arc::clone(&appended);
        tasks.spawn(async move {
            let stream = format!("follow-{writer}");
            let mut ids = Vec::new();
            let mut written = 0;
            while written < events_per_writer {
                let size = (1 + (written + writer) % 3).min(events_per_writer - written);
                let batch = ticks(written..written + size);
                ids.extend(batch.iter().map(|event| event.event_id));
                let expected = match written {
                    0 => ExpectedVersion::NoStream,
                    version => ExpectedVersion::Exact(version),
                };
                store
                    .append(&stream, "Follow", expected, batch)
                    .await
                    .expect("a single writer per stream never conflicts");
                written += size;
                appended.fetch_add(size, Ordering::SeqCst);
            }
            ids
        });
    }
    let follower = {
        let store = Arc::clone(&store);
        let writing = Arc::clone(&writing);
        let total = writers * events_per_writer;
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut last = 0;
            let mut idle_since: Option<Instant> = None;
            while (seen.len() as u64) < total {
                let page = store.read_all(last, 97).await.expect("read_all");
                match page.last() {
                    Some(newest) => {
                        last = newest.position;
                        seen.extend(page);
                        idle_since = None;
                    }
                    None if writing.load(Ordering::SeqCst) => tokio::task::yield_now().await,
                    None => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        assert!(
                            since.elapsed() < patience,
                            "the follower saw {} of {total} events and no more arrive",
                            seen.len()
                        );
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            seen
        })
    };
    let mut appended_ids = HashSet::new();
    while let Some(ids) = tasks.join_next().await {
        appended_ids.extend(ids.expect("a writer task panicked"));
    }
    writing.store(false, Ordering::SeqCst);
    let seen = follower.await.expect("the follower panicked");
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "the follower sees positions in increasing order"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|event| event.event_id).collect();
    assert_eq!(
        seen_ids.len(),
        seen.len(),
        "the follower sees no event twice"
    );
    assert_eq!(
        seen_ids, appended_ids,
        "the follower sees every appended event"
    );
    assert_eq!(appended.load(Ordering::SeqCst) as usize, seen.len());
    let per_stream = seen
        .iter()
        .fold(BTreeMap::<&str, Vec<u64>>::new(), |mut streams, event| {
            streams
                .entry(&event.stream_id)
                .or_default()
                .push(event.stream_version);
            streams
        });
    for (stream, versions) in per_stream {
        assert_eq!(
            versions,
            (1..=versions.len() as u64).collect::<Vec<_>>(),
            "the follower sees {stream} in order"
        );
    }
    seen.len()
}

/// A new event named `name` whose payload is `{"n": n}`.
fn named(name: &str, n: u64) -> NewEvent {
    NewEvent::new(name, 1, payload(&json!({ "n": n })), Metadata::default())
}

/// What identifies a read event, for comparing reads.
fn key(event: &RecordedEvent) -> (Uuid, u64, String, String, u64, String) {
    (
        event.event_id,
        event.position,
        event.name.clone(),
        event.stream_id.clone(),
        event.stream_version,
        event.payload.get().to_owned(),
    )
}

/// The names of [`filtered_reads`]' log, in turn.
const FILTER_NAMES: [&str; 3] = ["Opened", "Renamed", "Closed"];

/// Filtered reads of the whole log return exactly the events with the asked names, in
/// position order, at most `limit` of them; `scanned_to` is the last returned event's
/// position when the page is full, else the log's head (never below `after`), so a
/// follower checkpointing it misses no match.
pub async fn filtered_reads<S: EventStore>(store: &S) {
    let empty = store
        .read_all_filtered(0, 10, &["Opened"])
        .await
        .expect("read_all_filtered on an empty store");
    assert!(empty.events.is_empty(), "an empty store has no events");
    assert_eq!(empty.scanned_to, 0, "an empty store is scanned to 0");
    let beyond = store
        .read_all_filtered(7, 10, &["Opened"])
        .await
        .expect("read_all_filtered past the end");
    assert_eq!(beyond.scanned_to, 7, "scanned_to is never below `after`");

    for (batch, stream) in ["f-1", "f-2", "f-1", "f-3", "f-2", "f-1"]
        .iter()
        .enumerate()
    {
        let size = 1 + batch as u64 % 4;
        let events = (0..size)
            .map(|i| {
                let n = batch as u64 * 10 + i;
                named(FILTER_NAMES[(n % 3) as usize], n)
            })
            .collect();
        store
            .append(stream, "F", ExpectedVersion::Any, events)
            .await
            .expect("append");
    }
    let all = all_events(store).await;
    let head = all.last().expect("events were appended").position;
    let matching = |names: &[&str]| -> Vec<_> {
        all.iter()
            .filter(|event| names.contains(&event.name.as_str()))
            .map(key)
            .collect()
    };

    for names in [
        &["Opened"][..],
        &["Closed", "Opened"],
        &FILTER_NAMES,
        &["Renamed", "Renamed"],
    ] {
        let page = store
            .read_all_filtered(0, 1000, names)
            .await
            .expect("read_all_filtered");
        assert_eq!(
            page.events.iter().map(key).collect::<Vec<_>>(),
            matching(names),
            "read_all_filtered({names:?}) returns exactly the matching events, in order"
        );
        assert_eq!(
            page.scanned_to, head,
            "a page that is not full is scanned to the head"
        );
    }

    let names = ["Opened", "Closed"];
    let wanted = matching(&names);
    let page = store
        .read_all_filtered(0, 3, &names)
        .await
        .expect("a limited read");
    assert_eq!(
        page.events.iter().map(key).collect::<Vec<_>>(),
        wanted[..3],
        "read_all_filtered respects `limit`"
    );
    assert_eq!(
        page.scanned_to, page.events[2].position,
        "a full page is scanned to its last event"
    );

    // Paging with any limit from any position sees every match once.
    for limit in [1, 2, 5] {
        let mut seen = Vec::new();
        let mut checkpoint = 0;
        loop {
            let page = store
                .read_all_filtered(checkpoint, limit, &names)
                .await
                .expect("a page");
            assert!(page.events.len() <= limit, "at most `limit` events");
            assert!(
                page.events
                    .iter()
                    .all(|event| event.position > checkpoint && event.position <= page.scanned_to),
                "a page holds events after `after`, up to `scanned_to`"
            );
            assert!(page.scanned_to >= checkpoint, "scanned_to never goes back");
            let done = page.events.is_empty();
            seen.extend(page.events.iter().map(key));
            checkpoint = page.scanned_to;
            if done {
                break;
            }
        }
        assert_eq!(seen, wanted, "paging by {limit} sees every match once");
        assert_eq!(checkpoint, head, "paging ends at the head");
    }

    let middle = all[all.len() / 2].position;
    let tail = store
        .read_all_filtered(middle, 1000, &names)
        .await
        .expect("a read from the middle");
    assert_eq!(
        tail.events.iter().map(key).collect::<Vec<_>>(),
        wanted
            .iter()
            .filter(|event| event.1 > middle)
            .cloned()
            .collect::<Vec<_>>(),
        "a read after a position starts right after it"
    );

    for (what, names) in [("no match", &["Nothing"][..]), ("no names", &[])] {
        let page = store
            .read_all_filtered(0, 10, names)
            .await
            .expect("a read without matches");
        assert!(page.events.is_empty(), "{what}: no events");
        assert_eq!(page.scanned_to, head, "{what}: scanned to the head");
    }
    let past = store
        .read_all_filtered(head + 5, 10, &names)
        .await
        .expect("a read past the head");
    assert!(past.events.is_empty());
    assert_eq!(
        past.scanned_to,
        head + 5,
        "scanned_to is never below `after`"
    );
}

/// The head is `None` for an empty store, then the newest event's position and
/// timestamp.
pub async fn head_of_the_log<S: EventStore>(store: &S) {
    assert_eq!(
        store.head().await.expect("head"),
        None,
        "an empty store has no head"
    );
    for (stream, range) in [("h-1", 0..3), ("h-2", 3..4), ("h-1", 4..9)] {
        store
            .append(stream, "H", ExpectedVersion::Any, ticks(range))
            .await
            .expect("append");
        let all = all_events(store).await;
        let newest = all.last().expect("events were appended");
        let head = store.head().await.expect("head").expect("a head");
        assert_eq!(
            (head.position, head.timestamp),
            (newest.position, newest.timestamp),
            "the head is the newest event"
        );
    }
}

/// `wait_for_events` returns at once when the log is already past `after`, when an event
/// is appended while it waits, and at its timeout when nothing is appended. The bounds
/// are generous: they check liveness, not speed.
pub async fn waiting_for_events<S: EventStore>(store: &S) {
    const LIVENESS: Duration = Duration::from_secs(10);
    let quiet = tokio::time::timeout(
        LIVENESS,
        store.wait_for_events(0, Duration::from_millis(200)),
    )
    .await
    .expect("waiting on an empty store returns at its timeout");
    quiet.expect("wait_for_events");

    let first = store
        .append("w", "W", ExpectedVersion::NoStream, ticks(0..1))
        .await
        .expect("append");
    tokio::time::timeout(LIVENESS, store.wait_for_events(0, Duration::from_secs(600)))
        .await
        .expect("waiting after a position the log is past returns at once")
        .expect("wait_for_events");

    let head = first.last_position;
    tokio::time::timeout(
        LIVENESS,
        store.wait_for_events(head, Duration::from_millis(200)),
    )
    .await
    .expect("waiting at the head returns at its timeout")
    .expect("wait_for_events");

    // An append while waiting (a concurrent future of this task) wakes the waiter long
    // before its timeout.
    let (woken, appended) = tokio::join!(
        tokio::time::timeout(
            LIVENESS,
            store.wait_for_events(head, Duration::from_secs(600)),
        ),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store
                .append("w", "W", ExpectedVersion::Exact(1), ticks(1..2))
                .await
        }
    );
    appended.expect("append while waiting");
    woken
        .expect("an append wakes a waiting follower")
        .expect("wait_for_events");
}

/// A follower of a name filter checkpoints `scanned_to` and sleeps in `wait_for_events`
/// while `writers` concurrent writers (each in tasks of its own) append
/// `events_per_writer` events each, named `Wanted`, `Unwanted` or `AlsoWanted` in turn,
/// in batches of one to three. It must see every wanted event exactly once, in position
/// order, and no other. Returns the number of events it saw.
///
/// Fails (instead of hanging) if the follower has seen nothing new for `patience` after
/// the writers finished.
pub async fn filtered_follower_sees_every_event<S: EventStore + 'static>(
    store: Arc<S>,
    writers: u64,
    events_per_writer: u64,
    patience: Duration,
) -> usize {
    const NAMES: [&str; 3] = ["Wanted", "Unwanted", "AlsoWanted"];
    const WANTED: [&str; 2] = ["Wanted", "AlsoWanted"];
    let writing = Arc::new(AtomicBool::new(true));
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let stream = format!("filtered-{writer}");
            let mut wanted = Vec::new();
            let mut written = 0;
            while written < events_per_writer {
                let size = (1 + (written + writer) % 3).min(events_per_writer - written);
                let batch: Vec<NewEvent> = (written..written + size)
                    .map(|n| named(NAMES[((n + writer) % 3) as usize], n))
                    .collect();
                wanted.extend(
                    batch
                        .iter()
                        .filter(|event| WANTED.contains(&event.name.as_str()))
                        .map(|event| event.event_id),
                );
                let expected = match written {
                    0 => ExpectedVersion::NoStream,
                    version => ExpectedVersion::Exact(version),
                };
                store
                    .append(&stream, "Filtered", expected, batch)
                    .await
                    .expect("a single writer per stream never conflicts");
                written += size;
            }
            wanted
        });
    }
    let total: u64 = (0..writers)
        .map(|writer| {
            (0..events_per_writer)
                .filter(|n| (n + writer) % 3 != 1)
                .count() as u64
        })
        .sum();
    let follower = {
        let store = Arc::clone(&store);
        let writing = Arc::clone(&writing);
        tokio::spawn(async move {
            let mut seen: Vec<RecordedEvent> = Vec::new();
            let mut checkpoint = 0;
            let mut idle_since: Option<Instant> = None;
            while (seen.len() as u64) < total {
                let page = store
                    .read_all_filtered(checkpoint, 41, &WANTED)
                    .await
                    .expect("read_all_filtered");
                assert!(
                    page.scanned_to >= checkpoint,
                    "the checkpoint never goes back"
                );
                checkpoint = page.scanned_to;
                if page.events.is_empty() {
                    if !writing.load(Ordering::SeqCst) {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        assert!(
                            since.elapsed() < patience,
                            "the follower saw {} of {total} wanted events and no more arrive",
                            seen.len()
                        );
                    }
                    store
                        .wait_for_events(checkpoint, Duration::from_millis(250))
                        .await
                        .expect("wait_for_events");
                } else {
                    idle_since = None;
                    seen.extend(page.events);
                }
            }
            let rest = store
                .read_all_filtered(checkpoint, 41, &WANTED)
                .await
                .expect("read_all_filtered");
            assert!(
                rest.events.is_empty(),
                "nothing is left after every wanted event"
            );
            seen
        })
    };
    let mut wanted_ids = HashSet::new();
    while let Some(ids) = tasks.join_next().await {
        wanted_ids.extend(ids.expect("a writer task panicked"));
    }
    writing.store(false, Ordering::SeqCst);
    let seen = follower.await.expect("the follower panicked");
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "the follower sees positions in increasing order"
    );
    assert!(
        seen.iter()
            .all(|event| WANTED.contains(&event.name.as_str())),
        "the follower sees only the names it asked for"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|event| event.event_id).collect();
    assert_eq!(
        seen_ids.len(),
        seen.len(),
        "the follower sees no event twice"
    );
    assert_eq!(seen_ids, wanted_ids, "the follower sees every wanted event");
    seen.len()
}

/// JSON nested `depth` arrays deep (`0`: a number).
fn nested_array(depth: usize) -> serde_json::Value {
    let mut value = json!(0);
    for _ in 0..depth {
        value = json!([value]);
    }
    value
}

/// The limit an append was refused for, with the field it named; panics on anything else.
fn refusal<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) -> (String, Limit) {
    match result {
        Err(StoreError::ValueRefused {
            stream_id,
            field,
            limit,
        }) => {
            assert!(
                !stream_id.is_empty(),
                "{what}: the refusal names the stream"
            );
            (field, limit)
        }
        other => panic!("{what}: expected StoreError::ValueRefused, got {other:?}"),
    }
}

/// What a store accepts it reads back equal; a value some store could not read back
/// equal (see [`limits`]) is refused with [`StoreError::ValueRefused`] naming the field
/// and the limit, and nothing of its batch is written. Refused values never poison the
/// log: reading it whole still works afterwards.
pub async fn accepted_values_read_back<S: EventStore>(store: &S) {
    let with_extra = |value: serde_json::Value| {
        let mut event = tick(0);
        event.metadata.extra.insert("trace".to_owned(), value);
        event
    };
    let with_payload = |value: serde_json::Value| {
        NewEvent::new(
            "Deep",
            1,
            payload(&json!({ "v": value })),
            Metadata::default(),
        )
    };
    let at = |seconds: i64, nanoseconds: u32| {
        chrono::DateTime::from_timestamp(seconds, nanoseconds).expect("a valid time")
    };
    let timed = |timestamp| {
        let mut event = tick(0);
        event.timestamp = timestamp;
        event
    };

    // Accepted at each limit, and read back equal.
    let mut accepted = vec![
        with_extra(nested_array(limits::MAX_EXTRA_DEPTH)),
        // The payload object is one level, its value the rest.
        with_payload(nested_array(limits::MAX_JSON_DEPTH - 1)),
        timed(at(limits::EARLIEST_TIMESTAMP, 0)),
        timed(at(limits::LATEST_TIMESTAMP, 999_999_000)),
        // A microsecond before the epoch (a store must not round it across the second).
        timed(at(-1, 999_999_000)),
        timed(at(0, 1_000)),
    ];
    accepted.push(NewEvent::new(
        "Übergabe \u{1F980}",
        u32::MAX,
        payload(&json!({ "text": "NUL \u{0} and \u{1F980} in a payload" })),
        Metadata {
            actor: Some("NUL \u{0} in an actor".to_owned()),
            ..Metadata::default()
        },
    ));
    store
        .append("limits", "T", ExpectedVersion::NoStream, accepted.clone())
        .await
        .expect("values within every limit are accepted");
    let read = stream_events(store, "limits").await;
    assert_eq!(read.len(), accepted.len());
    for (index, (stored, sent)) in read.iter().zip(&accepted).enumerate() {
        assert_eq!(stored.event_id, sent.event_id, "event {index}: id");
        assert_eq!(stored.name, sent.name, "event {index}: name");
        assert_eq!(stored.schema_version, sent.schema_version, "event {index}");
        assert_eq!(
            stored.payload.get(),
            sent.payload.get(),
            "event {index}: payload"
        );
        assert_eq!(stored.timestamp, sent.timestamp, "event {index}: timestamp");
        assert_eq!(stored.metadata, sent.metadata, "event {index}: metadata");
    }

    // Refused, naming the field and the limit; nothing of the batch is written.
    // What is refused, the event, the field its refusal names, the limit it breaks.
    type Case = (&'static str, NewEvent, &'static str, fn(&Limit) -> bool);
    let refused_cases: Vec<Case> = vec![
        (
            "metadata.extra nested 126 deep",
            with_extra(nested_array(126)),
            "metadata.extra[\"trace\"]",
            |limit| matches!(limit, Limit::JsonDepth { max, .. } if *max == limits::MAX_EXTRA_DEPTH),
        ),
        (
            "metadata.extra one level too deep",
            with_extra(nested_array(limits::MAX_EXTRA_DEPTH + 1)),
            "metadata.extra[\"trace\"]",
            |limit| matches!(limit, Limit::JsonDepth { .. }),
        ),
        (
            "a payload nested 127 deep",
            with_payload(nested_array(127)),
            "payload",
            |limit| matches!(limit, Limit::JsonDepth { max, .. } if *max == limits::MAX_JSON_DEPTH),
        ),
        (
            "a payload one level too deep",
            with_payload(nested_array(limits::MAX_JSON_DEPTH)),
            "payload",
            |limit| matches!(limit, Limit::JsonDepth { .. }),
        ),
        (
            "a timestamp a nanosecond before the epoch",
            timed(at(-1, 999_999_999)),
            "timestamp",
            |limit| matches!(limit, Limit::SubMicrosecond { .. }),
        ),
        (
            "a leap second",
            timed(
                chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                    .expect("23:59:60.5 is a leap second")
                    .and_utc(),
            ),
            "timestamp",
            |limit| matches!(limit, Limit::LeapSecond { .. }),
        ),
        (
            "the latest time chrono knows",
            timed(chrono::DateTime::<Utc>::MAX_UTC),
            "timestamp",
            |limit| matches!(limit, Limit::TimestampRange { .. }),
        ),
        (
            "the latest time chrono knows, in microseconds",
            timed(chrono::SubsecRound::trunc_subsecs(
                chrono::DateTime::<Utc>::MAX_UTC,
                6,
            )),
            "timestamp",
            |limit| matches!(limit, Limit::TimestampRange { .. }),
        ),
        (
            "the earliest time chrono knows",
            timed(chrono::DateTime::<Utc>::MIN_UTC),
            "timestamp",
            |limit| matches!(limit, Limit::TimestampRange { .. }),
        ),
        (
            "a second after the year 9999",
            timed(at(limits::LATEST_TIMESTAMP + 1, 0)),
            "timestamp",
            |limit| matches!(limit, Limit::TimestampRange { .. }),
        ),
        (
            "an event name with NUL",
            NewEvent::new("Ti\0ck", 1, payload(&json!({})), Metadata::default()),
            "name",
            |limit| matches!(limit, Limit::NulCharacter),
        ),
    ];
    for (what, event, field, is_expected) in refused_cases {
        let batch = vec![tick(1), event];
        let (named, limit) = refusal(
            store
                .append("refused", "T", ExpectedVersion::Any, batch)
                .await,
            what,
        );
        assert!(
            named.contains(field) && named.contains("event 2"),
            "{what}: the refusal names the event and the field {field}, got {named:?}"
        );
        assert!(is_expected(&limit), "{what}: refused for {limit:?}");
    }
    for (what, stream_id, stream_type) in [
        ("a stream id with NUL", "re\0fused", "T"),
        ("a stream type with NUL", "refused", "T\0"),
    ] {
        let (named, limit) = refusal(
            store
                .append(stream_id, stream_type, ExpectedVersion::Any, ticks(0..1))
                .await,
            what,
        );
        assert!(
            named.contains("stream"),
            "{what}: names the field, got {named:?}"
        );
        assert_eq!(limit, Limit::NulCharacter, "{what}");
    }

    // An id repeated inside one batch is its own error: nothing is stored under it.
    let mut repeated = ticks(0..3);
    repeated[2].event_id = repeated[0].event_id;
    let error = store
        .append("refused", "T", ExpectedVersion::Any, repeated.clone())
        .await
        .expect_err("a batch repeating an id is refused");
    assert!(
        matches!(&error, StoreError::RepeatedEventId { event_id, .. } if *event_id == repeated[0].event_id),
        "a repeated id is StoreError::RepeatedEventId, got {error:?}"
    );
    assert!(
        error.to_string().contains("appears twice in the batch"),
        "the message says what happened: {error}"
    );

    assert_eq!(
        store.stream_version("refused").await.expect("version"),
        None,
        "refused batches write nothing"
    );
    let all = all_events(store).await;
    assert_eq!(
        all.len(),
        accepted.len(),
        "the log reads whole after the refusals, and holds only what was accepted"
    );
}

/// Snapshots are held to the same rule: a snapshot some store could not read back equal
/// is refused, and the earlier snapshot stays.
pub async fn refused_snapshots<S: EventStore>(store: &S) {
    let snapshot = |stream_version: u64, state: serde_json::Value| Snapshot {
        stream_id: "snap-limits".to_owned(),
        stream_version,
        schema_version: u32::MAX,
        state: payload(&state),
        taken_at: chrono::DateTime::from_timestamp(-1, 999_999_000).expect("a valid time"),
    };
    let kept = snapshot(limits::MAX_VERSION, nested_array(limits::MAX_JSON_DEPTH));
    store
        .save_snapshot(kept.clone())
        .await
        .expect("a snapshot within every limit is saved");
    let loaded = store
        .load_snapshot("snap-limits")
        .await
        .expect("load")
        .expect("the snapshot is there");
    assert_eq!(loaded.stream_version, limits::MAX_VERSION, "stream_version");
    assert_eq!(loaded.schema_version, u32::MAX, "schema_version");
    assert_eq!(loaded.state.get(), kept.state.get(), "state");
    assert_eq!(loaded.taken_at, kept.taken_at, "taken_at");

    let mut sub_microsecond = snapshot(1, json!({}));
    sub_microsecond.taken_at = chrono::DateTime::from_timestamp(5, 1).expect("a valid time");
    let mut with_nul = snapshot(1, json!({}));
    with_nul.stream_id = "snap\0limits".to_owned();
    for (what, refused, field, expected) in [
        (
            "stream_version u64::MAX",
            snapshot(u64::MAX, json!({})),
            "stream_version",
            Limit::TooLarge {
                value: u64::MAX,
                max: limits::MAX_VERSION,
            },
        ),
        (
            "a state one level too deep",
            snapshot(2, nested_array(limits::MAX_JSON_DEPTH + 1)),
            "state",
            Limit::JsonDepth {
                depth: limits::MAX_JSON_DEPTH + 1,
                max: limits::MAX_JSON_DEPTH,
            },
        ),
        (
            "taken_at a nanosecond past a second",
            sub_microsecond,
            "taken_at",
            Limit::SubMicrosecond {
                timestamp: "1970-01-01T00:00:05.000000001Z".to_owned(),
            },
        ),
        (
            "a stream id with NUL",
            with_nul,
            "stream id",
            Limit::NulCharacter,
        ),
    ] {
        let (named, limit) = refusal(store.save_snapshot(refused).await, what);
        assert!(
            named.contains(field),
            "{what}: names {field}, got {named:?}"
        );
        assert_eq!(limit, expected, "{what}");
    }
    let still = store
        .load_snapshot("snap-limits")
        .await
        .expect("load")
        .expect("the snapshot is there");
    assert_eq!(
        (still.stream_version, still.state.get()),
        (limits::MAX_VERSION, kept.state.get()),
        "a refused snapshot leaves the earlier one"
    );
}
