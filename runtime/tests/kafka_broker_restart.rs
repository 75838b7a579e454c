//! A Kafka-protocol broker killed (SIGKILL) and restarted while events flow: the
//! publisher retries and resumes, the consumer rejoins its group and reads on, and the
//! projection ends equal to a rebuild from the store, nothing lost or doubled.
//!
//! The broker is a nisshi of the test's own keeping its log in a PostgreSQL database, so
//! that what it acknowledged survives the restart, as a Kafka cluster's does (the shared
//! broker of the other tests keeps its log in memory). Needs `FACTUM_KAFKA_SERVER` (`eval
//! "$(scripts/kafka.sh start)"`) and `FACTUM_POSTGRES_URL` (`eval "$(scripts/postgres.sh
//! start)"`); without them the test fails.

mod kafka_common;
mod ledger_common;
mod postgres_common;

use std::time::Duration;

use factum::kafka::{KafkaConsumer, KafkaPublisher};
use factum::projection::{ProjectionRunner, Projector, ReadModel};
use factum::store::SqliteStore;
use kafka_common::{TestBroker, unique};
use ledger_common::{
    LEDGER, Ledger, append_interleaved, applied, eventually, ledger_rows, open_store, read_models,
};

/// Generous liveness bound for anything that waits on the broker.
const LIVENESS: Duration = Duration::from_secs(120);

/// Appends `count` events to each of `streams` `Clock` streams, interleaved in batches of
/// 5; returns the last position.
async fn append(store: &SqliteStore, prefix: &str, streams: u64, count: u64) -> u64 {
    append_interleaved(store, prefix, streams, count, |_| "Clock").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_mid_stream_loses_and_doubles_nothing() {
    let database = unique("broker").replace('-', "_");
    postgres_common::raw_client()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{database}\""))
        .await
        .expect("a database for the broker");
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), &postgres_common::database_url(&database));
    let brokers = broker.brokers();
    let prefix = unique("restart");

    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let models = read_models(dir.path(), "consumer").await;
    let first = append(&store, "a", 6, 20).await;
    let publishing = KafkaPublisher::new(store.clone(), checkpoints.clone(), brokers.as_str())
        .topic_prefix(&prefix)
        .topics(6, 1)
        .batch_size(16)
        // Shorter than the outage: sends fail, and the outbox retries from its checkpoint.
        .ack_timeout(Duration::from_secs(1))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .idle_wait(Duration::from_millis(100))
        .spawn();
    let consuming = KafkaConsumer::new(Projector::new(Ledger, models.clone()), brokers.as_str())
        .topic_prefix(&prefix)
        .group(unique("group"))
        .batch_size(16)
        .idle_wait(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .setting("session.timeout.ms", "6000")
        .setting("heartbeat.interval.ms", "500")
        .spawn();
    let watched = &models;
    eventually("part of the log applied", LIVENESS, || async move {
        applied(watched) as u64 >= first / 4
    })
    .await;

    // Killed while the publisher and the consumer are busy; the log grows while it is down,
    // longer than the publisher waits for acknowledgements.
    broker.kill();
    let during = append(&store, "b", 6, 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(during > first);
    broker.restart();
    let last = append(&store, "c", 6, 10).await;

    eventually("the whole log applied", LIVENESS, || async move {
        applied(watched) as u64 == last
    })
    .await;
    assert!(
        publishing.last_error().is_some(),
        "the publisher saw the broker go, and resumed"
    );
    publishing.stop().await.unwrap();
    consuming.stop().await.unwrap();

    let rebuilt = read_models(dir.path(), "rebuilt").await;
    ProjectionRunner::new(store.clone())
        .rebuild(Ledger, rebuilt.clone(), |_| {})
        .await
        .unwrap();
    assert_eq!(ledger_rows(&models), ledger_rows(&rebuilt));
    assert!(
        models.parked(LEDGER).await.unwrap().is_empty(),
        "nothing applied twice (a second application parks)"
    );
    drop(broker);
    postgres_common::raw_client()
        .await
        .batch_execute(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
        .await
        .expect("drop the broker's database");
}
