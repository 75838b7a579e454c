//! The PostgreSQL half of the catch-up bench: factum's runner following a
//! `PostgresStore` into a `PostgresReadModel`, against tokio-postgres by hand doing the
//! same pages, decoding, statements and checkpoint. Needs `FACTUM_POSTGRES_URL`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use factum::prelude::*;
use factum::projection::postgres::{PostgresReadModel, PostgresTx};
use factum::projection::{ProjectionRunner, ReadModel, Target};
use factum::store::PostgresStore;

use crate::domain::*;

/// The projection of the SQLite half, writing to PostgreSQL.
struct PgTaskBoard;

#[projection(name = "task_board_pg", version = 1)]
impl PgTaskBoard {
    #[setup]
    async fn tables(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute(TABLES).await?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let statement = tx.prepare_cached(INSERT_TASK).await?;
        tx.execute(&statement, &[&e.stream_id(), &e.title]).await?;
        Ok(())
    }

    #[on]
    async fn assigned(
        &mut self,
        e: &Recorded<TaskAssigned>,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let statement = tx.prepare_cached(ASSIGN_TASK).await?;
        tx.execute(&statement, &[&e.stream_id(), &e.member]).await?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let statement = tx.prepare_cached(COMPLETE_TASK).await?;
        tx.execute(&statement, &[&e.stream_id(), &(e.minutes as i32)])
            .await?;
        let statement = tx.prepare_cached(COUNT_COMPLETION).await?;
        tx.execute(&statement, &[&e.stream_id()]).await?;
        Ok(())
    }
}

const STORE_SCHEMA: &str = "factum_bench_catch_up";
const RAW_SCHEMA: &str = "raw_task_board";
const TARGET: Target = Target {
    name: "task_board_pg",
    version: 1,
};

async fn factum_catch_up(store: &PostgresStore, read_models: &PostgresReadModel) {
    let runner = ProjectionRunner::new(store.clone()).batch_size(BATCH);
    let caught_up = runner
        .catch_up(&mut runner.projector(PgTaskBoard, read_models.clone()))
        .await
        .expect("catch up");
    assert_eq!(caught_up.applied, HANDLED as u64);
}

async fn raw_reset(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE; CREATE SCHEMA {RAW_SCHEMA};
             SET search_path TO {RAW_SCHEMA}, public; {TABLES}
             CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, position BIGINT NOT NULL);"
        ))
        .await
        .expect("reset the raw read model");
}

/// Raw: pages read, decoded and written by hand with prepared statements, one
/// transaction per page with the checkpoint.
async fn raw_catch_up(client: &tokio_postgres::Client) {
    let read = client
        .prepare(&format!(
            "SELECT position, stream_id, name, payload::text FROM {STORE_SCHEMA}.events
             WHERE position > $1 AND name = ANY($2) ORDER BY position LIMIT $3"
        ))
        .await
        .expect("prepare the read");
    let names = vec!["TaskCreated", "TaskAssigned", "TaskCompleted"];
    let (insert, assign, complete, count) = (
        client.prepare(INSERT_TASK).await.unwrap(),
        client.prepare(ASSIGN_TASK).await.unwrap(),
        client.prepare(COMPLETE_TASK).await.unwrap(),
        client.prepare(COUNT_COMPLETION).await.unwrap(),
    );
    let checkpoint = client
        .prepare("INSERT INTO checkpoint (id, position) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET position = excluded.position")
        .await
        .unwrap();
    let mut after = 0i64;
    let mut applied = 0;
    loop {
        let page = client
            .query(&read, &[&after, &names, &(BATCH as i64)])
            .await
            .expect("read a page");
        let Some(last) = page.last() else { break };
        after = last.get(0);
        client.batch_execute("BEGIN").await.expect("begin");
        let tx = client;
        for row in &page {
            let stream_id: &str = row.get(1);
            match RawEvent::decode(row.get(2), row.get(3)).expect("decode") {
                RawEvent::Created(e) => tx.execute(&insert, &[&stream_id, &e.title]).await,
                RawEvent::Assigned(e) => tx.execute(&assign, &[&stream_id, &e.member]).await,
                RawEvent::Completed(e) => {
                    tx.execute(&complete, &[&stream_id, &(e.minutes as i32)])
                        .await
                        .unwrap();
                    tx.execute(&count, &[&stream_id]).await
                }
            }
            .expect("write");
            applied += 1;
        }
        tx.execute(&checkpoint, &[&after])
            .await
            .expect("checkpoint");
        client.batch_execute("COMMIT").await.expect("commit");
        if page.len() < BATCH {
            break;
        }
    }
    assert_eq!(applied, HANDLED);
}

async fn members(client: &tokio_postgres::Client, schema: &str) -> Vec<(String, i32, i32)> {
    let rows = client
        .query(
            &format!("SELECT member, completed, minutes FROM {schema}.members ORDER BY member"),
            &[],
        )
        .await
        .expect("read members");
    rows.into_iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Catch-up on PostgreSQL, skipped with a notice when no server is configured.
pub fn catch_up_postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("FACTUM_POSTGRES_URL") else {
        eprintln!(
            "catch_up: FACTUM_POSTGRES_URL is not set; skipping PostgreSQL. Start one with `eval \"$(scripts/postgres.sh start)\"`."
        );
        return;
    };
    let runtime = super::runtime();
    let (store, read_models, raw) = runtime.block_on(async {
        let (raw, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        raw.batch_execute(&format!("DROP SCHEMA IF EXISTS {STORE_SCHEMA} CASCADE"))
            .await
            .expect("drop");
        let store = PostgresStore::builder(url.as_str())
            .schema(STORE_SCHEMA)
            .connect()
            .await
            .expect("the store");
        for (stream, events) in streams() {
            store
                .append(&stream, "Task", ExpectedVersion::NoStream, events)
                .await
                .expect("append");
        }
        let read_models = PostgresReadModel::connect(&url)
            .await
            .expect("the read models");
        (store, read_models, raw)
    });

    runtime.block_on(async {
        read_models.reset(TARGET).await.unwrap();
        factum_catch_up(&store, &read_models).await;
        raw_reset(&raw).await;
        raw_catch_up(&raw).await;
        assert_eq!(
            members(&raw, "task_board_pg__v1").await,
            members(&raw, RAW_SCHEMA).await
        );
    });

    let mut group = c.benchmark_group("catch_up_postgres_10k");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("factum", |b| {
        b.iter_batched(
            || runtime.block_on(read_models.reset(TARGET)).expect("reset"),
            |()| runtime.block_on(factum_catch_up(&store, &read_models)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("raw_tokio_postgres", |b| {
        b.iter_batched(
            || runtime.block_on(raw_reset(&raw)),
            |()| runtime.block_on(raw_catch_up(&raw)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}
