//! What projections promise under stress, on SQLite: a projection killed with SIGKILL in
//! the middle of a batch restarts to a read model equal to a from-scratch rebuild (no
//! event applied twice, none skipped); a projection following 8 concurrent writers ends
//! equal to a rebuild; a blue/green switch while writers keep appending misses nothing.
//!
//! The killed projection runs in a child process: this test binary started again with
//! the `child_process` test selected and its role in environment variables.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{
    Projection, ProjectionError, ProjectionHandle, ProjectionRunner, ReadModel, Target,
    VersionState,
};
use factum::store::{EventStore, ExpectedVersion, SqliteStore};

const ROLE: &str = "FACTUM_PROJECTION_CHILD_ROLE";
const DIR: &str = "FACTUM_PROJECTION_CHILD_DIR";

/// Records every event it applies (so a double apply shows as two rows with one
/// position) and a running total per stream.
struct Ledger<const V: u32> {
    /// Sleeps this long per event, so a kill lands in the middle of a batch.
    pause: Duration,
}

impl<const V: u32> Projection for Ledger<V> {
    const NAME: &'static str = "ledger";
    const VERSION: u32 = V;
    const EVENTS: &'static [&'static str] = &["Deposited"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE applied (position INTEGER NOT NULL, stream TEXT NOT NULL);
             CREATE TABLE totals (stream TEXT PRIMARY KEY, amount INTEGER NOT NULL, events INTEGER NOT NULL);",
        )?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        let payload: serde_json::Value = serde_json::from_str(event.payload.get())?;
        let amount = payload["amount"]
            .as_i64()
            .ok_or_else(|| ProjectionError::msg("no amount"))?;
        tx.prepare_cached("INSERT INTO applied (position, stream) VALUES (?1, ?2)")?
            .execute(rusqlite::params![event.position as i64, event.stream_id])?;
        tx.prepare_cached(
            "INSERT INTO totals (stream, amount, events) VALUES (?1, ?2, 1)
             ON CONFLICT (stream) DO UPDATE SET amount = amount + excluded.amount, events = events + 1",
        )?
        .execute(rusqlite::params![event.stream_id, amount])?;
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        Ok(())
    }
}

fn deposit(amount: i64) -> NewEvent {
    let payload =
        serde_json::value::to_raw_value(&serde_json::json!({ "amount": amount })).unwrap();
    NewEvent::new("Deposited", 1, payload, Metadata::default())
}

fn noise() -> NewEvent {
    NewEvent::new(
        "Noted",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
        Metadata::default(),
    )
}

/// What a read model holds: the totals, and whether any position was applied twice.
#[derive(Debug, PartialEq)]
struct Snapshot {
    totals: Vec<(String, i64, i64)>,
    applied: i64,
    distinct_positions: i64,
}

fn snapshot_of(connection: &rusqlite::Connection) -> Snapshot {
    let mut statement = connection
        .prepare("SELECT stream, amount, events FROM totals ORDER BY stream")
        .unwrap();
    let totals = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap();
    let totals = totals.collect::<Result<_, _>>().unwrap();
    let (applied, distinct_positions) = connection
        .query_row(
            "SELECT count(*), count(DISTINCT position) FROM applied",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    Snapshot {
        totals,
        applied,
        distinct_positions,
    }
}

/// A from-scratch rebuild in a fresh read-model directory.
async fn rebuilt(store: &SqliteStore, dir: &Path) -> Snapshot {
    let read_models = SqliteReadModel::open(dir).await.unwrap();
    let runner = ProjectionRunner::new(store.clone()).batch_size(1000);
    runner
        .rebuild(
            Ledger::<1> {
                pause: Duration::ZERO,
            },
            read_models.clone(),
            |_| {},
        )
        .await
        .unwrap();
    snapshot_of(&read_models.reader("ledger").await.unwrap())
}

async fn fill(store: &SqliteStore, streams: usize, batches: usize) {
    for batch in 0..batches {
        for stream in 0..streams {
            let events = (0..10)
                .map(|i| {
                    if i % 5 == 4 {
                        noise()
                    } else {
                        deposit((batch * 10 + i) as i64)
                    }
                })
                .collect();
            store
                .append(
                    &format!("account-{stream}"),
                    "Account",
                    ExpectedVersion::Any,
                    events,
                )
                .await
                .unwrap();
        }
    }
}

/// A live `Ledger` v1 runner, once it has caught up with the log.
async fn follow_to_head(
    runner: &ProjectionRunner<SqliteStore>,
    store: &SqliteStore,
    read_models: &SqliteReadModel,
) -> ProjectionHandle<SqliteStore> {
    let mut live = runner.spawn(
        Ledger::<1> {
            pause: Duration::ZERO,
        },
        read_models.clone(),
    );
    live.wait_for(store.head().await.unwrap().unwrap().position)
        .await
        .unwrap();
    live
}

/// The child's side: does nothing unless started as a child by a test below.
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
async fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "project", "unknown child role");
    let dir = PathBuf::from(std::env::var(DIR).expect("the child's directory"));
    let store = SqliteStore::open(dir.join("events.sqlite3")).await.unwrap();
    let read_models = SqliteReadModel::open(dir.join("read")).await.unwrap();
    let runner = ProjectionRunner::new(store).batch_size(200);
    let mut projector = runner.projector(
        Ledger::<1> {
            pause: Duration::from_micros(300),
        },
        read_models,
    );
    println!("projecting");
    runner.catch_up(&mut projector).await.unwrap();
    println!("caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_restarts_to_what_a_rebuild_gives() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    fill(&store, 4, 40).await; // 1,600 events, 1,280 deposits: several batches of 200.
    let mut kills = 0;
    let mut last_checkpoint = 0;
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, "project")
            .env(DIR, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Different moments each round; the pause per event keeps a batch open ~60 ms.
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        let read_models = SqliteReadModel::open(dir.path().join("read"))
            .await
            .unwrap();
        let checkpoint = read_models
            .versions("ledger")
            .await
            .unwrap()
            .first()
            .map_or(0, |status| status.checkpoint);
        assert!(
            checkpoint >= last_checkpoint,
            "the checkpoint went back: {checkpoint} < {last_checkpoint}"
        );
        last_checkpoint = checkpoint;
    }
    assert!(
        kills > 0,
        "no child was still running when killed: the test proved nothing"
    );

    // Restart in this process and finish.
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    let runner = ProjectionRunner::new(store.clone()).batch_size(200);
    runner
        .catch_up_and_activate(&mut runner.projector(
            Ledger::<1> {
                pause: Duration::ZERO,
            },
            read_models.clone(),
        ))
        .await
        .unwrap();
    let resumed = snapshot_of(&read_models.reader("ledger").await.unwrap());
    assert_eq!(
        resumed.applied, resumed.distinct_positions,
        "an event was applied twice"
    );
    assert_eq!(resumed.applied, 1280);
    assert_eq!(resumed, rebuilt(&store, &dir.path().join("rebuild")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_following_8_concurrent_writers_ends_equal_to_a_rebuild() {
    let (dir, store, read_models) = fresh().await;
    let runner = ProjectionRunner::new(store.clone()).batch_size(64);
    let mut live = runner.spawn(
        Ledger::<1> {
            pause: Duration::ZERO,
        },
        read_models.clone(),
    );

    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..40 {
                    let events = vec![deposit(round), noise(), deposit(writer)];
                    store
                        .append(
                            &format!("writer-{writer}"),
                            "Account",
                            ExpectedVersion::Any,
                            events,
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let head = store.head().await.unwrap().unwrap().position;
    live.wait_for(head).await.unwrap();
    assert_eq!(live.lag().await.unwrap().events, 0);
    live.stop().await.unwrap();

    let followed = snapshot_of(&read_models.reader("ledger").await.unwrap());
    assert_eq!(followed.applied, 8 * 40 * 2);
    assert_eq!(followed, rebuilt(&store, &dir.path().join("rebuild")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blue_green_switch_while_writers_append_misses_nothing() {
    let (dir, store, read_models) = fresh().await;
    fill(&store, 3, 20).await;
    let runner = ProjectionRunner::new(store.clone()).batch_size(50);
    let mut blue = follow_to_head(&runner, &store, &read_models).await;

    // The writers keep appending until readers have been switched to green, and 30
    // rounds beyond: the switch happens while they write.
    let switched = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let store = store.clone();
            let switched = Arc::clone(&switched);
            tokio::spawn(async move {
                let mut after_switch = 0;
                let mut round = 0;
                while after_switch < 30 {
                    store
                        .append(
                            &format!("writer-{writer}"),
                            "Account",
                            ExpectedVersion::Any,
                            vec![deposit(round), noise()],
                        )
                        .await
                        .unwrap();
                    round += 1;
                    if switched.load(Ordering::SeqCst) {
                        after_switch += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    // Green builds beside blue while the writers append, and switches when caught up.
    let mut green = runner.spawn(
        Ledger::<2> {
            pause: Duration::from_micros(50),
        },
        read_models.clone(),
    );
    let mut green_active = false;
    while !writers.iter().all(|writer| writer.is_finished()) {
        let states = read_models.versions("ledger").await.unwrap();
        let reader = read_models.reader("ledger").await.unwrap();
        let snapshot = snapshot_of(&reader);
        assert_eq!(snapshot.applied, snapshot.distinct_positions);
        // Once readers are switched to green they stay there.
        let now_green = states
            .iter()
            .any(|status| status.version == 2 && status.state == VersionState::Active);
        assert!(
            now_green || !green_active,
            "readers went back from green to blue"
        );
        green_active = now_green;
        switched.store(green_active, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(green_active, "the writers stopped before the switch");
    for writer in writers {
        writer.await.unwrap();
    }
    let head = store.head().await.unwrap().unwrap().position;
    green.wait_for(head).await.unwrap();
    blue.wait_for(head).await.unwrap();
    blue.stop().await.unwrap();
    green.stop().await.unwrap();

    let states: Vec<_> = read_models
        .versions("ledger")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.version, s.state))
        .collect();
    assert_eq!(
        states,
        vec![(1, VersionState::Retired), (2, VersionState::Active)]
    );
    let served = snapshot_of(&read_models.reader("ledger").await.unwrap());
    let deposits = store
        .read_all(0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .filter(|event| event.name == "Deposited")
        .count();
    assert_eq!(served.applied as usize, deposits);
    assert_eq!(served, rebuilt(&store, &dir.path().join("rebuild")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_while_the_live_runner_runs_ends_complete_and_applies_nothing_twice() {
    let (dir, store, read_models) = fresh().await;
    fill(&store, 3, 10).await;
    let runner = ProjectionRunner::new(store.clone()).batch_size(25);
    let mut live = follow_to_head(&runner, &store, &read_models).await;

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..80 {
                store
                    .append(
                        "late",
                        "Account",
                        ExpectedVersion::Any,
                        vec![deposit(round), noise()],
                    )
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    // The rebuild deletes the version's file under the live runner's feet; the live runner
    // must not keep writing into the deleted file.
    runner
        .rebuild(
            Ledger::<1> {
                pause: Duration::from_micros(20),
            },
            read_models.clone(),
            |_| {},
        )
        .await
        .unwrap();
    writer.await.unwrap();
    let head = store.head().await.unwrap().unwrap().position;
    live.wait_for(head).await.unwrap();
    // The rebuild may have finished before the last appends: catch up once more.
    runner
        .catch_up_and_activate(&mut runner.projector(
            Ledger::<1> {
                pause: Duration::ZERO,
            },
            read_models.clone(),
        ))
        .await
        .unwrap();
    live.stop().await.unwrap();

    let served = snapshot_of(&read_models.reader("ledger").await.unwrap());
    assert_eq!(
        served.applied, served.distinct_positions,
        "an event was applied twice"
    );
    assert_eq!(served.applied, 3 * 10 * 8 + 80);
    assert_eq!(served, rebuilt(&store, &dir.path().join("rebuild")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_runner_rebuilds_and_reactivates_a_version_reset_under_it() {
    let (dir, store, read_models) = fresh().await;
    fill(&store, 2, 5).await;
    let runner = ProjectionRunner::new(store.clone()).batch_size(10);
    let mut live = follow_to_head(&runner, &store, &read_models).await;

    // Reset as a rebuild that died right after starting would leave it.
    read_models
        .reset(Target {
            name: "ledger",
            version: 1,
        })
        .await
        .unwrap();
    assert!(read_models.reader("ledger").await.is_err());
    let last = store
        .append("late", "Account", ExpectedVersion::Any, vec![deposit(7)])
        .await
        .unwrap()
        .last_position;
    live.wait_for(last).await.unwrap();
    live.stop().await.unwrap();

    let served = snapshot_of(&read_models.reader("ledger").await.unwrap());
    assert_eq!(served.applied, served.distinct_positions);
    assert_eq!(served, rebuilt(&store, &dir.path().join("rebuild")).await);
}
