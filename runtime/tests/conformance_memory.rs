//! The store conformance suite against the memory store.

use std::sync::Arc;
use std::time::Duration;

use factum::personal::{MasterKey, MemoryKeyStore, PersonalCatalog, ProtectedStore};
use factum::store::MemoryStore;
use factum::testing::conformance;

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    conformance::run_contract(MemoryStore::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_survives_a_conflict_storm() {
    let report = conformance::conflict_storm(Arc::new(MemoryStore::new()), 16, 4, 10_000).await;
    assert_eq!(report.successes + report.conflicts, report.attempts);
    assert!(report.attempts >= 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_store_follower_sees_every_event() {
    let seen = conformance::follower_sees_every_event(
        Arc::new(MemoryStore::new()),
        8,
        500,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(seen, 8 * 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_memory_store_follower_sees_every_event() {
    let seen = conformance::filtered_follower_sees_every_event(
        Arc::new(MemoryStore::new()),
        8,
        500,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(seen, 8 * 500 * 2 / 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_of_one_command_run_once_on_the_memory_store() {
    let store = MemoryStore::new();
    // Clones share one log: each submission holds its own handle.
    conformance::concurrent_commands_run_once(|| store.clone(), 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_decides_across_entities() {
    conformance::run_decisions(MemoryStore::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_deciders_race_for_the_last_seat_a_hundred_times() {
    for _ in 0..100 {
        conformance::last_seat_race(Arc::new(MemoryStore::new()), 16).await;
    }
}

/// The protected store over the memory store (without personal events, so every event
/// passes through as it is): it keeps the contract, decisions included, by forwarding.
fn protected() -> ProtectedStore<MemoryStore, MemoryKeyStore> {
    ProtectedStore::new(
        MemoryStore::new(),
        MemoryKeyStore::new(MasterKey::from_bytes([1; 32])),
        PersonalCatalog::default(),
    )
}

#[tokio::test]
async fn the_protected_store_keeps_the_contract() {
    conformance::run_contract(protected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_store_decides_across_entities() {
    conformance::run_decisions(protected).await;
}
