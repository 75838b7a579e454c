//! Every store reports its appends through the `metrics` facade: events appended by
//! aggregate type and event type, the latency of each append, and concurrency conflicts,
//! for plain appends, command appends (a retried command counts once) and the SQLite
//! store's one-transaction command sessions.

#[cfg(feature = "postgres")]
mod postgres_common;

use std::collections::BTreeMap;

use factum::prelude::*;
use factum::store::{CommandAppend, CommandRecord, SqliteStore, StoreError};
use factum::telemetry;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

fn event(name: &str) -> NewEvent {
    NewEvent::new(
        name,
        1,
        serde_json::value::to_raw_value(&json!({ "n": 1 })).unwrap(),
        Metadata::default(),
    )
}

/// Counters by name and labels, and how many samples each histogram holds.
fn read(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut seen = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        let value = match value {
            DebugValue::Counter(count) => count,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(gauge) => gauge.into_inner() as u64,
        };
        seen.insert(name, value);
    }
    seen
}

/// Two appends, a conflict, a command appended and then retried: what every store
/// reports for them.
async fn appends_and_a_conflict(store: &impl EventStore) {
    store
        .append(
            "Order-1",
            "Order",
            ExpectedVersion::NoStream,
            vec![
                event("OrderPlaced"),
                event("LinePicked"),
                event("LinePicked"),
            ],
        )
        .await
        .expect("append");
    let conflict = store
        .append(
            "Order-1",
            "Order",
            ExpectedVersion::NoStream,
            vec![event("OrderPlaced")],
        )
        .await
        .expect_err("the stream exists");
    assert!(
        matches!(conflict, StoreError::Conflict { .. }),
        "{conflict:?}"
    );
    let command = CommandRecord::new(factum::uuid::Uuid::now_v7(), "ship-order-1");
    for _ in 0..2 {
        let answer = store
            .append_command(
                "Order-1",
                "Order",
                ExpectedVersion::Exact(3),
                vec![event("OrderShipped")],
                command.clone(),
            )
            .await
            .expect("command");
        assert!(matches!(
            answer,
            CommandAppend::Appended(_) | CommandAppend::AlreadyExecuted(_)
        ));
    }
}

fn expected() -> BTreeMap<String, u64> {
    BTreeMap::from([
        (
            format!("{}{{aggregate_type=Order}}", telemetry::APPEND_LATENCY),
            4,
        ),
        (
            format!(
                "{}{{aggregate_type=Order}}",
                telemetry::CONCURRENCY_CONFLICTS
            ),
            1,
        ),
        (
            format!(
                "{}{{aggregate_type=Order,event_type=LinePicked}}",
                telemetry::EVENTS_APPENDED
            ),
            2,
        ),
        (
            format!(
                "{}{{aggregate_type=Order,event_type=OrderPlaced}}",
                telemetry::EVENTS_APPENDED
            ),
            1,
        ),
        (
            format!(
                "{}{{aggregate_type=Order,event_type=OrderShipped}}",
                telemetry::EVENTS_APPENDED
            ),
            1,
        ),
    ])
}

/// Runs `work` on a runtime of this thread, with a recorder of its own.
fn measured<F: std::future::Future<Output = ()>>(
    work: impl FnOnce() -> F,
) -> BTreeMap<String, u64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work());
    });
    read(&snapshotter)
}

#[test]
fn the_memory_store_reports_its_appends() {
    let seen = measured(|| async { appends_and_a_conflict(&MemoryStore::new()).await });
    assert_eq!(seen, expected());
}

#[test]
fn the_sqlite_store_reports_its_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let seen = measured(|| async move {
        let store = SqliteStore::open(&path).await.expect("open");
        appends_and_a_conflict(&store).await;
        let size = store.size_on_disk().await.expect("a size");
        let file = std::fs::metadata(&path).expect("the file").len();
        assert!(
            size >= file && file > 0,
            "{size} bytes for a file of {file}"
        );
    });
    assert_eq!(seen, expected());
}

#[cfg(feature = "postgres")]
#[test]
fn the_postgres_store_reports_its_appends() {
    use factum::store::PostgresStore;
    let seen = measured(|| async {
        let schema = "factum_test_telemetry";
        postgres_common::drop_schema(schema).await;
        let store = PostgresStore::builder(postgres_common::url())
            .schema(schema)
            .connect()
            .await
            .expect("connect");
        appends_and_a_conflict(&store).await;
        assert!(store.size_on_disk().await.expect("a size") > 0);
    });
    assert_eq!(seen, expected());
}

/// The SQLite store runs a command's read, decision and append in one transaction on its
/// writer thread: the decision's events are counted all the same.
#[test]
fn a_sqlite_command_session_reports_the_events_it_decided() {
    use factum::store::{CommandSession, CommandWrite};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.db");
    let seen = measured(|| async move {
        let store = SqliteStore::open(&path).await.expect("open");
        let command = CommandRecord::new(factum::uuid::Uuid::now_v7(), "place-order-9");
        for _ in 0..2 {
            let session = store
                .run_command(
                    "Order-9",
                    "Order",
                    1,
                    command.clone(),
                    |_| Ok::<(), StoreError>(()),
                    || {
                        Ok(CommandWrite {
                            expected: ExpectedVersion::NoStream,
                            events: vec![event("OrderPlaced"), event("LinePicked")],
                        })
                    },
                )
                .await
                .expect("session");
            assert!(matches!(
                session,
                CommandSession::Appended(_) | CommandSession::AlreadyExecuted(_)
            ));
        }
    });
    assert_eq!(
        seen,
        BTreeMap::from([
            // The second session found the command recorded: no append.
            (
                format!("{}{{aggregate_type=Order}}", telemetry::APPEND_LATENCY),
                1
            ),
            (
                format!(
                    "{}{{aggregate_type=Order,event_type=LinePicked}}",
                    telemetry::EVENTS_APPENDED
                ),
                1
            ),
            (
                format!(
                    "{}{{aggregate_type=Order,event_type=OrderPlaced}}",
                    telemetry::EVENTS_APPENDED
                ),
                1
            ),
        ])
    );
}

/// Tallies `Counted` events; refuses those whose payload says `"poison": true`.
struct Tally;

impl factum::projection::Projection for Tally {
    const NAME: &'static str = "tally";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted", "Recounted"];
    type Tx = factum::projection::sqlite::SqliteTx;

    async fn setup(
        &mut self,
        tx: &mut factum::projection::sqlite::SqliteTx,
    ) -> Result<(), factum::projection::ProjectionError> {
        tx.execute_batch("CREATE TABLE tally (n INTEGER NOT NULL)")?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut factum::projection::sqlite::SqliteTx,
    ) -> Result<(), factum::projection::ProjectionError> {
        if event.payload.get().contains("\"poison\":true") {
            return Err(factum::projection::ProjectionError::msg("poison"));
        }
        tx.execute("INSERT INTO tally (n) VALUES (1)", [])?;
        Ok(())
    }
}

/// Reacts to `Counted` events; fails on those whose payload says `"poison": true`.
struct Alarm;

impl factum::projection::Reactor for Alarm {
    const NAME: &'static str = "alarm";
    const EVENTS: &'static [&'static str] = &["Counted"];

    async fn react(
        &mut self,
        event: &RecordedEvent,
    ) -> Result<(), factum::projection::ProjectionError> {
        if event.payload.get().contains("\"poison\":true") {
            return Err(factum::projection::ProjectionError::msg("poison"));
        }
        Ok(())
    }
}

/// A SQLite store and read-model directory in `root`.
async fn store_and_read_models(
    root: &std::path::Path,
) -> (SqliteStore, factum::projection::sqlite::SqliteReadModel) {
    let store = SqliteStore::open(root.join("events.db"))
        .await
        .expect("open");
    let read_models = factum::projection::sqlite::SqliteReadModel::open(root.join("read"))
        .await
        .expect("open");
    (store, read_models)
}

/// A follower's gauges as `seen`: parked, lag in events, lag in seconds.
fn gauges(seen: &BTreeMap<String, u64>, follower: &str) -> [Option<u64>; 3] {
    [
        telemetry::PROJECTION_PARKED,
        telemetry::PROJECTION_LAG_EVENTS,
        telemetry::PROJECTION_LAG_SECONDS,
    ]
    .map(|name| {
        seen.get(&format!("{name}{{projection_name={follower}}}"))
            .copied()
    })
}

/// A projection reports the events it applied by type, its dead letters and its lag
/// (none, once caught up); pages of two events make the runner measure the lag on the
/// way too.
#[test]
fn a_projection_reports_what_it_applied_parked_and_how_far_behind_it_is() {
    use factum::projection::Retry;
    use factum::projection::{OnPoison, ProjectionRunner};
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let seen = measured(|| async move {
        let (store, read_models) = store_and_read_models(&root).await;
        let poison = NewEvent::new(
            "Counted",
            1,
            serde_json::value::to_raw_value(&json!({ "poison": true })).unwrap(),
            Metadata::default(),
        );
        store
            .append(
                "Tally-1",
                "Tally",
                ExpectedVersion::NoStream,
                vec![
                    event("Counted"),
                    event("Other"),
                    event("Counted"),
                    poison,
                    event("Recounted"),
                ],
            )
            .await
            .expect("append");
        let runner = ProjectionRunner::new(store.clone())
            .batch_size(2)
            .retry(Retry::immediately(1))
            .on_poison(OnPoison::Park);
        let mut projector = runner.projector(Tally, read_models.clone());
        runner.catch_up(&mut projector).await.expect("catch up");
        // A reactor over the same log: its dead letters and lag, under its name.
        let mut reactor = runner.reactor_driver(Alarm, read_models);
        runner
            .catch_up_reactor(&mut reactor)
            .await
            .expect("catch up");
    });
    assert_eq!(
        seen.get(&format!(
            "{}{{event_type=Counted,projection_name=tally}}",
            telemetry::PROJECTION_PROCESSED
        )),
        Some(&2)
    );
    assert_eq!(
        seen.get(&format!(
            "{}{{event_type=Recounted,projection_name=tally}}",
            telemetry::PROJECTION_PROCESSED
        )),
        Some(&1)
    );
    assert_eq!(gauges(&seen, "tally"), [Some(1), Some(0), Some(0)]);
    assert_eq!(gauges(&seen, "alarm"), [Some(1), Some(0), Some(0)]);
}

/// Counts `Counted` events per stream, and dispatches nothing.
struct Ledger;

impl factum::process::ProcessManager for Ledger {
    const NAME: &'static str = "ledger";
    const EVENTS: &'static [&'static str] = &["Counted"];
    type State = u32;
    type Command = u64;

    fn route(
        &self,
        event: &RecordedEvent,
    ) -> Result<factum::process::Route, factum::process::HandlerError> {
        Ok(factum::process::Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        seen: &mut u32,
        _: &RecordedEvent,
    ) -> Result<factum::process::Reaction<u64>, factum::process::HandlerError> {
        *seen += 1;
        Ok(factum::process::Reaction::none())
    }

    async fn dispatch(
        &self,
        _: &u64,
        _: &factum::process::DispatchContext,
    ) -> Result<(), factum::process::DispatchError> {
        Ok(())
    }
}

/// A process manager is measured as a projection is, under its name: its lag once
/// caught up, and the row an operator parked.
#[test]
fn a_process_manager_reports_its_lag_and_dead_letters() {
    use factum::process::sqlite::ProcessRunner;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let seen = measured(|| async move {
        let (store, read_models) = store_and_read_models(&root).await;
        store
            .append(
                "Ledger-1",
                "Ledger",
                ExpectedVersion::NoStream,
                (0..4).map(|_| event("Counted")).collect(),
            )
            .await
            .expect("append");
        // The third event's row points at a stream that has no row: unreadable.
        rusqlite::Connection::open(root.join("events.db"))
            .expect("raw")
            .execute_batch(
                "PRAGMA foreign_keys=OFF; UPDATE events SET stream_key = 999 WHERE position = 3",
            )
            .expect("an edit");
        let runner = ProcessRunner::new(store.clone());
        let mut driver = runner.driver(Ledger, read_models);
        runner
            .catch_up(&mut driver)
            .await
            .expect_err("stops before the row");
        runner
            .park_unreadable(&mut driver, 3, "ops: the row is lost")
            .await
            .expect("parks it");
        assert_eq!(runner.catch_up(&mut driver).await.expect("catches up"), 4);
    });
    assert_eq!(gauges(&seen, "ledger"), [Some(1), Some(0), Some(0)]);
}
