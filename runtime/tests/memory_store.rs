//! The memory store keeps the store contract: atomic, checked appends; gapless stream
//! versions; commit-ordered positions; idempotent re-appends.

use factum::prelude::*;
use serde_json::json;

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Ticked",
        1,
        serde_json::value::to_raw_value(&json!({ "n": n })).unwrap(),
        Metadata::default(),
    )
}

fn events(count: u64) -> Vec<NewEvent> {
    (0..count).map(event).collect()
}

#[tokio::test]
async fn expected_versions_are_checked_and_a_conflict_writes_nothing() {
    let store = MemoryStore::new();
    let outcome = store
        .append("s", "T", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    assert_eq!(
        (
            outcome.stream_version,
            outcome.last_position,
            outcome.written
        ),
        (2, 2, true)
    );

    for (expected, actual) in [
        (ExpectedVersion::NoStream, Some(2)),
        (ExpectedVersion::Exact(1), Some(2)),
        (ExpectedVersion::Exact(3), Some(2)),
    ] {
        match store.append("s", "T", expected, events(1)).await {
            Err(StoreError::Conflict {
                stream_id,
                expected: e,
                actual: a,
            }) => {
                assert_eq!((stream_id.as_str(), e, a), ("s", expected, actual));
            }
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    match store
        .append("missing", "T", ExpectedVersion::StreamExists, events(1))
        .await
    {
        Err(StoreError::Conflict { actual: None, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.len(), 2);

    store
        .append("s", "T", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    store
        .append("s", "T", ExpectedVersion::StreamExists, events(1))
        .await
        .unwrap();
    let outcome = store
        .append("s", "T", ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 5);
}

#[tokio::test]
async fn re_appending_the_same_batch_is_idempotent() {
    let store = MemoryStore::new();
    let batch = events(3);
    let first = store
        .append("s", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let again = store
        .append("s", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(!again.written);
    assert_eq!(
        (again.stream_version, again.last_position),
        (first.stream_version, first.last_position)
    );
    assert_eq!(store.len(), 3);

    // The same ids as part of another batch are refused, and nothing is written.
    let mut mixed = events(1);
    mixed.push(batch[0].clone());
    assert!(matches!(
        store.append("s", "T", ExpectedVersion::Any, mixed).await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert!(matches!(
        store
            .append("other", "T", ExpectedVersion::Any, vec![batch[1].clone()])
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    let twice = vec![batch[0].clone(), batch[0].clone()];
    let fresh = event(9);
    assert!(matches!(
        store
            .append("s", "T", ExpectedVersion::Any, vec![fresh.clone(), fresh])
            .await,
        Err(StoreError::RepeatedEventId { .. })
    ));
    assert!(
        store
            .append("s", "T", ExpectedVersion::Any, twice)
            .await
            .is_err()
    );
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn empty_appends_and_stream_type_changes_are_refused() {
    let store = MemoryStore::new();
    assert!(matches!(
        store.append("s", "T", ExpectedVersion::Any, vec![]).await,
        Err(StoreError::EmptyAppend { .. })
    ));
    store
        .append("s", "T", ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    let error = store
        .append("s", "U", ExpectedVersion::Any, events(1))
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "stream `s` has type `T`, not `U`");
    assert!(store.read_stream("absent", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_version("absent").await.unwrap(), None);
}

#[tokio::test]
async fn streams_and_the_log_read_in_order_from_any_point() {
    let store = MemoryStore::new();
    store
        .append("a", "T", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    store
        .append("b", "T", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    store
        .append("a", "T", ExpectedVersion::Exact(3), events(2))
        .await
        .unwrap();

    let stream = store.read_stream("a", 2, 3).await.unwrap();
    assert_eq!(
        stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(
        stream.iter().map(|e| e.position).collect::<Vec<_>>(),
        [2, 3, 6]
    );
    assert!(
        stream
            .iter()
            .all(|e| e.stream_type == "T" && e.stream_id == "a")
    );

    let all = store.read_all(2, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(store.read_all(7, 10).await.unwrap().len(), 0);
    assert_eq!(store.read_all(0, 2).await.unwrap().len(), 2);
    assert_eq!(store.stream_version("a").await.unwrap(), Some(5));
}

#[tokio::test]
async fn metadata_and_payloads_round_trip() {
    let store = MemoryStore::new();
    let mut new = event(1);
    new.metadata = Metadata {
        correlation_id: Some(factum::uuid::Uuid::now_v7()),
        causation_id: Some(factum::uuid::Uuid::now_v7()),
        actor: Some("zoë".into()),
        extra: [("tenant".to_owned(), json!("acme"))].into(),
        ..Metadata::default()
    };
    store
        .append("s", "T", ExpectedVersion::Any, vec![new.clone()])
        .await
        .unwrap();
    let read = &store.read_stream("s", 1, 1).await.unwrap()[0];
    assert_eq!(read.event_id, new.event_id);
    assert_eq!(read.metadata, new.metadata);
    assert_eq!(read.timestamp, new.timestamp);
    assert_eq!(read.payload.get(), new.payload.get());
    assert_eq!((read.name.as_str(), read.schema_version), ("Ticked", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_streams_gapless() {
    let store = MemoryStore::new();
    let mut tasks = Vec::new();
    for writer in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for attempt in 0..200u64 {
                let stream = format!("s{}", attempt % 3);
                let version = store.stream_version(&stream).await.unwrap();
                let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                match store
                    .append(&stream, "T", expected, events(1 + writer % 2))
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(other) => panic!("{other}"),
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );
    for stream in ["s0", "s1", "s2"] {
        let versions: Vec<u64> = store
            .read_stream(stream, 1, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    }
}

/// A store that only forwards the required methods, so it uses the default
/// `for_each_in_stream`, which pages through `read_stream`.
struct ForwardingStore(MemoryStore);

impl EventStore for ForwardingStore {
    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: factum::store::CommandRecord,
    ) -> Result<factum::store::CommandAppend, StoreError> {
        self.0
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn command_outcome(
        &self,
        command_id: factum::uuid::Uuid,
    ) -> Result<Option<factum::store::CommandOutcome>, StoreError> {
        self.0.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.0.prune_commands(recorded_before).await
    }

    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<factum::store::AppendOutcome, StoreError> {
        self.0
            .append(stream_id, stream_type, expected, events)
            .await
    }
    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_stream(stream_id, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(after, limit).await
    }
    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.0.stream_version(stream_id).await
    }
    async fn save_snapshot(&self, snapshot: factum::envelope::Snapshot) -> Result<(), StoreError> {
        self.0.save_snapshot(snapshot).await
    }
    async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<factum::envelope::Snapshot>, StoreError> {
        self.0.load_snapshot(stream_id).await
    }
}

#[tokio::test]
async fn visiting_a_stream_sees_every_event_once_in_order_and_stops_at_an_error() {
    let memory = MemoryStore::new();
    memory
        .append("s", "T", ExpectedVersion::NoStream, events(2500))
        .await
        .unwrap();
    memory
        .append("other", "T", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    let forwarding = ForwardingStore(memory.clone());

    for from in [0, 1, 1024, 1025, 2500, 2501] {
        let mut lent = Vec::new();
        memory
            .for_each_in_stream("s", from, |event| {
                lent.push(event.stream_version);
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
        let mut paged = Vec::new();
        forwarding
            .for_each_in_stream("s", from, |event| {
                paged.push(event.stream_version);
                Ok::<_, ()>(())
            })
            .await
            .unwrap();
        let expected: Vec<u64> = (from.max(1)..=2500).collect();
        assert_eq!(lent, expected, "memory store from {from}");
        assert_eq!(paged, expected, "default implementation from {from}");
    }

    for store_kind in ["memory", "default"] {
        let mut seen = 0;
        let visit = |event: &RecordedEvent| {
            seen += 1;
            if event.stream_version == 1500 {
                Err("stop")
            } else {
                Ok(())
            }
        };
        let result = match store_kind {
            "memory" => memory.for_each_in_stream("s", 1, visit).await,
            _ => forwarding.for_each_in_stream("s", 1, visit).await,
        };
        assert!(
            matches!(result, Err(factum::store::VisitError::Visitor("stop"))),
            "{store_kind}"
        );
        assert_eq!(seen, 1500, "{store_kind}");
    }
}

/// Appends, batches, commands and idempotent re-appends chain every stream by hash; the
/// whole history verifies intact.
#[tokio::test]
async fn the_history_is_chained_and_verifies_intact() {
    use factum::integrity::TamperEvident;
    let store = MemoryStore::new();
    let batch = events(3);
    store
        .append("a", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    store
        .append("a", "T", ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    store
        .append("b", "T", ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    store
        .append("a", "T", ExpectedVersion::Exact(3), events(1))
        .await
        .unwrap();
    let verification = store.verify().await.unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert_eq!((verification.events, verification.streams), (6, 2));
    assert_eq!(
        verification.to_string(),
        "6 events in 2 streams verified: intact"
    );
}

/// Checkpoints signed over the memory store's log prove what they cover, as on every
/// store.
#[tokio::test]
async fn checkpoints_and_proofs_hold() {
    let store = MemoryStore::new();
    tamper_common::write_history(&store).await;
    tamper_common::assert_proofs_hold(&store).await;
}

mod tamper_common;

/// A memory store with a signer signs its critical events, as the SQL stores do.
#[tokio::test]
async fn critical_events_are_signed() {
    let store = MemoryStore::new().sign_events(tamper_common::signer());
    tamper_common::assert_critical_events_are_signed(&store).await;
}

/// `#[event(.., signed)]` declares an event critical: the registry says so, and the
/// signer built from it signs that event's name.
#[test]
fn the_dsl_declares_critical_events() {
    #[event(name = "DoseGiven", signed)]
    #[derive(Debug, Clone, PartialEq)]
    pub struct DoseGiven {
        pub mg: u32,
    }

    #[event(name = "NoteAdded")]
    #[derive(Debug, Clone, PartialEq)]
    pub struct NoteAdded {
        pub note: String,
    }

    #[derive(Events, Debug, Clone, PartialEq)]
    pub enum ChartEvent {
        Dose(DoseGiven),
        Note(NoteAdded),
    }

    let mut builder = factum::registry::Registry::builder();
    ChartEvent::register(&mut builder, Some("Chart"));
    let registry = builder.build().expect("registry");
    let signed = factum::integrity::SignedEvents::from_registry(&registry);
    assert!(signed.contains("DoseGiven") && !signed.contains("NoteAdded"));
    let document = serde_json::to_value(&registry).expect("JSON");
    let entries = document["entries"].as_array().expect("entries");
    let flags: Vec<(&str, bool)> = entries
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap(),
                entry.get("signed") == Some(&serde_json::Value::Bool(true)),
            )
        })
        .collect();
    assert_eq!(flags, [("DoseGiven", true), ("NoteAdded", false)]);
}
