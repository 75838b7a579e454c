//! Projections fed from Kafka (nisshi, started by `scripts/kafka.sh`): what the
//! publisher put on the topics, consumed by `KafkaConsumer` into a SQLite read model,
//! equals a rebuild from the store; foreign records are reported and stepped over;
//! republished copies are skipped (a publisher that lost its checkpoint, a publisher
//! process SIGKILLed mid-batch); a read model reset under a running consumer is read
//! again; and three workers of one consumer group, one of them SIGKILLed mid-run, build
//! exactly what one worker builds.
//!
//! Run with `eval "$(scripts/kafka.sh start)" && cargo test -p factum --features
//! kafka,sqlite --test kafka_projection`. The workers of the group test and the killed
//! publisher are this test binary itself, started again with the `worker_process` test
//! selected.

mod kafka_common;
mod ledger_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use factum::kafka::rdkafka::config::ClientConfig;
use factum::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use factum::kafka::{KafkaBusError, KafkaConsumer, KafkaPublisher, topic_for};
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ProjectionRunner, Projector, ReadModel, RunnerError, VersionState};
use factum::store::SqliteStore;
use kafka_common::{brokers, unique};
use ledger_common::{
    LEDGER, Ledger, append_interleaved, applied, eventually, ledger_rows, open_store, read_models,
};

/// Generous liveness bound for anything that waits on the broker.
const LIVENESS: Duration = Duration::from_secs(120);

const ROLE: &str = "FACTUM_KAFKA_WORKER";
const WORKER_DIR: &str = "FACTUM_KAFKA_WORKER_DIR";
const WORKER_PREFIX: &str = "FACTUM_KAFKA_WORKER_PREFIX";
const WORKER_GROUP: &str = "FACTUM_KAFKA_WORKER_GROUP";

/// Appends `count` events to each of `streams` streams, alternating two stream types
/// (two topics), interleaved in batches of 5; returns the last position.
async fn append(store: &SqliteStore, prefix: &str, streams: u64, count: u64) -> u64 {
    append_interleaved(store, prefix, streams, count, |stream| {
        if stream % 2 == 0 { "Clock" } else { "Meter" }
    })
    .await
}

fn publisher(
    store: &SqliteStore,
    checkpoints: &SqliteReadModel,
    prefix: &str,
) -> KafkaPublisher<SqliteStore, SqliteReadModel> {
    KafkaPublisher::new(store.clone(), checkpoints.clone(), brokers())
        .topic_prefix(prefix)
        .topics(6, 1)
        .batch_size(64)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .idle_wait(Duration::from_millis(200))
}

fn consumer(read_models: &SqliteReadModel, prefix: &str, group: &str) -> KafkaConsumer<Ledger> {
    KafkaConsumer::new(Projector::new(Ledger, read_models.clone()), brokers())
        .topic_prefix(prefix)
        .group(group)
        .batch_size(40)
        .idle_wait(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(500))
        // A member that dies without leaving loses its partitions after 6 s.
        .setting("session.timeout.ms", "6000")
        .setting("heartbeat.interval.ms", "500")
}

/// The ledger as a rebuild from the store makes it, in a read model of its own.
async fn rebuilt(store: &SqliteStore, dir: &Path) -> Vec<(i64, String, String, i64)> {
    let models = read_models(dir, "rebuilt").await;
    ProjectionRunner::new(store.clone())
        .rebuild(Ledger, models.clone(), |_| {})
        .await
        .unwrap();
    ledger_rows(&models)
}

/// Produces a record no factum publisher made onto `topic`; returns its partition and
/// offset.
async fn produce_foreign(topic: &str) -> (i32, i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let delivered = producer
        .send(
            FutureRecord::to(topic)
                .key("intruder")
                .payload("{\"hello\": \"not an event\"}"),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(error, _)| panic!("producing a foreign record: {error}"));
    (delivered.partition, delivered.offset)
}

async fn total_lag(consumer: &mut KafkaConsumer<Ledger>) -> u64 {
    consumer
        .lag()
        .await
        .unwrap()
        .iter()
        .map(|partition| partition.records())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_from_kafka_equals_a_rebuild_and_foreign_records_are_stepped_over() {
    let prefix = unique("project");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let last = append(&store, "a", 6, 12).await;
    let published = publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!(published.checkpoint, last);
    let clock = topic_for(&prefix, "Clock");
    let (partition, offset) = produce_foreign(&clock).await;

    let models = read_models(dir.path(), "consumer").await;
    let group = unique("group");
    let mut consumer = consumer(&models, &prefix, &group);
    let consumed = consumer.consume_available(LIVENESS).await.unwrap();
    assert_eq!(consumed.applied, last, "every event applied once");
    assert_eq!((consumed.records, consumed.skipped), (last + 1, 0));
    match consumed.foreign.as_slice() {
        [
            error @ KafkaBusError::Foreign {
                topic,
                partition: p,
                offset: o,
                ..
            },
        ] => {
            assert_eq!((topic, *p, *o), (&clock, partition, offset));
            assert_eq!(
                error.to_string(),
                format!(
                    "Kafka topic `{clock}` partition {partition} offset {offset}: not a factum event; stepped over"
                )
            );
        }
        other => panic!("expected the foreign record reported, got {other:?}"),
    }
    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert_eq!(total_lag(&mut consumer).await, 0);
    let versions = models.versions(LEDGER.name).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(
        versions[0].state,
        VersionState::Active,
        "read to the end: readers see it"
    );
    let offsets = models.partition_offsets(LEDGER).await.unwrap();
    assert!(
        offsets.iter().any(|stored| stored.topic == clock
            && stored.partition == partition
            && stored.next_offset > offset),
        "the foreign record's offset is committed: {offsets:?}"
    );

    // A member restarted in the same group reads nothing it has applied again, and then
    // only what is new.
    drop(consumer);
    let mut restarted = self::consumer(&models, &prefix, &group);
    let again = restarted.consume_available(LIVENESS).await.unwrap();
    assert_eq!((again.records, again.applied), (0, 0));
    let more = append(&store, "b", 2, 5).await;
    publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    let consumed = restarted.consume_available(LIVENESS).await.unwrap();
    assert_eq!(
        (consumed.records, consumed.applied),
        (more - last, more - last)
    );
    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert!(models.parked(LEDGER).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_reset_under_a_running_consumer_is_read_again_from_the_start() {
    let prefix = unique("reset");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let first = append(&store, "g", 4, 10).await;
    publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    let models = read_models(dir.path(), "consumer").await;
    let handle = consumer(&models, &prefix, &unique("group")).spawn();
    let watched = &models;
    eventually("the log applied", LIVENESS, || async move {
        applied(watched) as u64 == first
    })
    .await;

    // An operator empties the model under the running member; the next batch notices,
    // and the member reads every partition again from its start.
    models.reset(LEDGER).await.unwrap();
    let last = append(&store, "h", 2, 5).await;
    publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    // Read to the end again, the version is made the one readers see again.
    eventually("the log applied again", LIVENESS, || async move {
        let versions = watched.versions(LEDGER.name).await.unwrap();
        applied(watched) as u64 == last
            && versions
                .iter()
                .map(|status| status.state)
                .eq([VersionState::Active])
    })
    .await;
    let noticed = handle.last_error().expect("the reset was reported");
    assert!(
        matches!(
            &*noticed,
            KafkaBusError::Projection { source, .. }
                if matches!(**source, RunnerError::PartitionMovedBack { .. })
        ),
        "{noticed:?}"
    );
    handle.stop().await.unwrap();
    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert!(models.parked(LEDGER).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_from_a_publisher_that_lost_its_checkpoint_are_skipped() {
    let prefix = unique("copies");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let first = append(&store, "c", 4, 10).await;
    publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    let models = read_models(dir.path(), "consumer").await;
    let group = unique("group");
    let mut consumer = consumer(&models, &prefix, &group);
    assert_eq!(
        consumer.consume_available(LIVENESS).await.unwrap().applied,
        first
    );

    // A publisher that crashed after the brokers stored a batch but before its checkpoint
    // moved sends it again: a new producer, so the brokers keep both copies.
    let lost = read_models(dir.path(), "publisher-lost").await;
    let again = publisher(&store, &lost, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!(again.published, first, "every event sent again");
    let last = append(&store, "d", 2, 5).await;
    publisher(&store, &lost, &prefix)
        .publish_pending()
        .await
        .unwrap();

    let consumed = consumer.consume_available(LIVENESS).await.unwrap();
    assert_eq!(
        (consumed.records, consumed.skipped, consumed.applied),
        (last, first, last - first),
        "the copies read and skipped, the new events applied"
    );
    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert!(models.parked(LEDGER).await.unwrap().is_empty());
}

/// A worker of the group and publisher tests: does nothing unless started by one of them
/// as a child. A consumer consumes until killed, or until the file `stop` appears in its
/// directory; the publisher publishes until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(WORKER_DIR).expect("the worker's directory"));
    let prefix = std::env::var(WORKER_PREFIX).expect("the topic prefix");
    let group = std::env::var(WORKER_GROUP).expect("the group");
    if role == "publisher" {
        // Publishes until killed.
        let store = open_store(&dir).await;
        let checkpoints = read_models(&dir, "publisher").await;
        let mut publisher = publisher(&store, &checkpoints, &prefix);
        publisher.publish_pending().await.expect("publishes");
        println!("FACTUM the publisher was not killed before it was done");
        return;
    }
    let models = read_models(&dir, "consumer").await;
    let handle = consumer(&models, &prefix, &group)
        .setting("client.id", format!("worker-{role}"))
        .spawn();
    let (running, stop) = (&handle, dir.join("stop"));
    let progress = dir.join(format!("worker-{role}.read"));
    eventually("the stop file", LIVENESS * 3, || {
        let (stop, progress, role) = (stop.clone(), progress.clone(), role.clone());
        async move {
            assert!(
                !running.is_finished(),
                "worker {role} ended: {:?}",
                running.last_error()
            );
            // For the parent: how many records this member has read.
            std::fs::write(&progress, running.records().to_string()).unwrap();
            stop.exists()
        }
    })
    .await;
    let records = handle.records();
    handle.stop().await.expect("the worker stops cleanly");
    println!("FACTUM worker {role} read {records} records");
}

/// How many records the worker `role` says it has read (0 before it says).
fn read_by(dir: &Path, role: &str) -> u64 {
    std::fs::read_to_string(dir.join(format!("worker-{role}.read")))
        .ok()
        .and_then(|read| read.trim().parse().ok())
        .unwrap_or(0)
}

fn start_worker(dir: &Path, prefix: &str, group: &str, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(WORKER_DIR, dir)
        .env(WORKER_PREFIX, prefix)
        .env(WORKER_GROUP, group)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn finished(child: Child) -> (bool, String) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_over_six_partitions_one_killed_build_what_one_builds() {
    let prefix = unique("group");
    let group = unique("workers");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let checkpoints = read_models(dir.path(), "publisher").await;
    let first = append(&store, "e", 12, 40).await;
    let publishing = publisher(&store, &checkpoints, &prefix).spawn();

    let mut workers: Vec<Child> = ["1", "2", "3"]
        .iter()
        .map(|role| start_worker(dir.path(), &prefix, &group, role))
        .collect();
    let models = read_models(dir.path(), "consumer").await;
    // Kill a worker once all three read records (each holds partitions) and the group has
    // applied part of the log.
    let progress = dir.path();
    eventually("three workers each reading", LIVENESS, || async move {
        ["1", "2", "3"]
            .iter()
            .all(|role| read_by(progress, role) > 0)
    })
    .await;
    let applied = &models;
    eventually("a tenth of the log applied", LIVENESS, || async move {
        applied.path_of(LEDGER).exists() && ledger_rows(applied).len() as u64 >= first / 10
    })
    .await;
    let mut killed = workers.remove(0);
    killed.kill().unwrap();
    let _ = killed.wait();
    // The log grows on while the group rebalances.
    let last = append(&store, "f", 12, 10).await;

    // Only its `lag` is used: it never joins the group.
    let mut observer = consumer(&models, &prefix, &group);
    let started = std::time::Instant::now();
    while total_lag(&mut observer).await > 0 || (ledger_rows(&models).len() as u64) < last {
        assert!(
            started.elapsed() < LIVENESS,
            "the group did not read every partition to its end within {LIVENESS:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    for worker in workers {
        let (success, output) = finished(worker).await;
        assert!(success, "a worker failed: {output}");
        let read: u64 = output
            .lines()
            .find_map(|line| Some(&line[line.find("FACTUM worker ")? + "FACTUM worker ".len()..]))
            .and_then(|line| line.split(' ').nth(2))
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("the worker's count: {output}"));
        assert!(read > 0, "each surviving worker read records: {output}");
    }
    publishing.stop().await.unwrap();

    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert!(
        models.parked(LEDGER).await.unwrap().is_empty(),
        "nothing applied twice (a second application parks)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_mid_batch_and_restarted_doubles_nothing() {
    let prefix = unique("killed");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let last = append(&store, "k", 12, 200).await;

    // The publisher in a process of its own, SIGKILLed once part of the log is on the
    // topics: what the brokers stored after its last checkpoint is sent again.
    let mut child = start_worker(dir.path(), &prefix, "none", "publisher");
    let models = read_models(dir.path(), "consumer").await;
    let mut observer = consumer(&models, &prefix, &unique("group"));
    let started = std::time::Instant::now();
    loop {
        let on_topics: u64 = match observer.lag().await {
            Ok(lag) => lag
                .iter()
                .map(|partition| partition.high_watermark as u64)
                .sum(),
            Err(_) => 0,
        };
        if on_topics > 0 {
            break;
        }
        assert!(
            started.elapsed() < LIVENESS,
            "the publisher sent nothing within {LIVENESS:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    let (_, output) = finished(child).await;
    assert!(
        !output.contains("FACTUM the publisher was not killed"),
        "the publisher finished before the kill: {output}"
    );

    // Restarted: it resumes from its checkpoint.
    let checkpoints = read_models(dir.path(), "publisher").await;
    let resumed = publisher(&store, &checkpoints, &prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!(resumed.checkpoint, last);
    let consumed = observer.consume_available(LIVENESS).await.unwrap();
    let copies = consumed.records - last;
    assert_eq!(
        (consumed.applied, consumed.skipped),
        (last, copies),
        "every event applied once, every copy skipped"
    );
    println!("{copies} copies sent again after the kill, all skipped");
    assert_eq!(ledger_rows(&models), rebuilt(&store, dir.path()).await);
    assert!(models.parked(LEDGER).await.unwrap().is_empty());
}
