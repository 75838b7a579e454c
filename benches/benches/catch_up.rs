//! Projection catch-up throughput: factum's runner against a hand-written projection
//! doing the same work, on SQLite and (with the `postgres` feature and a server) on
//! PostgreSQL.
//!
//! Both sides read the 10,000-event log of `catch_up/domain.rs` in pages of 500 events
//! filtered to the 7,500 the projection handles, decode each payload into its typed event,
//! run the same SQL per event (prepared statements cached), and commit each page in one
//! read-model transaction together with a checkpoint row — the minimum a hand-written
//! projection needs to be crash-safe. factum adds the `#[projection]` dispatch, the
//! per-version read model, the transaction's checkpoint check and its catalog.
//!
//! Each iteration starts from an empty read model (a fresh SQLite file / a dropped schema)
//! and ends caught up; before timing, the bench checks both sides built the same model.
//! Run with `cargo bench -p factum-benches --bench catch_up` (add `--features postgres`
//! and `eval "$(scripts/postgres.sh start)"` for PostgreSQL); figures in BENCHMARKS.md.

#[path = "catch_up/domain.rs"]
mod domain;

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use factum::prelude::*;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{ProjectionRunner, ReadModel, Target};
use factum::store::SqliteStore;
use rusqlite::{Connection, params};

use crate::domain::*;

/// The projection, as users write it.
struct TaskBoard;

#[projection(name = "task_board", version = 1)]
impl TaskBoard {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(TABLES)?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(INSERT_TASK))?
            .execute(params![e.stream_id(), e.title])?;
        Ok(())
    }

    #[on]
    async fn assigned(
        &mut self,
        e: &Recorded<TaskAssigned>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(ASSIGN_TASK))?
            .execute(params![e.stream_id(), e.member])?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(COMPLETE_TASK))?
            .execute(params![e.stream_id(), e.minutes])?;
        tx.prepare_cached(&sqlite(COUNT_COMPLETION))?
            .execute(params![e.stream_id()])?;
        Ok(())
    }
}

/// `$1` placeholders as SQLite's numbered `?1`.
fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The event store file both sides read, filled once.
async fn store_with_log(dir: &Path) -> SqliteStore {
    let store = SqliteStore::open(dir.join("events.sqlite3"))
        .await
        .expect("open the store");
    for (stream, events) in streams() {
        store
            .append(&stream, "Task", ExpectedVersion::NoStream, events)
            .await
            .expect("append");
    }
    store
}

/// factum: the projection's read model (reset beforehand, so it starts from an empty
/// file like the raw side's), caught up by the runner.
async fn factum_catch_up(store: &SqliteStore, read_models: &SqliteReadModel) {
    let runner = ProjectionRunner::new(store.clone()).batch_size(BATCH);
    let caught_up = runner
        .catch_up(&mut runner.projector(TaskBoard, read_models.clone()))
        .await
        .expect("catch up");
    assert_eq!(caught_up.applied, HANDLED as u64);
}

/// Raw: the same pages, decoding and statements by hand with rusqlite, on the same
/// pragmas factum's read models use.
fn raw_catch_up(events_path: &Path, model_path: &Path) -> Connection {
    let events = Connection::open(events_path).expect("open the log");
    let mut model = Connection::open(model_path).expect("open the read model");
    model
        .pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    model
        .pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    model.execute_batch(TABLES).expect("tables");
    model
        .execute_batch(
            "CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, position INTEGER NOT NULL)",
        )
        .expect("checkpoint");
    let mut read = events
        .prepare(
            "SELECT e.position, s.stream_id, e.name, e.payload FROM events e JOIN streams s ON s.stream_key = e.stream_key
             WHERE e.position > ?1 AND e.name IN ('TaskCreated', 'TaskAssigned', 'TaskCompleted')
             ORDER BY e.position LIMIT ?2",
        )
        .expect("prepare the read");
    let mut after = 0i64;
    let mut applied = 0;
    loop {
        let page: Vec<(i64, String, String, String)> = read
            .query_map(params![after, BATCH as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .expect("read a page")
            .collect::<Result<_, _>>()
            .expect("rows");
        let Some(last) = page.last() else { break };
        after = last.0;
        let tx = model.transaction().expect("begin");
        for (_, stream_id, name, payload) in &page {
            match RawEvent::decode(name, payload).expect("decode") {
                RawEvent::Created(e) => tx
                    .prepare_cached(&sqlite(INSERT_TASK))
                    .unwrap()
                    .execute(params![stream_id, e.title]),
                RawEvent::Assigned(e) => tx
                    .prepare_cached(&sqlite(ASSIGN_TASK))
                    .unwrap()
                    .execute(params![stream_id, e.member]),
                RawEvent::Completed(e) => {
                    tx.prepare_cached(&sqlite(COMPLETE_TASK))
                        .unwrap()
                        .execute(params![stream_id, e.minutes])
                        .unwrap();
                    tx.prepare_cached(&sqlite(COUNT_COMPLETION))
                        .unwrap()
                        .execute(params![stream_id])
                }
            }
            .expect("write");
            applied += 1;
        }
        tx.execute(
            "INSERT OR REPLACE INTO checkpoint (id, position) VALUES (1, ?1)",
            [after],
        )
        .expect("checkpoint");
        tx.commit().expect("commit");
        if page.len() < BATCH {
            break;
        }
    }
    assert_eq!(applied, HANDLED);
    model
}

/// What a read model holds, to check both sides built the same.
fn members_of(connection: &Connection) -> Vec<(String, i64, i64)> {
    let mut statement = connection
        .prepare("SELECT member, completed, minutes FROM members ORDER BY member")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn catch_up_sqlite(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = runtime.block_on(store_with_log(dir.path()));
    let events_path = dir.path().join("events.sqlite3");

    // Same model on both sides before any timing.
    let read_models = runtime
        .block_on(SqliteReadModel::open(dir.path().join("read-models")))
        .expect("read models");
    let target = Target {
        name: "task_board",
        version: 1,
    };
    runtime.block_on(factum_catch_up(&store, &read_models));
    let factum_model = Connection::open(read_models.path_of(target)).expect("the version's file");
    let raw_model = raw_catch_up(&events_path, &dir.path().join("check-raw.sqlite3"));
    assert_eq!(members_of(&factum_model), members_of(&raw_model));
    assert_eq!(members_of(&raw_model).len(), 40);

    let mut group = c.benchmark_group("catch_up_sqlite_10k");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    let mut round = 0u32;
    // Each iteration builds into a database file that does not exist yet, on both sides.
    group.bench_function("factum", |b| {
        b.iter_batched(
            || runtime.block_on(read_models.reset(target)).expect("reset"),
            |()| runtime.block_on(factum_catch_up(&store, &read_models)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw_rusqlite", |b| {
        b.iter_batched(
            || {
                round += 1;
                dir.path().join(format!("raw-{round}.sqlite3"))
            },
            |model_path| raw_catch_up(&events_path, &model_path),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

#[cfg(feature = "postgres")]
#[path = "catch_up/postgres.rs"]
mod postgres;

#[cfg(feature = "postgres")]
criterion_group!(benches, catch_up_sqlite, postgres::catch_up_postgres);
#[cfg(not(feature = "postgres"))]
criterion_group!(benches, catch_up_sqlite);
criterion_main!(benches);
