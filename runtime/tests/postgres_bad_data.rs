//! Stored data that cannot be read is reported, typed and located (stream and version),
//! and never stops the other streams from being read. The bad rows are written with
//! raw SQL, as a bad migration or a manual fix would.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use factum::error::DecodeErrorKind;
use factum::prelude::*;
use factum::store::PostgresStore;
use postgres_common::{events, fresh_store, raw_client};

#[event(name = "Ticked", version = 1)]
#[derive(Debug, PartialEq)]
pub struct Ticked {
    pub n: u64,
}

#[derive(Events, Debug, PartialEq)]
pub enum CounterEvent {
    Ticked(Ticked),
}

#[command]
pub struct Tick {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum CounterCommand {
    Tick(Tick),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Default, Debug)]
pub struct Counter {
    total: u64,
}

#[aggregate(name = "Counter", events = CounterEvent, commands = CounterCommand, error = Never)]
impl Counter {
    #[handle]
    fn tick(&self, _command: Tick) -> Result<Ticked, Never> {
        Ok(Ticked { n: 1 })
    }

    #[apply]
    fn ticked(&mut self, event: &Ticked) {
        self.total += event.n;
    }
}

const SCHEMA: &str = "t_bad_data";

/// Runs `UPDATE t_bad_data.events SET <set> WHERE stream_id = $1 AND stream_version = 2`.
async fn corrupt(client: &tokio_postgres::Client, set: &str, stream_id: &str) {
    let updated = client
        .execute(
            &format!(
                "UPDATE {SCHEMA}.events SET {set} WHERE stream_id = $1 AND stream_version = 2"
            ),
            &[&stream_id],
        )
        .await
        .unwrap_or_else(|error| panic!("{set}: {error}"));
    assert_eq!(updated, 1);
}

async fn load_error(
    repository: &Repository<Counter, PostgresStore>,
    id: &str,
) -> RepositoryError<Never> {
    match repository.load(id).await {
        Err(error) => error,
        Ok(loaded) => panic!("{id}: expected an error, loaded version {}", loaded.version),
    }
}

#[tokio::test]
async fn undecodable_events_are_typed_errors_naming_stream_and_version() {
    let store = fresh_store(SCHEMA).await;
    for id in ["good", "unknown", "too-new", "shape", "meta", "range"] {
        store
            .append(
                &format!("Counter-{id}"),
                "Counter",
                ExpectedVersion::NoStream,
                events(3),
            )
            .await
            .unwrap();
    }
    let sql = raw_client().await;
    corrupt(&sql, "name = 'Vanished'", "Counter-unknown").await;
    corrupt(&sql, "schema_version = 7", "Counter-too-new").await;
    corrupt(&sql, "payload = '{\"n\": \"three\"}'", "Counter-shape").await;
    corrupt(&sql, "metadata = '{\"correlation_id\": 5}'", "Counter-meta").await;
    corrupt(&sql, "schema_version = 5000000000", "Counter-range").await;

    // The payload column is `json`: PostgreSQL itself refuses text that is not JSON.
    let refused = sql
        .execute(
            &format!(
                "UPDATE {SCHEMA}.events SET payload = '{{not json' WHERE stream_id = 'Counter-good'"
            ),
            &[],
        )
        .await;
    assert!(refused.is_err(), "the json column accepted invalid JSON");

    let repository = Repository::<Counter, PostgresStore>::new(store.clone());
    // Decode errors: the record is readable, the event set cannot decode it.
    for (id, expected) in [
        ("unknown", "UnknownEvent"),
        ("too-new", "VersionTooNew"),
        ("shape", "Payload"),
    ] {
        match load_error(&repository, id).await {
            RepositoryError::Decode(error) => {
                assert_eq!(error.stream_id, format!("Counter-{id}"));
                assert_eq!(error.stream_version, 2);
                let kind = match &error.source.kind {
                    DecodeErrorKind::UnknownEvent { .. } => "UnknownEvent",
                    DecodeErrorKind::VersionTooNew { newest: 1 } => "VersionTooNew",
                    DecodeErrorKind::Payload { .. } => "Payload",
                    other => panic!("{id}: unexpected {other:?}"),
                };
                assert_eq!(kind, expected, "{error}");
                let message = error.to_string();
                assert!(message.contains(&format!("Counter-{id}")), "{message}");
            }
            other => panic!("{id}: expected a decode error, got {other:?}"),
        }
    }
    // Corrupt rows: the store cannot even build the record.
    for (id, column) in [("meta", "metadata"), ("range", "schema_version")] {
        let stream_id = format!("Counter-{id}");
        let first = store.read_stream(&stream_id, 1, 1).await.unwrap()[0].position;
        for error in [
            store.read_stream(&stream_id, 1, 10).await.unwrap_err(),
            match load_error(&repository, id).await {
                RepositoryError::Store(error) => error,
                other => panic!("{id}: expected a store error, got {other:?}"),
            },
        ] {
            match error {
                StoreError::CorruptRow {
                    stream_id: at,
                    stream_version,
                    position,
                    reason,
                } => {
                    assert_eq!((at.as_str(), stream_version), (stream_id.as_str(), 2));
                    assert_eq!(position, Some(first + 1), "{reason}");
                    assert!(reason.contains(column), "{reason}");
                }
                other => panic!("{id}: expected a corrupt row, got {other:?}"),
            }
        }
        // The rows before the bad one still read.
        assert_eq!(store.read_stream(&stream_id, 1, 1).await.unwrap().len(), 1);
    }
    // A follower of read_all stops at the corrupt row, loudly, instead of skipping it.
    let before_meta = store.read_stream("Counter-meta", 1, 1).await.unwrap()[0].position;
    assert!(matches!(
        store.read_all(before_meta, 10).await,
        Err(StoreError::CorruptRow {
            stream_version: 2,
            ..
        })
    ));

    // The other streams read and load as before.
    assert_eq!(repository.load("good").await.unwrap().version, 3);
    assert_eq!(
        repository.load("good").await.unwrap().state.total,
        3, // the payloads {"n": 0}, {"n": 1}, {"n": 2}
    );
    assert_eq!(
        store
            .read_stream("Counter-unknown", 1, 10)
            .await
            .unwrap()
            .len(),
        3
    );

    // A corrupt snapshot too.
    store
        .save_snapshot(factum::envelope::Snapshot {
            stream_id: "Counter-good".into(),
            stream_version: 3,
            schema_version: 1,
            state: serde_json::value::to_raw_value(&serde_json::json!({"total": 3})).unwrap(),
            taken_at: factum::envelope::now(),
        })
        .await
        .unwrap();
    sql.execute(
        &format!("UPDATE {SCHEMA}.snapshots SET schema_version = -1"),
        &[],
    )
    .await
    .unwrap();
    assert!(matches!(
        store.load_snapshot("Counter-good").await,
        Err(StoreError::CorruptRow {
            stream_version: 3,
            ..
        })
    ));
}

#[tokio::test]
async fn a_gap_in_a_stream_is_a_corrupt_row_never_a_shorter_history() {
    const GAP: &str = "t_bad_data_gap";
    let store = fresh_store(GAP).await;
    store
        .append(
            "Counter-gap",
            "Counter",
            ExpectedVersion::NoStream,
            events(5),
        )
        .await
        .unwrap();
    // Someone deletes version 3 by hand.
    let sql = raw_client().await;
    let deleted = sql
        .execute(
            &format!(
                "DELETE FROM {GAP}.events WHERE stream_id = 'Counter-gap' AND stream_version = 3"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    let gap = |error: &StoreError| {
        matches!(
            error,
            StoreError::CorruptRow { stream_id, stream_version: 3, reason, .. }
                if stream_id == "Counter-gap" && reason.contains("holds version 4")
        )
    };
    let read = store.read_stream("Counter-gap", 1, 100).await;
    assert!(read.as_ref().is_err_and(gap), "read_stream: {read:?}");
    let mut visited = Vec::new();
    let visit = store
        .for_each_in_stream("Counter-gap", 1, |event| {
            visited.push(event.stream_version);
            Ok::<(), ()>(())
        })
        .await;
    assert!(
        matches!(&visit, Err(factum::store::VisitError::Store(error)) if gap(error)),
        "for_each_in_stream: {visit:?}"
    );
    assert_eq!(
        visited,
        [1, 2],
        "the events before the gap are visited, in order"
    );
    let load = Repository::<Counter, _>::new(store.clone())
        .load("gap")
        .await;
    assert!(
        matches!(&load, Err(RepositoryError::Store(error)) if gap(error)),
        "a load does not build a state from a history with a hole: {load:?}"
    );
    // Reads that do not cross the gap still work.
    assert_eq!(
        store.read_stream("Counter-gap", 4, 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        store.read_stream("Counter-gap", 1, 2).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn an_unreadable_command_record_is_a_corrupt_row_naming_its_stream() {
    const COMMANDS: &str = "t_bad_commands";
    let store = fresh_store(COMMANDS).await;
    let command = factum::store::CommandRecord::new(factum::uuid::Uuid::now_v7(), "f");
    store
        .append_command(
            "s",
            "T",
            ExpectedVersion::NoStream,
            events(2),
            command.clone(),
        )
        .await
        .expect("append_command");
    for (damage, reason) in [
        ("first_position = NULL", "do not fit 2 event ids"),
        ("event_ids = '{}'", "do not fit 0 event ids"),
    ] {
        let client = raw_client().await;
        client
            .batch_execute(&format!("UPDATE {COMMANDS}.commands SET {damage}"))
            .await
            .unwrap();
        let read = store.command_outcome(command.command_id).await;
        let retried = store
            .append_command("s", "T", ExpectedVersion::Any, events(1), command.clone())
            .await;
        for error in [read.err(), retried.err()] {
            match error {
                Some(StoreError::CorruptRow {
                    stream_id,
                    reason: message,
                    ..
                }) => {
                    assert_eq!(stream_id, "s", "{damage}");
                    assert!(message.contains(reason), "{damage}: {message}");
                }
                other => panic!("{damage}: expected a corrupt row, got {other:?}"),
            }
        }
        assert_eq!(
            store.stream_version("s").await.unwrap(),
            Some(2),
            "{damage}"
        );
        // Repair for the next damage.
        client
            .batch_execute(&format!(
                "UPDATE {COMMANDS}.commands SET first_position = last_position - 1, \
                 event_ids = ARRAY(SELECT event_id FROM {COMMANDS}.events ORDER BY position)"
            ))
            .await
            .unwrap();
    }
}
