//! The PostgreSQL half of the scale bench: a `PostgresStore` and a `PostgresReadModel` in
//! a database of their own (`factum_scale`), dropped and created afresh by every run.

use factum::prelude::*;
use factum::projection::postgres::{PostgresReadModel, PostgresTx};
use factum::projection::{ProjectionRunner, Projector, ReadModel, Target};
use factum::store::PostgresStore;

use crate::domain::*;
use crate::shared::connect;

/// The bench's database, on the server of `FACTUM_POSTGRES_URL`.
const DATABASE: &str = "factum_scale";
/// The store's schema in it.
const SCHEMA: &str = "scale";

/// The task board of the SQLite half, writing to PostgreSQL.
pub struct PgTaskBoard;

#[projection(name = "scale_task_board_pg", version = 1)]
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
    async fn noted(
        &mut self,
        e: &Recorded<TaskNoted>,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let statement = tx.prepare_cached(NOTE_TASK).await?;
        tx.execute(&statement, &[&e.stream_id()]).await?;
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

const TARGET: Target = Target {
    name: "scale_task_board_pg",
    version: 1,
};

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(server, _)| server.contains("//"))
        .expect("FACTUM_POSTGRES_URL of the form postgres://user@host:port/database");
    format!("{server}/{database}{query}")
}

/// The server's counters the fill is told by: WAL bytes and full-page images written,
/// blocks read from outside its buffers (this database).
#[derive(Default, Clone, Copy)]
struct Counters {
    wal_bytes: f64,
    wal_fpi: f64,
    blocks_read: f64,
}

pub struct Postgres {
    client: tokio_postgres::Client,
    counters: Counters,
    store: PostgresStore,
    read_models: PostgresReadModel,
    runner: ProjectionRunner<PostgresStore>,
    projector: Projector<PgTaskBoard>,
}

impl Postgres {
    /// A fresh database on the server of `url`, with the store and read models in it.
    pub async fn fresh(url: &str) -> Self {
        let admin = connect(url).await;
        // Two statements: neither runs inside a transaction block.
        for statement in [
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("create the bench's database afresh");
        }
        let url = with_database(url, DATABASE);
        let store = PostgresStore::builder(url.as_str())
            .schema(SCHEMA)
            .pool_size(4)
            .connect()
            .await
            .expect("connect the store");
        let read_models = PostgresReadModel::connect(&url)
            .await
            .expect("connect the read models");
        let runner = ProjectionRunner::new(store.clone()).batch_size(super::PAGE);
        let projector = runner.projector(PgTaskBoard, read_models.clone());
        Self {
            client: connect(&url).await,
            counters: Counters::default(),
            store,
            read_models,
            runner,
            projector,
        }
    }
}

impl super::Backend for Postgres {
    type Store = PostgresStore;
    const NAME: &'static str = "PostgreSQL";

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn delete_snapshot(&mut self, stream_id: &str) {
        self.client
            .execute(
                &format!("DELETE FROM {SCHEMA}.snapshots WHERE stream_id = $1"),
                &[&stream_id],
            )
            .await
            .expect("delete the snapshot");
    }

    async fn catch_up(&mut self) -> u64 {
        self.runner
            .catch_up(&mut self.projector)
            .await
            .expect("catch up")
            .applied
    }

    async fn reset_projection(&mut self) {
        self.read_models
            .reset(TARGET)
            .await
            .expect("reset the read model");
        self.projector = self.runner.projector(PgTaskBoard, self.read_models.clone());
    }

    async fn since_last(&mut self, events: u64) -> String {
        // Cumulative statistics reach the views within a second of a transaction.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let row = self
            .client
            .query_one(
                "SELECT w.wal_bytes::float8, w.wal_fpi::float8, d.blks_read::float8
                   FROM pg_stat_wal w, pg_stat_database d
                  WHERE d.datname = current_database()",
                &[],
            )
            .await
            .expect("read pg_stat_wal and pg_stat_database");
        let now = Counters {
            wal_bytes: row.get(0),
            wal_fpi: row.get(1),
            blocks_read: row.get(2),
        };
        let before = std::mem::replace(&mut self.counters, now);
        if events == 0 {
            return String::new();
        }
        let per = |now: f64, before: f64| (now - before) / events as f64;
        format!(
            "; WAL {:.0} B/event; {:.3} full-page images/event; {:.3} blocks read/event",
            per(now.wal_bytes, before.wal_bytes),
            per(now.wal_fpi, before.wal_fpi),
            per(now.blocks_read, before.blocks_read)
        )
    }
}
