//! The read-model and process-store conformance suites on SQLite read models: checkpoints,
//! dead letters, versions and the write lock; the fulfilment saga's happy path and
//! compensations, two racing drivers, and a driver killed mid-flow.
//!
//! The killed driver runs in a child process: this test binary started again with the
//! `child_process` test selected and the directory in an environment variable.
//!
//! Run with `cargo test -p factum --features sqlite,conformance --test sqlite_read_models`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum::testing::conformance::{Connecting, process, read_model};

/// Set, in the child, to the directory of the store and read models it drives.
const CHILD_DIR: &str = "FACTUM_PROCESS_CHILD_DIR";

async fn open(dir: &Path) -> (SqliteStore, SqliteReadModel) {
    let store = SqliteStore::open(dir.join("events.sqlite3"))
        .await
        .expect("open the store");
    let read_model = SqliteReadModel::open(dir.join("read"))
        .await
        .expect("open the read models");
    (store, read_model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_models_keep_the_read_model_contract() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = || SqliteReadModel::open(dir.path());
    let (read_models, other) = (open().await, open().await);
    read_model::run_read_model_contract(
        read_models.expect("open the read models"),
        other.expect("open the read models again"),
    )
    .await;
}

#[tokio::test]
async fn sqlite_read_models_keep_the_process_contract() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let read_model = SqliteReadModel::open(dir.path().join("read"))
        .await
        .expect("open the read models");
    let counter = AtomicU32::new(0);
    let path = dir.path().to_owned();
    process::run_process_contract(
        || {
            let path = path.join(format!(
                "events-{}.sqlite3",
                counter.fetch_add(1, Ordering::SeqCst)
            ));
            Connecting(Box::pin(
                async move { SqliteStore::open(&path).await.expect("open a store") },
            )
                as std::pin::Pin<Box<dyn Future<Output = SqliteStore>>>)
        },
        read_model,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_sqlite_drivers_take_each_step_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, read_model) = open(dir.path()).await;
    // A second handle on the same directory: its own connections, as a second process
    // would have.
    let other = SqliteReadModel::open(dir.path().join("read"))
        .await
        .expect("open the read models again");
    process::racing_drivers(store, read_model, other, 20).await;
}

#[tokio::test]
async fn child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let (store, read_model) = open(&PathBuf::from(dir)).await;
    process::drive_until_killed(store, read_model).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_driver_killed_mid_flow_restarts_and_takes_each_step_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, read_model) = open(dir.path()).await;
    process::restart_after_kill(store, read_model, || {
        Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the child driver")
    })
    .await;
}

#[tokio::test]
async fn a_process_store_newer_than_the_code_is_refused_untouched() {
    use factum::process::ProcessStore;
    use factum::projection::{ReadModelError, Target};

    let dir = tempfile::tempdir().expect("a temporary directory");
    let read_model = SqliteReadModel::open(dir.path())
        .await
        .expect("open the read models");
    let target = Target {
        name: "newer_process",
        version: 0,
    };
    read_model
        .migrate_process_tables(target)
        .await
        .expect("the process tables are created");
    let file = dir.path().join("newer_process.v0.sqlite3");
    let connection = rusqlite::Connection::open(&file).expect("open the file");
    connection
        .execute(
            "INSERT INTO factum_process_version (version, description, applied_at)
             VALUES (3, 'from a newer factum', '2027-01-01T00:00:00Z')",
            [],
        )
        .expect("record a newer version");
    let before: Vec<i64> = connection
        .prepare("SELECT version FROM factum_process_version ORDER BY version")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .expect("read the versions");

    match read_model.migrate_process_tables(target).await {
        Err(ReadModelError::SchemaTooNew {
            database,
            found: 3,
            supported: 2,
        }) => assert!(database.ends_with("newer_process.v0.sqlite3"), "{database}"),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let after: Vec<i64> = connection
        .prepare("SELECT version FROM factum_process_version ORDER BY version")
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
        .expect("read the versions");
    assert_eq!(before, after, "nothing was changed");
}
