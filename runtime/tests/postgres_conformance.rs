//! The store conformance suite against the PostgreSQL store: each contract check on a
//! fresh schema; the conflict storm and the follower on a store of their own.
//!
//! Run with `cargo test -p factum --features postgres,conformance`; needs a server:
//! `eval "$(scripts/postgres.sh start)"`.

mod postgres_common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::store::PostgresStore;
use factum::testing::conformance::{self, Connecting};
use postgres_common::fresh_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let counter = AtomicU32::new(0);
    conformance::run_contract(|| {
        let schema = format!("t_conformance_{}", counter.fetch_add(1, Ordering::SeqCst));
        Connecting(Box::pin(async move { fresh_store(&schema).await })
            as Pin<Box<dyn Future<Output = PostgresStore>>>)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_survives_a_conflict_storm() {
    let store = fresh_store("t_conformance_storm").await;
    let report = conformance::conflict_storm(Arc::new(store), 16, 4, 10_000).await;
    assert_eq!(report.successes + report.conflicts, report.attempts);
    assert!(report.attempts >= 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_follower_sees_every_event() {
    let store = fresh_store("t_conformance_follower").await;
    let seen =
        conformance::follower_sees_every_event(Arc::new(store), 8, 300, Duration::from_secs(60))
            .await;
    assert_eq!(seen, 8 * 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_postgres_store_follower_sees_every_event() {
    let store = fresh_store("t_conformance_filtered").await;
    let seen = conformance::filtered_follower_sees_every_event(
        Arc::new(store),
        8,
        300,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(seen, 8 * 300 * 2 / 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_of_one_command_run_once_on_postgres() {
    const SCHEMA: &str = "t_conformance_commands";
    postgres_common::drop_schema(SCHEMA).await;
    // Each submission connects itself: its own pool and connections.
    conformance::concurrent_commands_run_once(
        || {
            Connecting(async {
                PostgresStore::builder(postgres_common::url())
                    .schema(SCHEMA)
                    .pool_size(1)
                    .connect()
                    .await
                    .expect("connect")
            })
        },
        16,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_decides_across_entities() {
    let counter = AtomicU32::new(0);
    conformance::run_decisions(|| {
        let schema = format!("t_decisions_{}", counter.fetch_add(1, Ordering::SeqCst));
        Connecting(Box::pin(async move { fresh_store(&schema).await })
            as Pin<Box<dyn Future<Output = PostgresStore>>>)
    })
    .await;
}

/// Sixteen deciders on sixteen connections of one pool race for a course's last seat, a
/// hundred times, each round on a fresh schema: every time exactly one takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_connections_race_for_the_last_seat_a_hundred_times() {
    for round in 0..100 {
        let schema = format!("t_decisions_race_{round}");
        postgres_common::drop_schema(&schema).await;
        let store = PostgresStore::builder(postgres_common::url())
            .schema(&schema)
            .pool_size(16)
            .connect()
            .await
            .expect("connect the store");
        conformance::last_seat_race(Arc::new(store), 16).await;
        postgres_common::drop_schema(&schema).await;
    }
}
