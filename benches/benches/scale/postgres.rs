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

pub struct Postgres {
    client: tokio_postgres::Client,
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
}
