//! The projection runner on SQLite read models: catch-up, live, exactly once, poison
//! events, rebuild, blue/green.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{
    OnPoison, Projection, ProjectionError, ProjectionRunner, ReadModel, ReadModelError, Retry,
    RunnerError, Target, VersionState,
};
use factum::store::{EventStore, ExpectedVersion, SqliteOpenError, SqliteStore};

/// Counts events per stream; fails on payloads with `"poison": true` while `failures`
/// is positive.
struct Counts<const V: u32> {
    failures: Arc<AtomicU32>,
}

impl<const V: u32> Projection for Counts<V> {
    const NAME: &'static str = "counts";
    const VERSION: u32 = V;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch("CREATE TABLE counts (stream TEXT PRIMARY KEY, n INTEGER NOT NULL, version INTEGER NOT NULL)")?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        if event.payload.get().contains("\"poison\":true")
            && self.failures.load(Ordering::SeqCst) > 0
        {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ProjectionError::msg("the handler refuses poison"));
        }
        tx.execute(
            "INSERT INTO counts (stream, n, version) VALUES (?1, 1, ?2)
             ON CONFLICT (stream) DO UPDATE SET n = n + 1, version = excluded.version",
            rusqlite::params![event.stream_id, V],
        )?;
        Ok(())
    }
}

fn counts<const V: u32>(failures: u32) -> Counts<V> {
    Counts {
        failures: Arc::new(AtomicU32::new(failures)),
    }
}

fn event(name: &str, poison: bool) -> NewEvent {
    let payload =
        serde_json::value::to_raw_value(&serde_json::json!({ "poison": poison })).unwrap();
    NewEvent::new(name, 1, payload, Metadata::default())
}

async fn append(store: &SqliteStore, stream: &str, events: Vec<NewEvent>) -> u64 {
    store
        .append(stream, "Counter", ExpectedVersion::Any, events)
        .await
        .unwrap()
        .last_position
}

async fn read_counts(read_models: &SqliteReadModel) -> Vec<(String, i64)> {
    let reader = read_models.reader("counts").await.unwrap();
    let mut statement = reader
        .prepare("SELECT stream, n FROM counts ORDER BY stream")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A store and a read-model directory in a fresh temporary directory (kept while `dir`
/// lives).
async fn fresh() -> (tempfile::TempDir, SqliteStore, SqliteReadModel) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    (dir, store, read_models)
}

#[tokio::test]
async fn catches_up_follows_live_and_skips_what_it_does_not_handle() {
    let (_dir, store, read_models) = fresh().await;
    append(
        &store,
        "a",
        vec![
            event("Counted", false),
            event("Other", false),
            event("Counted", false),
        ],
    )
    .await;

    let runner = ProjectionRunner::new(store.clone()).batch_size(2);
    assert!(matches!(
        read_models.reader("counts").await,
        Err(ReadModelError::NotActive { .. })
    ));
    let mut handle = runner.spawn(counts::<1>(0), read_models.clone());
    handle.wait_for(3).await.unwrap();
    assert_eq!(read_counts(&read_models).await, vec![("a".to_owned(), 2)]);

    let last = append(&store, "b", vec![event("Counted", false)]).await;
    handle.wait_for(last).await.unwrap();
    assert_eq!(
        read_counts(&read_models).await,
        vec![("a".to_owned(), 2), ("b".to_owned(), 1)]
    );
    let lag = handle.lag().await.unwrap();
    assert_eq!((lag.events, lag.checkpoint, lag.head), (0, last, last));
    handle.stop().await.unwrap();

    let versions = read_models.versions("counts").await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (
            versions[0].version,
            versions[0].state,
            versions[0].checkpoint
        ),
        (1, VersionState::Active, last)
    );
}

#[tokio::test]
async fn a_failing_event_is_retried_then_parked_and_can_be_replayed() {
    let (_dir, store, read_models) = fresh().await;
    append(
        &store,
        "a",
        vec![
            event("Counted", false),
            event("Counted", true),
            event("Counted", false),
        ],
    )
    .await;

    // Fails once, succeeds on the retry: nothing parked.
    let runner =
        ProjectionRunner::new(store.clone()).retry(Retry::new(3, Duration::from_millis(1)));
    let mut projector = runner.projector(counts::<1>(1), read_models.clone());
    let caught_up = runner.catch_up(&mut projector).await.unwrap();
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (3, 0, 3)
    );

    // Fails every time: parked with its error, the rest applied.
    let mut projector = runner.projector(counts::<2>(100), read_models.clone());
    let caught_up = runner.catch_up(&mut projector).await.unwrap();
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (2, 1, 3)
    );
    let parked = projector.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].event.position, parked[0].attempts), (2, 3));
    assert!(
        parked[0].error.contains("refuses poison"),
        "{}",
        parked[0].error
    );

    // Fixed: replaying applies it and empties the dead-letter table.
    projector.projection().failures.store(0, Ordering::SeqCst);
    projector.replay_parked(2).await.unwrap();
    assert!(projector.parked().await.unwrap().is_empty());
    let target = Target {
        name: "counts",
        version: 2,
    };
    read_models.activate(target).await.unwrap();
    assert_eq!(read_counts(&read_models).await, vec![("a".to_owned(), 3)]);
}

#[tokio::test]
async fn stop_on_poison_keeps_the_checkpoint_before_the_event() {
    let (_dir, store, read_models) = fresh().await;
    append(
        &store,
        "a",
        vec![
            event("Counted", false),
            event("Counted", true),
            event("Counted", false),
        ],
    )
    .await;

    let runner = ProjectionRunner::new(store.clone())
        .retry(Retry::new(2, Duration::from_millis(1)))
        .on_poison(OnPoison::Stop);
    let mut projector = runner.projector(counts::<1>(100), read_models.clone());
    let error = runner
        .catch_up(&mut projector)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "stopped at event `Counted` (stream `a`, version 2, position 2) after 2 attempts"
        ),
        "{error}"
    );
    assert_eq!(projector.checkpoint().await.unwrap(), 1);
}

#[tokio::test]
async fn rebuild_reports_progress_and_ends_equal() {
    let (_dir, store, read_models) = fresh().await;
    for stream in ["a", "b", "c"] {
        append(
            &store,
            stream,
            (0..10).map(|_| event("Counted", false)).collect(),
        )
        .await;
    }
    let runner = ProjectionRunner::new(store.clone()).batch_size(7);
    runner
        .catch_up_and_activate(&mut runner.projector(counts::<1>(0), read_models.clone()))
        .await
        .unwrap();
    let before = read_counts(&read_models).await;

    let mut reports = Vec::new();
    let rebuilt = runner
        .rebuild(counts::<1>(0), read_models.clone(), |progress| {
            reports.push(*progress)
        })
        .await
        .unwrap();
    assert_eq!((rebuilt.applied, rebuilt.checkpoint), (30, 30));
    assert_eq!(read_counts(&read_models).await, before);
    assert_eq!(reports.first().map(|p| p.position), Some(0));
    assert_eq!(
        reports
            .last()
            .map(|p| (p.position, p.applied, p.fraction())),
        Some((30, 30, 1.0))
    );
    assert!(
        reports
            .windows(2)
            .all(|pair| pair[0].position <= pair[1].position)
    );
}

#[tokio::test]
async fn a_new_version_builds_beside_the_live_one_and_switches_when_caught_up() {
    let (_dir, store, read_models) = fresh().await;
    append(
        &store,
        "a",
        (0..5).map(|_| event("Counted", false)).collect(),
    )
    .await;
    let runner = ProjectionRunner::new(store.clone()).batch_size(2);
    runner
        .catch_up_and_activate(&mut runner.projector(counts::<1>(0), read_models.clone()))
        .await
        .unwrap();

    // v2 catches up without activation: readers still see v1.
    let mut v2 = runner.projector(counts::<2>(0), read_models.clone());
    runner.catch_up(&mut v2).await.unwrap();
    let reader = read_models.reader("counts").await.unwrap();
    let version: u32 = reader
        .query_row("SELECT version FROM counts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 1);

    runner.catch_up_and_activate(&mut v2).await.unwrap();
    let reader = read_models.reader("counts").await.unwrap();
    let version: u32 = reader
        .query_row("SELECT version FROM counts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let states: Vec<_> = read_models
        .versions("counts")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.state))
        .collect();
    assert_eq!(
        states,
        vec![(1, VersionState::Retired), (2, VersionState::Active)]
    );
}

#[tokio::test]
async fn applying_twice_skips_what_the_checkpoint_covers() {
    let (_dir, store, read_models) = fresh().await;
    append(
        &store,
        "a",
        (0..4).map(|_| event("Counted", false)).collect(),
    )
    .await;
    let events = store.read_all(0, 100).await.unwrap();
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    let first = projector.apply(&events[..3], 3).await.unwrap();
    // A redelivery overlapping what was applied (as a bus may do).
    let second = projector.apply(&events, 4).await.unwrap();
    assert_eq!(
        (
            first.applied,
            second.applied,
            second.skipped,
            second.checkpoint
        ),
        (3, 1, 3, 4)
    );
    read_models.activate(projector.target()).await.unwrap();
    assert_eq!(read_counts(&read_models).await, vec![("a".to_owned(), 4)]);
}

/// Swallows the error of a statement that makes SQLite end the transaction itself.
struct Swallower;

impl Projection for Swallower {
    const NAME: &'static str = "swallower";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE seen (position INTEGER NOT NULL);
             CREATE TABLE refused (position INTEGER NOT NULL);
             CREATE TRIGGER refuse BEFORE INSERT ON refused BEGIN SELECT RAISE(ROLLBACK, 'no'); END;",
        )?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO seen (position) VALUES (?1)",
            [event.position as i64],
        )?;
        if event.payload.get().contains("\"poison\":true") {
            // The error is ignored: SQLite has already rolled the whole transaction back.
            let _ = tx.execute(
                "INSERT INTO refused (position) VALUES (?1)",
                [event.position as i64],
            );
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_swallows_an_error_ending_the_transaction_fails_its_event() {
    let (_dir, store, read_models) = fresh().await;
    append(&store, "a", vec![event("Counted", false)]).await;
    let runner =
        ProjectionRunner::new(store.clone()).retry(Retry::new(2, Duration::from_millis(1)));
    let mut projector = runner.projector(Swallower, read_models.clone());
    assert_eq!(runner.catch_up(&mut projector).await.unwrap().checkpoint, 1);

    append(
        &store,
        "a",
        vec![
            event("Counted", false),
            event("Counted", true),
            event("Counted", false),
        ],
    )
    .await;
    let caught_up = runner.catch_up(&mut projector).await.unwrap();
    // The event whose handler swallowed the error is parked; the others are applied, and
    // nothing ran outside a transaction.
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (2, 1, 4)
    );
    let parked = projector.parked().await.unwrap();
    assert_eq!(parked[0].event.position, 3);
    assert!(
        parked[0].error.contains("ended the read-model transaction"),
        "{}",
        parked[0].error
    );
    let file = rusqlite::Connection::open(read_models.path_of(Target {
        name: "swallower",
        version: 1,
    }))
    .unwrap();
    let mut seen = file
        .prepare("SELECT position FROM seen ORDER BY position")
        .unwrap();
    let seen: Vec<i64> = seen
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seen, [1, 2, 4]);
}

// ---------------------------------------------------------------------------------------
// A row the store cannot read (issue 9, point 3)

/// The store: 3,000 `Counted` events appended through the store, 30 streams of
/// 100, then the event at position 365 pointed at a stream key that has no row, with
/// raw SQL on the file.
async fn store_with_an_orphaned_event() -> (tempfile::TempDir, SqliteStore, SqliteReadModel) {
    let (dir, store, read_models) = fresh().await;
    for stream in 0..30 {
        let events = (0..100).map(|_| event("Counted", false)).collect();
        append(&store, &format!("s{stream}"), events).await;
    }
    assert_eq!(store.head().await.unwrap().unwrap().position, 3000);
    let raw = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    raw.busy_timeout(Duration::from_secs(5)).unwrap();
    raw.execute_batch(
        "PRAGMA foreign_keys=OFF; UPDATE events SET stream_key=999 WHERE position=365",
    )
    .unwrap();
    (dir, store, read_models)
}

/// Asserts `error` is a corrupt row at position 365, the orphaned event.
fn assert_orphan_at_365(error: &factum::store::StoreError) {
    match error {
        factum::store::StoreError::CorruptRow {
            position, reason, ..
        } => {
            assert_eq!(*position, Some(365), "{error}");
            assert!(reason.contains("key 999"), "{error}");
            let message = error.to_string();
            assert!(message.contains("position 365"), "{message}");
        }
        other => panic!("expected a corrupt row at 365, got {other:?}"),
    }
}

fn assert_runner_stopped_at_365(error: &factum::projection::RunnerError) {
    match error {
        factum::projection::RunnerError::Store { source, .. } => assert_orphan_at_365(source),
        other => panic!("expected the store's corrupt row, got {other:?}"),
    }
}

#[tokio::test]
async fn an_event_whose_stream_row_is_missing_stops_readers_and_followers_at_its_position() {
    let (_dir, store, read_models) = store_with_an_orphaned_event().await;

    // The store: an error at the row, never a silent skip; reads around it still work.
    assert_orphan_at_365(&store.read_all(0, 5000).await.unwrap_err());
    assert_orphan_at_365(&store.read_all(300, 100).await.unwrap_err());
    assert_eq!(store.read_all(0, 364).await.unwrap().len(), 364);
    let after = store.read_all(365, 5000).await.unwrap();
    assert_eq!((after.len(), after[0].position), (2635, 366));
    assert_orphan_at_365(
        &store
            .read_all_filtered(0, 5000, &["Counted"])
            .await
            .unwrap_err(),
    );
    // Nor does a follower of other names scan past it.
    assert_orphan_at_365(
        &store
            .read_all_filtered(0, 10, &["Other"])
            .await
            .unwrap_err(),
    );
    let before = store.read_all_filtered(0, 364, &["Counted"]).await.unwrap();
    assert_eq!((before.events.len(), before.scanned_to), (364, 364));
    let rest = store
        .read_all_filtered(365, 5000, &["Counted"])
        .await
        .unwrap();
    assert_eq!((rest.events.len(), rest.scanned_to), (2635, 3000));

    // A catch-up stops before it, every time, its checkpoint below it.
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    for _ in 0..2 {
        assert_runner_stopped_at_365(&runner.catch_up(&mut projector).await.unwrap_err());
        assert!(projector.checkpoint().await.unwrap() < 365);
        assert!(projector.parked().await.unwrap().is_empty());
    }
    // So does a spawned runner: its task ends with the error.
    let mut handle = runner.spawn(counts::<1>(0), read_models.clone());
    assert_runner_stopped_at_365(&handle.wait_for(3000).await.unwrap_err());
    assert!(
        handle
            .checkpoint()
            .is_none_or(|checkpoint| checkpoint < 365)
    );
    assert!(projector.checkpoint().await.unwrap() < 365);
}

#[tokio::test]
async fn an_operator_parks_an_unreadable_row_and_the_projection_goes_on() {
    let (_dir, store, read_models) = store_with_an_orphaned_event().await;
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    assert!(runner.catch_up(&mut projector).await.is_err());
    let checkpoint = projector.checkpoint().await.unwrap();

    // Only the position where reading fails is parked; anything else is refused, and
    // nothing is written.
    for (position, next) in [(364, Some(365)), (366, Some(365)), (3000, Some(365))] {
        match runner
            .park_unreadable(&mut projector, position, "ops")
            .await
        {
            Err(RunnerError::NotUnreadable {
                next_unreadable, ..
            }) => assert_eq!(next_unreadable, next, "{position}"),
            other => panic!("{position}: expected a refusal, got {other:?}"),
        }
    }
    let refusal = runner
        .park_unreadable(&mut projector, 364, "ops")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refusal.contains("position 364 is readable; the next unreadable row is at 365"),
        "{refusal}"
    );
    assert_eq!(projector.checkpoint().await.unwrap(), checkpoint);
    assert!(projector.parked().await.unwrap().is_empty());

    // Parked: the 364 readable events before it are applied, the row is a dead letter,
    // the checkpoint is at it.
    let parked = runner
        .park_unreadable(&mut projector, 365, "alice: row lost, ticket 9")
        .await
        .unwrap();
    assert_eq!(
        (parked.applied, parked.parked, parked.checkpoint),
        (364, 1, 365)
    );
    let dead_letters = projector.parked().await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    let dead = &dead_letters[0];
    assert!(dead.is_unreadable());
    assert_eq!((dead.event.position, dead.attempts), (365, 0));
    assert!(
        dead.error.contains("alice: row lost, ticket 9"),
        "{}",
        dead.error
    );
    assert!(dead.error.contains("position 365"), "{}", dead.error);
    assert!(dead.error.contains("key 999"), "{}", dead.error);

    // The rest of the log follows; the projection saw every readable event once.
    let caught_up = runner.catch_up_and_activate(&mut projector).await.unwrap();
    assert_eq!((caught_up.applied, caught_up.checkpoint), (2635, 3000));
    let total: i64 = read_counts(&read_models).await.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 2999);

    // Parking again, or a readable position, is refused; the dead letter cannot be
    // replayed.
    assert!(matches!(
        runner.park_unreadable(&mut projector, 365, "ops").await,
        Err(RunnerError::NotUnreadable {
            checkpoint: 3000,
            ..
        })
    ));
    let last = append(&store, "s0", vec![event("Counted", false)]).await;
    match runner.park_unreadable(&mut projector, last, "ops").await {
        Err(
            error @ RunnerError::NotUnreadable {
                next_unreadable: None,
                ..
            },
        ) => assert!(
            error
                .to_string()
                .contains(&format!("position {last} is readable")),
            "{error}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        projector.replay_parked(365).await,
        Err(RunnerError::NoEventToReplay { position: 365, .. })
    ));
    // A spawned runner goes on from there.
    let mut handle = runner.spawn(counts::<1>(0), read_models.clone());
    handle.wait_for(last).await.unwrap();
    handle.stop().await.unwrap();
    assert_eq!(projector.parked().await.unwrap().len(), 1);
}

/// Remembers the position of every event it reacts to.
struct Reacted {
    seen: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl factum::projection::Reactor for Reacted {
    const NAME: &'static str = "reacted";
    const EVENTS: &'static [&'static str] = &["Counted"];

    async fn react(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().push(event.position);
        Ok(())
    }
}

/// 300 `Counted` events appended through the store, 3 streams of 100, then the event at
/// position 165 pointed at a stream key that has no row, with raw SQL on the file.
async fn few_hundred_events_one_orphaned() -> (tempfile::TempDir, SqliteStore, SqliteReadModel) {
    let (dir, store, read_models) = fresh().await;
    for stream in 0..3 {
        let events = (0..100).map(|_| event("Counted", false)).collect();
        append(&store, &format!("s{stream}"), events).await;
    }
    assert_eq!(store.head().await.unwrap().unwrap().position, 300);
    let raw = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    raw.busy_timeout(Duration::from_secs(5)).unwrap();
    raw.execute_batch(
        "PRAGMA foreign_keys=OFF; UPDATE events SET stream_key=999 WHERE position=165",
    )
    .unwrap();
    (dir, store, read_models)
}

fn assert_stopped_at_165(error: &RunnerError) {
    match error {
        RunnerError::Store {
            projection: "reacted",
            source:
                factum::store::StoreError::CorruptRow {
                    position: Some(165),
                    reason,
                    ..
                },
        } => assert!(reason.contains("key 999"), "{error:?}"),
        other => panic!("expected the store's corrupt row at 165, got {other:?}"),
    }
}

#[tokio::test]
async fn an_operator_parks_an_unreadable_row_and_the_reactor_goes_on() {
    let (_dir, store, read_models) = few_hundred_events_one_orphaned().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reactor = || Reacted {
        seen: Arc::clone(&seen),
    };
    let runner = ProjectionRunner::new(store.clone()).batch_size(50);
    let mut driver = runner.reactor_driver(reactor(), read_models.clone());

    // It stops before the row, every run, its checkpoint below it: a catch-up...
    for _ in 0..2 {
        assert_stopped_at_165(&runner.catch_up_reactor(&mut driver).await.unwrap_err());
        assert!(driver.checkpoint().await.unwrap() < 165);
        assert!(driver.parked().await.unwrap().is_empty());
    }
    // ...and a spawned reactor, whose task ends with the error.
    let mut handle = runner.spawn_reactor(reactor(), read_models.clone());
    assert_stopped_at_165(&handle.wait_for(300).await.unwrap_err());
    assert!(
        handle
            .checkpoint()
            .is_none_or(|checkpoint| checkpoint < 165)
    );
    let checkpoint = driver.checkpoint().await.unwrap();
    assert!(checkpoint < 165);
    let reacted = seen.lock().unwrap().len();

    // Only the position where reading fails is parked; anything else is refused, and
    // nothing is written.
    for (position, next) in [(164, Some(165)), (166, Some(165)), (300, Some(165))] {
        match runner
            .park_unreadable_reactor(&mut driver, position, "ops")
            .await
        {
            Err(RunnerError::NotUnreadable {
                projection: "reacted",
                version: 0,
                next_unreadable,
                ..
            }) => assert_eq!(next_unreadable, next, "{position}"),
            other => panic!("{position}: expected a refusal, got {other:?}"),
        }
    }
    let refusal = runner
        .park_unreadable_reactor(&mut driver, 164, "ops")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refusal.contains("position 164 is readable; the next unreadable row is at 165"),
        "{refusal}"
    );
    assert_eq!(driver.checkpoint().await.unwrap(), checkpoint);
    assert!(driver.parked().await.unwrap().is_empty());
    assert_eq!(seen.lock().unwrap().len(), reacted);

    // Parked: it reacts to the readable events before it, the row is a dead letter, the
    // checkpoint is at it.
    let parked = runner
        .park_unreadable_reactor(&mut driver, 165, "alice: row lost, ticket 9")
        .await
        .unwrap();
    assert_eq!(
        (parked.applied, parked.parked, parked.checkpoint),
        (164 - checkpoint, 1, 165)
    );
    let dead_letters = driver.parked().await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    let dead = &dead_letters[0];
    assert!(dead.is_unreadable());
    assert_eq!((dead.event.position, dead.attempts), (165, 0));
    for part in ["alice: row lost, ticket 9", "position 165", "key 999"] {
        assert!(dead.error.contains(part), "{part}: {}", dead.error);
    }

    // The rest of the log follows.
    let caught_up = runner.catch_up_reactor(&mut driver).await.unwrap();
    assert_eq!((caught_up.applied, caught_up.checkpoint), (135, 300));

    // Parking again, or a readable position, is refused.
    assert!(matches!(
        runner
            .park_unreadable_reactor(&mut driver, 165, "ops")
            .await,
        Err(RunnerError::NotUnreadable {
            checkpoint: 300,
            next_unreadable: None,
            ..
        })
    ));
    let last = append(&store, "s0", vec![event("Counted", false)]).await;
    assert!(matches!(
        runner
            .park_unreadable_reactor(&mut driver, last, "ops")
            .await,
        Err(RunnerError::NotUnreadable {
            checkpoint: 300,
            next_unreadable: None,
            ..
        })
    ));
    // A spawned reactor goes on from there.
    let mut handle = runner.spawn_reactor(reactor(), read_models.clone());
    handle.wait_for(last).await.unwrap();
    handle.stop().await.unwrap();
    assert_eq!(driver.parked().await.unwrap().len(), 1);

    // Across every run, each readable event was reacted to exactly once, and the
    // unreadable one never.
    let mut reacted = seen.lock().unwrap().clone();
    reacted.sort_unstable();
    let expected: Vec<u64> = (1..=last).filter(|position| *position != 165).collect();
    assert_eq!(reacted, expected);
}

/// A read-model file that lost its content (cut to nothing, or overwritten) is refused
/// untouched, never taken for a new, empty read model — which would restart the
/// projection from nothing without a word, or lose a process manager's state.
#[tokio::test]
async fn a_read_model_file_that_is_not_a_database_is_refused_untouched() {
    let (dir, store, read_models) = fresh().await;
    let last = append(
        &store,
        "a",
        vec![event("Counted", false), event("Counted", false)],
    )
    .await;
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    assert_eq!(
        runner.catch_up(&mut projector).await.unwrap().checkpoint,
        last
    );
    drop(projector);
    drop(read_models);

    let read = dir.path().join("read");
    let version_file = read.join("counts.v1.sqlite3");
    for (what, bytes) in [
        ("cut to nothing", Vec::new()),
        ("cut to 10 bytes", b"SQLite for".to_vec()),
        (
            "overwritten with text",
            b"these are not the rows you are looking for\n".repeat(4),
        ),
    ] {
        std::fs::write(&version_file, &bytes).unwrap();
        let read_models = SqliteReadModel::open(&read).await.unwrap();
        let mut projector = runner.projector(counts::<1>(0), read_models.clone());
        let error = runner.catch_up(&mut projector).await.unwrap_err();
        let RunnerError::ReadModel { source, .. } = &error else {
            panic!("{what}: expected a read-model error, got {error:?}");
        };
        assert!(
            matches!(
                source,
                ReadModelError::NotAReadModel { path, .. } if path.ends_with("counts.v1.sqlite3")
            ),
            "{what}: {source:?}"
        );
        assert_eq!(
            std::fs::read(&version_file).unwrap(),
            bytes,
            "{what}: the file is left as it was"
        );
        // A spawned runner ends with it instead of retrying.
        let mut handle = runner.spawn(counts::<1>(0), read_models.clone());
        let ended = handle.wait_for(last).await;
        assert!(
            matches!(&ended, Err(RunnerError::ReadModel { .. })),
            "{what}: {ended:?}"
        );
    }

    // The catalog too: opening the directory refuses it.
    let catalog = read.join("catalog.sqlite3");
    std::fs::write(&catalog, b"").unwrap();
    let opened = SqliteReadModel::open(&read).await;
    assert!(
        matches!(
            &opened,
            Err(ReadModelError::NotAReadModel { path, reason }) if path.ends_with("catalog.sqlite3") && reason.contains("empty")
        ),
        "{opened:?}"
    );
    assert_eq!(std::fs::read(&catalog).unwrap(), b"");
}

/// The names of the tables in the SQLite file at `path` (not SQLite's own).
fn tables_of(path: &std::path::Path) -> Vec<String> {
    rusqlite::Connection::open(path)
        .unwrap()
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The error `counts` v1 fails with when it catches up.
async fn catch_up_error(
    runner: &ProjectionRunner<SqliteStore>,
    read_models: &SqliteReadModel,
) -> RunnerError {
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    runner.catch_up(&mut projector).await.unwrap_err()
}

#[tokio::test]
async fn a_catalog_and_a_store_are_never_opened_as_each_other() {
    let (dir, store, read_models) = fresh().await;
    append(&store, "a", vec![event("Counted", false)]).await;
    drop(store);
    drop(read_models);
    let store_file = dir.path().join("events.sqlite3");
    let catalog = dir.path().join("read").join("catalog.sqlite3");

    // A catalog opened as a store.
    let bytes = std::fs::read(&catalog).unwrap();
    match SqliteStore::open(&catalog).await {
        Err(SqliteOpenError::NotAStore { reason, .. }) => assert_eq!(
            reason,
            "it is a factum read-model catalog (it holds `factum_catalog_version`), not a store"
        ),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    assert_eq!(std::fs::read(&catalog).unwrap(), bytes, "left as it was");

    // A store opened as a catalog: a read-model directory holding it as `catalog.sqlite3`.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let posing = elsewhere.join("catalog.sqlite3");
    std::fs::copy(&store_file, &posing).unwrap();
    let bytes = std::fs::read(&posing).unwrap();
    match SqliteReadModel::open(&elsewhere).await {
        Err(ReadModelError::NotAReadModel { path, reason }) => {
            assert!(path.ends_with("catalog.sqlite3"), "{path}");
            assert_eq!(
                reason,
                "it is a factum store (it holds `factum_schema_version`), not a read-model \
                 catalog"
            );
        }
        other => panic!("expected NotAReadModel, got {other:?}"),
    }
    assert_eq!(std::fs::read(&posing).unwrap(), bytes, "left as it was");
    assert_eq!(
        tables_of(&posing),
        [
            "archives",
            "checkpoints",
            "commands",
            "event_tags",
            "events",
            "factum_schema_version",
            "snapshots",
            "streams"
        ],
        "not migrated"
    );

    // A store, or a catalog, where a version's file is expected.
    let read = dir.path().join("read");
    let read_models = SqliteReadModel::open(&read).await.unwrap();
    let runner = ProjectionRunner::new(SqliteStore::open(&store_file).await.unwrap());
    for (what, source) in [("a store", &store_file), ("a catalog", &catalog)] {
        let version_file = read.join("counts.v1.sqlite3");
        std::fs::copy(source, &version_file).unwrap();
        let error = catch_up_error(&runner, &read_models).await;
        assert!(
            matches!(
                &error,
                RunnerError::ReadModel {
                    source: ReadModelError::NotAReadModel { reason, .. },
                    ..
                } if reason.ends_with("not a read-model version")
            ),
            "{what}: {error:?}"
        );
        assert!(
            !tables_of(&version_file).contains(&"factum_checkpoint".to_owned()),
            "{what}: not migrated"
        );
    }
}

#[tokio::test]
async fn read_models_written_by_a_newer_factum_are_refused_untouched() {
    let (dir, store, read_models) = fresh().await;
    append(&store, "a", vec![event("Counted", false)]).await;
    let runner = ProjectionRunner::new(store.clone());
    let mut projector = runner.projector(counts::<1>(0), read_models.clone());
    runner.catch_up_and_activate(&mut projector).await.unwrap();
    drop(projector);
    drop(read_models);
    let read = dir.path().join("read");
    let from_the_future = |path: &std::path::Path, table: &str| {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute(
                &format!(
                    "INSERT INTO {table} (version, description, applied_at)
                     VALUES (9, 'from the future', 'tomorrow')"
                ),
                [],
            )
            .unwrap();
    };

    // A version's file.
    let version_file = read.join("counts.v1.sqlite3");
    from_the_future(&version_file, "factum_read_model_version");
    let bytes = std::fs::read(&version_file).unwrap();
    let read_models = SqliteReadModel::open(&read).await.unwrap();
    let error = catch_up_error(&runner, &read_models).await;
    assert!(
        matches!(
            &error,
            RunnerError::ReadModel {
                source: ReadModelError::SchemaTooNew {
                    database,
                    found: 9,
                    supported: 2
                },
                ..
            } if database.ends_with("counts.v1.sqlite3")
        ),
        "{error:?}"
    );
    // A spawned runner ends with it instead of retrying.
    let mut handle = runner.spawn(counts::<1>(0), read_models.clone());
    assert!(matches!(
        handle.wait_for(1).await,
        Err(RunnerError::ReadModel {
            source: ReadModelError::SchemaTooNew { .. },
            ..
        })
    ));
    assert_eq!(
        std::fs::read(&version_file).unwrap(),
        bytes,
        "left as it was"
    );
    drop((read_models, handle));

    // The catalog.
    let catalog = read.join("catalog.sqlite3");
    from_the_future(&catalog, "factum_catalog_version");
    let bytes = std::fs::read(&catalog).unwrap();
    let error = SqliteReadModel::open(&read).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "read model `{}`: its schema is at version 9, newer than this factum knows \
             (newest known: 1); upgrade factum to open it",
            catalog.display()
        )
    );
    assert_eq!(std::fs::read(&catalog).unwrap(), bytes, "left as it was");
}

#[tokio::test]
async fn a_rebuild_keeps_the_version_files_schema_record() {
    let (dir, store, read_models) = fresh().await;
    let last = append(&store, "a", vec![event("Counted", false)]).await;
    let runner = ProjectionRunner::new(store.clone());
    runner
        .rebuild(counts::<1>(0), read_models.clone(), |_| {})
        .await
        .unwrap();
    let caught_up = runner
        .rebuild(counts::<1>(0), read_models.clone(), |_| {})
        .await
        .unwrap();
    assert_eq!(caught_up.checkpoint, last);
    let version_file = dir.path().join("read").join("counts.v1.sqlite3");
    assert_eq!(
        tables_of(&version_file),
        [
            "counts",
            "factum_checkpoint",
            "factum_parked",
            "factum_partitions",
            "factum_read_model_version"
        ]
    );
    let recorded: i64 = rusqlite::Connection::open(&version_file)
        .unwrap()
        .query_row(
            "SELECT max(version) FROM factum_read_model_version",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(recorded, 2);
    assert_eq!(read_counts(&read_models).await, vec![("a".to_owned(), 1)]);
}
