//! The store conformance suite against the SQLite store: on files (each check on a fresh
//! file) and in memory.
//!
//! Run with `cargo test -p factum --features sqlite,conformance`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::store::SqliteStore;
use factum::testing::conformance::{self, Connecting};

/// A fresh store file in `dir` per call.
fn fresh_file_store(
    dir: &tempfile::TempDir,
) -> impl FnMut() -> Connecting<std::pin::Pin<Box<dyn Future<Output = SqliteStore>>>> + '_ {
    let counter = AtomicU32::new(0);
    move || {
        let path = dir.path().join(format!(
            "store-{}.db",
            counter.fetch_add(1, Ordering::SeqCst)
        ));
        Connecting(Box::pin(async move {
            SqliteStore::open(&path)
                .await
                .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()))
        }))
    }
}

#[tokio::test]
async fn a_sqlite_file_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    conformance::run_contract(fresh_file_store(&dir)).await;
}

#[tokio::test]
async fn an_in_memory_sqlite_store_keeps_the_contract() {
    conformance::run_contract(|| SqliteStore::in_memory().expect("an in-memory store")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_survives_a_conflict_storm() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("storm.db"))
        .await
        .expect("open");
    let report = conformance::conflict_storm(Arc::new(store), 16, 4, 10_000).await;
    assert_eq!(report.successes + report.conflicts, report.attempts);
    assert!(report.attempts >= 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_follower_sees_every_event() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("follow.db"))
        .await
        .expect("open");
    let seen =
        conformance::follower_sees_every_event(Arc::new(store), 8, 300, Duration::from_secs(30))
            .await;
    assert_eq!(seen, 8 * 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_sqlite_store_follower_sees_every_event() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("filtered.db"))
        .await
        .expect("open");
    let seen = conformance::filtered_follower_sees_every_event(
        Arc::new(store),
        8,
        300,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(seen, 8 * 300 * 2 / 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_in_memory_sqlite_store_follower_sees_every_event() {
    let store = SqliteStore::in_memory().expect("an in-memory store");
    let seen = conformance::filtered_follower_sees_every_event(
        Arc::new(store),
        4,
        300,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(seen, 4 * 300 * 2 / 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_of_one_command_run_once_on_a_sqlite_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("commands.db");
    // Each submission opens the file itself: its own writer connection, as another
    // process would.
    conformance::concurrent_commands_run_once(
        || {
            let path = path.clone();
            Connecting(async move { SqliteStore::open(&path).await.expect("open") })
        },
        16,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_store_decides_across_entities() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    conformance::run_decisions(fresh_file_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_sqlite_store_decides_across_entities() {
    conformance::run_decisions(|| SqliteStore::in_memory().expect("an in-memory store")).await;
}

/// The protected store over SQLite decides in steps (read, decide, append under the
/// condition), not in SQLite's write session: the contract holds that way too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_store_over_sqlite_decides_across_entities() {
    use factum::personal::{MasterKey, MemoryKeyStore, PersonalCatalog, ProtectedStore};
    conformance::run_decisions(|| {
        ProtectedStore::new(
            SqliteStore::in_memory().expect("an in-memory store"),
            MemoryKeyStore::new(MasterKey::from_bytes([1; 32])),
            PersonalCatalog::default(),
        )
    })
    .await;
}
