//! The PostgreSQL store keeps the store contract: atomic, checked appends; gapless stream
//! versions; commit-ordered positions; idempotent re-appends; payloads, timestamps and
//! metadata read back exactly; hostile stream ids; races between writers of one stream
//! end in conflicts, never in backend errors.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::collections::BTreeMap;
use std::sync::Arc;

use factum::envelope::Snapshot;
use factum::prelude::*;
use factum::store::{PostgresStore, VisitError};
use factum::uuid::Uuid;
use postgres_common::{event, events, fresh_store, url};
use serde_json::json;
use serde_json::value::RawValue;

fn conflict(result: Result<factum::store::AppendOutcome, StoreError>) -> Option<u64> {
    match result {
        Err(StoreError::Conflict { actual, .. }) => actual,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn expected_versions_are_checked_and_a_conflict_writes_nothing() {
    let store = fresh_store("t_store_expected").await;
    let outcome = store
        .append("s", "T", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    assert_eq!(
        (outcome.stream_version, outcome.written),
        (2, true),
        "{outcome:?}"
    );
    let first_position = outcome.last_position;

    for (expected, actual) in [
        (ExpectedVersion::NoStream, Some(2)),
        (ExpectedVersion::Exact(1), Some(2)),
        (ExpectedVersion::Exact(3), Some(2)),
        (ExpectedVersion::Exact(u64::MAX), Some(2)),
    ] {
        match store.append("s", "T", expected, events(1)).await {
            Err(StoreError::Conflict {
                stream_id,
                expected: e,
                actual: a,
            }) => assert_eq!((stream_id.as_str(), e, a), ("s", expected, actual)),
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    let missing = store
        .append("missing", "T", ExpectedVersion::StreamExists, events(1))
        .await;
    assert_eq!(conflict(missing), None);
    let missing = store
        .append("missing", "T", ExpectedVersion::Exact(0), events(1))
        .await;
    assert_eq!(conflict(missing), None);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
    assert_eq!(store.stream_version("missing").await.unwrap(), None);

    store
        .append("s", "T", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    store
        .append("s", "T", ExpectedVersion::StreamExists, events(1))
        .await
        .unwrap();
    let outcome = store
        .append("s", "T", ExpectedVersion::Any, events(3))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 7);
    assert!(outcome.last_position > first_position);
    assert_eq!(store.stream_version("s").await.unwrap(), Some(7));

    let stream = store.read_stream("s", 1, 100).await.unwrap();
    let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
    assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(stream.last().unwrap().position, outcome.last_position);
    let tail = store.read_stream("s", 6, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].stream_version, 6);
    assert!(store.read_stream("s", 1, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn re_appending_the_same_batch_is_idempotent_and_reused_ids_are_refused() {
    let store = fresh_store("t_store_idempotent").await;
    let batch = events(3);
    let first = store
        .append("s", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(first.written);
    let again = store
        .append("s", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(
        again,
        factum::store::AppendOutcome {
            written: false,
            ..first
        }
    );
    // Any also matches the original expectation.
    let again = store
        .append("s", "T", ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert!(!again.written);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 3);

    let second = events(2);
    let outcome = store
        .append("s", "T", ExpectedVersion::Exact(3), second.clone())
        .await
        .unwrap();
    let again = store
        .append("s", "T", ExpectedVersion::Exact(3), second.clone())
        .await
        .unwrap();
    assert_eq!((again.stream_version, again.written), (5, false));
    assert_eq!(again.last_position, outcome.last_position);

    let duplicate = |result: Result<_, StoreError>| match result {
        Err(StoreError::DuplicateEventId { event_id, .. }) => event_id,
        other => panic!("expected a duplicate id, got {other:?}"),
    };
    // The same batch with another expectation.
    let id = duplicate(
        store
            .append("s", "T", ExpectedVersion::Exact(4), second.clone())
            .await,
    );
    assert_eq!(id, second[0].event_id);
    // Part of a batch.
    let mut partial = vec![batch[1].clone()];
    partial.push(event(9));
    let id = duplicate(store.append("s", "T", ExpectedVersion::Any, partial).await);
    assert_eq!(id, batch[1].event_id);
    // A stored batch extended by a new event.
    let mut longer = second.clone();
    longer.push(event(9));
    duplicate(
        store
            .append("s", "T", ExpectedVersion::Exact(3), longer)
            .await,
    );
    // The same ids on another stream.
    let id = duplicate(
        store
            .append("other", "T", ExpectedVersion::Any, batch.clone())
            .await,
    );
    assert_eq!(id, batch[0].event_id);
    // An id twice in one batch: its own error, as nothing is stored under it.
    let twice = event(1);
    let repeated = store
        .append(
            "s",
            "T",
            ExpectedVersion::Any,
            vec![twice.clone(), twice.clone()],
        )
        .await;
    assert!(
        matches!(&repeated, Err(StoreError::RepeatedEventId { event_id, .. }) if *event_id == twice.event_id),
        "{repeated:?}"
    );
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 5);
    assert_eq!(store.stream_version("other").await.unwrap(), None);
}

#[tokio::test]
async fn empty_appends_and_stream_type_mismatches_are_refused() {
    let store = fresh_store("t_store_refusals").await;
    assert!(matches!(
        store.append("s", "T", ExpectedVersion::Any, Vec::new()).await,
        Err(StoreError::EmptyAppend { stream_id }) if stream_id == "s"
    ));
    store
        .append("s", "T", ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    match store
        .append("s", "U", ExpectedVersion::Any, events(1))
        .await
    {
        Err(StoreError::StreamTypeMismatch {
            stream_id,
            existing,
            requested,
        }) => assert_eq!(
            (stream_id, existing, requested),
            ("s".into(), "T".into(), "U".into())
        ),
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    assert_eq!(store.stream_version("s").await.unwrap(), Some(1));
}

#[tokio::test]
async fn payloads_timestamps_and_metadata_read_back_exactly() {
    let store = fresh_store("t_store_round_trip").await;
    let payloads = [
        r#"{"z":1,"a":2}"#,
        r#"{ "spaced" :  [1, 2.50, 1e3] , "dup": 1, "dup": 2 }"#,
        r#"{"text":"quotes \" and \\ and \u0000 and é and 😀"}"#,
        r#""a bare string""#,
        "12345678901234567890123456789",
        "null",
    ];
    let timestamp = chrono::DateTime::parse_from_rfc3339("1999-12-31T23:59:59.123456Z")
        .unwrap()
        .to_utc();
    let metadata = Metadata {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: Some(Uuid::now_v7()),
        actor: Some("O'Brien; DROP TABLE events; --".into()),
        actor_kind: Some("care_coordinator".into()),
        tenant: Some("clinic 'A'; --".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        extra: BTreeMap::from([
            ("nul".to_owned(), json!("a\u{0}b")),
            ("nested".to_owned(), json!({ "list": [1, "two", null] })),
        ]),
    };
    let batch: Vec<NewEvent> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| NewEvent {
            event_id: Uuid::now_v7(),
            name: format!("Event{i} \"quoted\" ünïcode"),
            schema_version: if i == 0 { u32::MAX } else { i as u32 },
            payload: RawValue::from_string((*payload).to_owned()).unwrap(),
            timestamp: if i == 1 {
                timestamp
            } else {
                NewEvent::new("x", 1, RawValue::NULL.to_owned(), Metadata::default()).timestamp
            },
            metadata: if i % 2 == 0 {
                metadata.clone()
            } else {
                Metadata::default()
            },
            tags: Vec::new(),
        })
        .collect();
    store
        .append("s", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let read = store.read_stream("s", 1, 100).await.unwrap();
    assert_eq!(read.len(), batch.len());
    for (stored, appended) in read.iter().zip(&batch) {
        assert_eq!(stored.payload.get(), appended.payload.get());
        assert_eq!(stored.event_id, appended.event_id);
        assert_eq!(stored.name, appended.name);
        assert_eq!(stored.schema_version, appended.schema_version);
        assert_eq!(stored.timestamp, appended.timestamp);
        assert_eq!(stored.metadata, appended.metadata);
        assert_eq!(
            (stored.stream_id.as_str(), stored.stream_type.as_str()),
            ("s", "T")
        );
    }
    assert_eq!(read[1].timestamp, timestamp);
    // read_all and the visitor read the same records.
    assert_eq!(store.read_all(0, 100).await.unwrap(), read);
    let mut visited = Vec::new();
    store
        .for_each_in_stream("s", 1, |record| {
            visited.push(record.clone());
            Ok::<_, ()>(())
        })
        .await
        .unwrap();
    assert_eq!(visited, read);
}

#[tokio::test]
async fn hostile_stream_ids_work_and_nul_is_a_typed_error() {
    let store = fresh_store("t_store_hostile").await;
    let long = "x".repeat(10_000);
    let ids = [
        "it's",
        "\"double\"",
        "'; DROP TABLE events; --",
        "$1",
        "%_\\",
        "ünïcødé ✓ 😀",
        "line\nbreak\ttab",
        " ",
        "",
        long.as_str(),
    ];
    for (i, id) in ids.iter().enumerate() {
        store
            .append(id, "Type 'quoted'", ExpectedVersion::NoStream, events(2))
            .await
            .unwrap_or_else(|error| panic!("append to {id:?}: {error}"));
        assert_eq!(store.stream_version(id).await.unwrap(), Some(2), "{id:?}");
        let read = store.read_stream(id, 1, 10).await.unwrap();
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|e| e.stream_id == *id));
        assert_eq!(read[0].position, (i as u64) * 2 + 1);
    }
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), ids.len() * 2);

    let nul = |result: Result<_, StoreError>| match result {
        Err(error @ StoreError::ValueRefused { .. }) => {
            let message = error.to_string();
            assert!(message.contains("NUL"), "{message}");
        }
        other => panic!("expected a refusal naming NUL, got {other:?}"),
    };
    nul(store
        .append("a\0b", "T", ExpectedVersion::Any, events(1))
        .await);
    nul(store
        .append("s", "T\0", ExpectedVersion::Any, events(1))
        .await);
    let mut named = event(1);
    named.name = "Nul\0Name".into();
    nul(store
        .append("s", "T", ExpectedVersion::Any, vec![named])
        .await);
    assert!(store.read_stream("a\0b", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_version("a\0b").await.unwrap(), None);
    assert!(store.load_snapshot("a\0b").await.unwrap().is_none());
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), ids.len() * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_on_one_stream_conflict_and_never_fail() {
    let store = Arc::new(fresh_store("t_store_race").await);
    const WRITERS: usize = 8;
    const ROUNDS: u64 = 15;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let (mut wins, mut conflicts) = (0u64, 0u64);
            for round in 0..ROUNDS {
                // Read, decide, append: the usual optimistic loop, all writers at once.
                let version = store.stream_version("race").await.unwrap();
                let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                let mut batch = events(3);
                for e in &mut batch {
                    e.payload = serde_json::value::to_raw_value(
                        &json!({ "writer": writer, "round": round }),
                    )
                    .unwrap();
                }
                match store.append("race", "T", expected, batch).await {
                    Ok(outcome) => {
                        assert!(outcome.written);
                        assert_eq!(outcome.stream_version, version.unwrap_or(0) + 3);
                        wins += 1;
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert_ne!(actual, version, "a conflict must name another version");
                        conflicts += 1;
                    }
                    Err(other) => panic!("writer {writer}: {other}"),
                }
            }
            (wins, conflicts)
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += task.await.unwrap().0;
    }
    let stream = store.read_stream("race", 1, 10_000).await.unwrap();
    assert_eq!(stream.len() as u64, wins * 3);
    assert!(
        wins >= ROUNDS,
        "at least one writer wins each round: {wins}"
    );
    for (index, record) in stream.iter().enumerate() {
        assert_eq!(record.stream_version, index as u64 + 1);
    }
    assert!(stream.windows(2).all(|w| w[0].position < w[1].position));
    // Each batch of 3 is contiguous: one writer's round.
    for batch in stream.chunks(3) {
        assert!(
            batch
                .iter()
                .all(|e| e.payload.get() == batch[0].payload.get())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_many_creates_a_stream() {
    let store = Arc::new(fresh_store("t_store_create_race").await);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .append("new", "T", ExpectedVersion::NoStream, events(2))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict {
                actual: Some(2), ..
            }) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.stream_version("new").await.unwrap(), Some(2));
}

#[tokio::test]
async fn read_all_pages_in_position_order_and_visits_page_through_long_streams() {
    let store = fresh_store("t_store_paging").await;
    for round in 0..11u64 {
        store
            .append("long", "T", ExpectedVersion::Any, events(500))
            .await
            .unwrap();
        store
            .append(
                &format!("short-{round}"),
                "T",
                ExpectedVersion::Any,
                events(1),
            )
            .await
            .unwrap();
    }
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        all.extend(page);
    }
    assert_eq!(all.len(), 11 * 501);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));

    // 5,500 events: more than one page of the visitor.
    let mut versions = Vec::new();
    store
        .for_each_in_stream("long", 1, |record| {
            versions.push(record.stream_version);
            Ok::<_, ()>(())
        })
        .await
        .unwrap();
    assert_eq!(versions, (1..=5500).collect::<Vec<u64>>());
    let mut from = Vec::new();
    store
        .for_each_in_stream("long", 5000, |record| {
            from.push(record.stream_version);
            Ok::<_, ()>(())
        })
        .await
        .unwrap();
    assert_eq!(from, (5000..=5500).collect::<Vec<u64>>());
    let mut seen = 0;
    let stopped = store
        .for_each_in_stream("long", 1, |record| {
            seen += 1;
            if record.stream_version == 4200 {
                Err("stop")
            } else {
                Ok(())
            }
        })
        .await;
    assert!(matches!(stopped, Err(VisitError::Visitor("stop"))));
    assert_eq!(seen, 4200);
    store
        .for_each_in_stream("nothing", 1, |_| Err("never called"))
        .await
        .unwrap();
}

#[tokio::test]
async fn snapshots_are_upserted_and_loaded() {
    let store = fresh_store("t_store_snapshots").await;
    assert!(store.load_snapshot("s").await.unwrap().is_none());
    let taken_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z")
        .unwrap()
        .to_utc();
    let snapshot = |version: u64, state: &str| Snapshot {
        stream_id: "it's a stream".into(),
        stream_version: version,
        schema_version: 2,
        state: RawValue::from_string(state.to_owned()).unwrap(),
        taken_at,
    };
    store
        .save_snapshot(snapshot(10, r#"{"b":1, "a":[2]}"#))
        .await
        .unwrap();
    store
        .save_snapshot(snapshot(20, r#"{"z": "\u0000", "a": 1}"#))
        .await
        .unwrap();
    let loaded = store.load_snapshot("it's a stream").await.unwrap().unwrap();
    assert_eq!(loaded.stream_id, "it's a stream");
    assert_eq!(loaded.stream_version, 20);
    assert_eq!(loaded.schema_version, 2);
    assert_eq!(loaded.state.get(), r#"{"z": "\u0000", "a": 1}"#);
    assert_eq!(loaded.taken_at, taken_at);
    assert!(store.load_snapshot("other").await.unwrap().is_none());
}

#[tokio::test]
async fn appends_inside_a_caller_transaction_commit_or_roll_back_with_it() {
    let store = fresh_store("t_store_outbox").await;
    let mut client = store.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t_store_outbox.outbox (id bigserial PRIMARY KEY, topic text NOT NULL)",
        )
        .await
        .unwrap();

    // Rolled back: nothing of it is stored.
    let tx = client.transaction().await.unwrap();
    store
        .append_in_transaction(&tx, "s", "T", ExpectedVersion::NoStream, &events(2))
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO t_store_outbox.outbox (topic) VALUES ($1)",
        &[&"a"],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.stream_version("s").await.unwrap(), None);

    // A failed check leaves the transaction usable; the commit stores both.
    let tx = client.transaction().await.unwrap();
    let refused = store
        .append_in_transaction(&tx, "s", "T", ExpectedVersion::StreamExists, &events(1))
        .await;
    assert_eq!(conflict(refused), None);
    let outcome = store
        .append_in_transaction(&tx, "s", "T", ExpectedVersion::NoStream, &events(2))
        .await
        .unwrap();
    let more = store
        .append_in_transaction(&tx, "t", "T", ExpectedVersion::NoStream, &events(1))
        .await
        .unwrap();
    assert!(more.last_position > outcome.last_position);
    tx.execute(
        "INSERT INTO t_store_outbox.outbox (topic) VALUES ($1)",
        &[&"b"],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.stream_version("s").await.unwrap(), Some(2));
    assert_eq!(store.stream_version("t").await.unwrap(), Some(1));
    let outbox: i64 = client
        .query_one("SELECT count(*) FROM t_store_outbox.outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, 1);
}

#[tokio::test]
async fn bad_configurations_are_typed_errors() {
    for schema in ["bad-name", "", "1x", "a\"b"] {
        match PostgresStore::builder(url()).schema(schema).connect().await {
            Err(StoreError::Backend(source)) => {
                assert!(
                    source.to_string().contains("invalid schema name"),
                    "{source}"
                )
            }
            other => panic!("schema {schema:?}: expected an error, got {other:?}"),
        }
    }
    match PostgresStore::connect("postgres://nobody@127.0.0.1:1/nothing?bogus=1").await {
        Err(StoreError::Backend(source)) => {
            assert!(source.to_string().contains("connection string"), "{source}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // Nothing listens on port 1.
    assert!(matches!(
        PostgresStore::connect("postgres://nobody@127.0.0.1:1/nothing").await,
        Err(StoreError::Backend(_))
    ));
}

/// What an append answered, comparable between stores.
fn summary(result: Result<factum::store::AppendOutcome, StoreError>) -> String {
    match result {
        Ok(outcome) => format!(
            "ok version {} position {} written {}",
            outcome.stream_version, outcome.last_position, outcome.written
        ),
        Err(StoreError::Conflict {
            stream_id,
            expected,
            actual,
        }) => format!("conflict {stream_id} {expected:?} {actual:?}"),
        Err(StoreError::DuplicateEventId {
            stream_id,
            event_id,
        }) => format!("duplicate {stream_id} {event_id}"),
        Err(StoreError::StreamTypeMismatch {
            stream_id,
            existing,
            requested,
        }) => format!("type {stream_id} {existing} {requested}"),
        Err(StoreError::EmptyAppend { stream_id }) => format!("empty {stream_id}"),
        Err(StoreError::RepeatedEventId {
            stream_id,
            event_id,
        }) => format!("repeated {stream_id} {event_id}"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// The memory store is the reference: thousands of random appends (new batches,
/// re-appended batches, reused and repeated ids, every expectation, wrong types) answer
/// exactly as it does, positions included.
#[tokio::test]
async fn appends_answer_exactly_as_the_memory_store_does() {
    let store = fresh_store("t_store_differential").await;
    let memory = MemoryStore::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut batches: Vec<Vec<NewEvent>> = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for step in 0..1500 {
        let stream = ["a", "b", "c"][next(3) as usize];
        let stream_type = if next(20) == 0 { "Other" } else { "T" };
        let expected = match next(6) {
            0 => ExpectedVersion::Any,
            1 => ExpectedVersion::NoStream,
            2 => ExpectedVersion::StreamExists,
            _ => ExpectedVersion::Exact(next(8)),
        };
        let batch = match next(10) {
            // A batch appended before, as it was.
            0 | 1 if !batches.is_empty() => batches[next(batches.len() as u64) as usize].clone(),
            // A new event after an old one.
            2 if !batches.is_empty() => {
                let old = &batches[next(batches.len() as u64) as usize];
                vec![old[0].clone(), event(step)]
            }
            // An id twice in one batch.
            3 => {
                let twice = event(step);
                vec![twice.clone(), twice]
            }
            _ => events(1 + next(3)),
        };
        batches.push(batch.clone());
        let expected_answer = summary(
            memory
                .append(stream, stream_type, expected, batch.clone())
                .await,
        );
        let answer = summary(store.append(stream, stream_type, expected, batch).await);
        kinds.insert(
            expected_answer
                .split(' ')
                .next()
                .map(|kind| match kind {
                    "ok" if expected_answer.ends_with("false") => "ok again",
                    other => other,
                })
                .unwrap_or_default()
                .to_owned(),
        );
        assert_eq!(
            answer, expected_answer,
            "step {step}: {stream} {stream_type} {expected:?}"
        );
    }
    let all_kinds = [
        "conflict",
        "duplicate",
        "ok",
        "ok again",
        "repeated",
        "type",
    ];
    assert_eq!(
        kinds.iter().map(String::as_str).collect::<Vec<_>>(),
        all_kinds
    );
    let stored = store.read_all(0, 100_000).await.unwrap();
    let reference = memory.read_all(0, 100_000).await.unwrap();
    assert_eq!(stored, reference);
}

// ---------------------------------------------------------------------------------------
// Waiting for events: LISTEN/NOTIFY

/// The backend pids of the listening connections of the store in `schema`.
async fn listeners(schema: &str) -> Vec<i32> {
    postgres_common::raw_client()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("factum listener {schema}")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits (up to 10 s) until the store's listening connection is up, and returns its pid.
async fn listening(store: &PostgresStore) -> i32 {
    // The first wait starts the listener.
    store
        .wait_for_events(u64::MAX, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    for _ in 0..200 {
        if let [pid] = listeners(store.schema()).await[..] {
            return pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the store never started listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_through_another_store_handle_wakes_a_waiter_by_notification() {
    const SCHEMA: &str = "t_store_notify";
    let waiter = fresh_store(SCHEMA).await;
    let writer = PostgresStore::builder(url())
        .schema(SCHEMA)
        .pool_size(1)
        .connect()
        .await
        .unwrap();
    listening(&waiter).await;
    // While the listener is up, nothing polls: only the notification can wake the waiter
    // before its 10-minute timeout.
    let head = 0;
    let waiting = tokio::spawn(async move {
        waiter
            .wait_for_events(head, std::time::Duration::from_secs(600))
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    writer
        .append("s", "T", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the notification wakes the waiter")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_another_schema_do_not_wake_a_waiter() {
    let quiet = fresh_store("t_store_quiet").await;
    let busy = fresh_store("t_store_busy").await;
    listening(&quiet).await;
    let timeout = std::time::Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let (waited, ()) = tokio::join!(quiet.wait_for_events(0, timeout), async {
        for n in 0..5 {
            busy.append("s", "T", ExpectedVersion::Any, vec![event(n)])
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    waited.unwrap();
    assert!(
        started.elapsed() >= timeout,
        "the waiter of an empty schema returned after {:?}, before its timeout",
        started.elapsed()
    );
    assert_eq!(quiet.head().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listening_connection_is_replaced_and_waiters_still_wake() {
    const SCHEMA: &str = "t_store_relisten";
    let store = fresh_store(SCHEMA).await;
    let pid = listening(&store).await;
    let raw = postgres_common::raw_client().await;
    let killed: bool = raw
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    // Appended while the listener is down or reconnecting: the poll (or the newest
    // position read when listening again) finds it.
    let outcome = store
        .append("s", "T", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.wait_for_events(0, std::time::Duration::from_secs(600)),
    )
    .await
    .expect("a waiter wakes while the listener is down")
    .unwrap();
    // A new listening connection replaces the killed one, and notifications wake again.
    let mut replaced = None;
    for _ in 0..200 {
        if let [new] = listeners(SCHEMA).await[..]
            && new != pid
        {
            replaced = Some(new);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(replaced.is_some(), "the listening connection is re-opened");
    let head = outcome.last_position;
    let (woken, appended) = tokio::join!(
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.wait_for_events(head, std::time::Duration::from_secs(600)),
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            store
                .append("s", "T", ExpectedVersion::Exact(1), events(1))
                .await
        }
    );
    appended.unwrap();
    woken.expect("the new listener wakes waiters").unwrap();
}

#[tokio::test]
async fn filtered_reads_take_their_head_from_the_same_snapshot_and_skip_nul_names() {
    let store = fresh_store("t_store_filtered").await;
    store
        .append("s", "T", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    let page = store
        .read_all_filtered(0, 10, &["Ticked", "nul\0name"])
        .await
        .unwrap();
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.scanned_to, page.events[2].position);
    let none = store
        .read_all_filtered(0, 10, &["nul\0name"])
        .await
        .unwrap();
    assert!(none.events.is_empty());
    assert_eq!(none.scanned_to, page.scanned_to);
}

/// Batches tagged with tens of thousands of distinct tags, from several writers at once:
/// a lock per tag filled the server's lock table ("out of shared memory"); such a batch
/// is appended as a held one instead, and every tag reads back and is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_thousands_of_tags_append_side_by_side() {
    use factum::store::decision::{DecisionStore, Query, QueryItem};
    let store = Arc::new(fresh_store("t_pg_many_tags").await);
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let batch = (0..10_000)
                    .map(|n| {
                        event(n).with_tags([
                            Tag::new("student", format!("{writer}-{n}")),
                            Tag::new("course", format!("c{}", n % 7)),
                        ])
                    })
                    .collect();
                store
                    .append(
                        &format!("Many-{writer}"),
                        "Many",
                        ExpectedVersion::NoStream,
                        batch,
                    )
                    .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer").expect("appended");
    }
    let student = Query::new([QueryItem::default().with_tags([Tag::new("student", "3-9999")])]);
    let found = store.read_matching(&student, 0).await.expect("read");
    assert_eq!(found.events.len(), 1);
    assert_eq!(
        found.events[0].tags,
        [Tag::new("course", "c3"), Tag::new("student", "3-9999")]
    );
}
