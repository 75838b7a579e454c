//! The read-model and process-store conformance suites on PostgreSQL read models:
//! checkpoints, dead letters, versions and the write lock; the fulfilment saga's happy
//! path and compensations, two racing drivers, and a driver killed mid-flow.
//!
//! The killed driver runs in a child process: this test binary started again with the
//! `child_process` test selected and the store's schema in an environment variable.
//!
//! Run with `cargo test -p factum --features postgres,conformance --test
//! postgres_read_models`; needs a server: `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use factum::projection::postgres::PostgresReadModel;
use factum::store::PostgresStore;
use factum::testing::conformance::{Connecting, process, read_model};
use postgres_common::{fresh_store, url};

/// Set, in the child, to the schema of the store it drives.
const CHILD_SCHEMA: &str = "FACTUM_PROCESS_CHILD_SCHEMA";

async fn connect() -> PostgresReadModel {
    PostgresReadModel::connect(&url())
        .await
        .expect("connect the read models")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_keep_the_read_model_contract() {
    // Two pools: the write-lock check begins through both, as two processes would.
    read_model::run_read_model_contract(connect().await, connect().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_keep_the_process_contract() {
    let counter = AtomicU32::new(0);
    process::run_process_contract(
        || {
            let schema = format!(
                "t_process_contract_{}",
                counter.fetch_add(1, Ordering::SeqCst)
            );
            Connecting(Box::pin(async move { fresh_store(&schema).await })
                as Pin<Box<dyn Future<Output = PostgresStore>>>)
        },
        connect().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_postgres_drivers_take_each_step_once() {
    let store = fresh_store("t_process_racing").await;
    // Two pools: each driver its own connections, as two processes would have.
    process::racing_drivers(store, connect().await, connect().await, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(schema) = std::env::var(CHILD_SCHEMA) else {
        return;
    };
    let store = PostgresStore::builder(url())
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .expect("connect the store");
    process::drive_until_killed(store, connect().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_driver_killed_mid_flow_restarts_and_takes_each_step_once() {
    const SCHEMA: &str = "t_process_killed";
    let store = fresh_store(SCHEMA).await;
    process::restart_after_kill(store, connect().await, || {
        Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_SCHEMA, SCHEMA)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the child driver")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_store_newer_than_the_code_is_refused_untouched() {
    use factum::process::ProcessStore;
    use factum::projection::{ReadModel, ReadModelError, Target};

    let read_model = connect().await;
    let target = Target {
        name: "newer_process",
        version: 0,
    };
    read_model.reset(target).await.expect("reset");
    read_model
        .migrate_process_tables(target)
        .await
        .expect("the process tables are created");
    let client = postgres_common::raw_client().await;
    client
        .execute(
            "INSERT INTO newer_process__v0.factum_process_migrations (version, description)
             VALUES (3, 'from a newer factum')",
            &[],
        )
        .await
        .expect("record a newer version");

    match read_model.migrate_process_tables(target).await {
        Err(ReadModelError::SchemaTooNew {
            database,
            found: 3,
            supported: 2,
        }) => assert_eq!(database, "newer_process__v0"),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM newer_process__v0.factum_process_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read the versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3], "nothing was changed");
}
