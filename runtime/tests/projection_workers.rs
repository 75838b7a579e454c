//! One projection split across three worker processes by stream partitions, with leases
//! in PostgreSQL: one worker is killed (SIGKILL) mid-run while events keep coming, and the
//! two others take its partitions over; then one of those is paused (SIGSTOP) until its
//! leases pass to the last one, and resumed, still believing it holds them. The final
//! read model equals a single runner's rebuild, with every event applied exactly once.
//!
//! The workers are this test binary run again (`harness = false`): with
//! `FACTUM_WORKER_NAME` set, `main` runs one worker until its stdin closes.
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`. Without one the test fails.

mod postgres_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::projection::postgres::{PostgresReadModel, PostgresTx};
use factum::projection::{
    Projection, ProjectionError, ProjectionRunner, ReadModel, RunnerError, StreamPartitions,
    VersionState,
};
use factum::store::{EventStore, ExpectedVersion, PostgresStore};

const DATABASE: &str = "factum_projection_workers";
const STORE_SCHEMA: &str = "workers_log";
const PARTITIONS: StreamPartitions = StreamPartitions::new(12);
const LEASE_TTL: Duration = Duration::from_millis(1500);
const STREAMS: usize = 48;

/// Per stream: how many events, the sum of their values, the last stream version (an
/// event at or before it fails the handler: order within a stream is kept). Beside
/// it, who applied each event and how many times.
struct Tally<const V: u32> {
    worker: String,
}

impl<const V: u32> Projection for Tally<V> {
    const NAME: &'static str = "worker_tally";
    const VERSION: u32 = V;
    const EVENTS: &'static [&'static str] = &["Ticked"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute(
            "CREATE TABLE streams (stream TEXT PRIMARY KEY, events BIGINT NOT NULL, total BIGINT NOT NULL, last_version BIGINT NOT NULL);
             CREATE TABLE applications (position BIGINT PRIMARY KEY, stream TEXT NOT NULL, worker TEXT NOT NULL, times INTEGER NOT NULL);",
        )
        .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        let value: serde_json::Value = serde_json::from_str(event.payload.get())?;
        let value = value["value"].as_i64().unwrap_or_default();
        let version = event.stream_version as i64;
        let previous = tx
            .query_opt(
                "SELECT last_version FROM streams WHERE stream = $1",
                &[&event.stream_id],
            )
            .await?
            .map_or(0, |row| row.get::<_, i64>(0));
        if version <= previous {
            return Err(ProjectionError::msg(format!(
                "stream {} version {version} applied after version {previous}",
                event.stream_id
            )));
        }
        tx.execute(
            "INSERT INTO streams (stream, events, total, last_version) VALUES ($1, 1, $2, $3)
             ON CONFLICT (stream) DO UPDATE SET events = streams.events + 1,
                 total = streams.total + excluded.total, last_version = excluded.last_version",
            &[&event.stream_id, &value, &version],
        )
        .await?;
        tx.execute(
            "INSERT INTO applications (position, stream, worker, times) VALUES ($1, $2, $3, 1)
             ON CONFLICT (position) DO UPDATE SET times = applications.times + 1",
            &[&(event.position as i64), &event.stream_id, &self.worker],
        )
        .await?;
        Ok(())
    }
}

fn tick(value: i64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "value": value })).unwrap();
    NewEvent::new("Ticked", 1, payload, Metadata::default())
}

/// An event the projection does not handle, in between.
fn noise() -> NewEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
    NewEvent::new("Noise", 1, payload, Metadata::default())
}

async fn connect(url: &str) -> (PostgresStore, PostgresReadModel) {
    let store = PostgresStore::builder(url)
        .schema(STORE_SCHEMA)
        .connect()
        .await
        .expect("connect the store");
    let read_model = PostgresReadModel::connect(url)
        .await
        .expect("connect the read model");
    (store, read_model)
}

/// Appends `rounds` rounds of one event to each stream (every fourth round also a
/// `Noise`), `value` counting up from `first`.
async fn append_rounds(store: &PostgresStore, rounds: std::ops::Range<usize>, pause: Duration) {
    for round in rounds {
        for stream in 0..STREAMS {
            let mut events = vec![tick((round * STREAMS + stream) as i64)];
            if round % 4 == stream % 4 {
                events.push(noise());
            }
            store
                .append(
                    &format!("ticker-{stream}"),
                    "ticker",
                    ExpectedVersion::Any,
                    events,
                )
                .await
                .expect("append");
        }
        tokio::time::sleep(pause).await;
    }
}

/// A worker process: runs until its stdin closes, then gives its leases back.
async fn worker(name: String, url: String) {
    // The worker's warnings (steps it retries) show in the test's output.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .init();
    let (store, read_model) = connect(&url).await;
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = closed.send(());
    });
    let runner = ProjectionRunner::new(store)
        .batch_size(40)
        .idle_wait(Duration::from_millis(200));
    let worker = runner
        .worker(
            Tally::<1> {
                worker: name.clone(),
            },
            read_model.clone(),
            read_model,
            name,
        )
        .partitions(PARTITIONS)
        .lease_ttl(LEASE_TTL);
    let outcome = worker
        .run(async {
            let _ = on_close.await;
        })
        .await;
    if let Err(error) = outcome {
        eprintln!("worker failed: {}", factum::error::Report(&error));
        std::process::exit(1);
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to the process `pid`.
fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([signal, pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

fn spawn_worker(name: &str, url: &str) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .env("FACTUM_WORKER_NAME", name)
        .env("FACTUM_WORKER_URL", url)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start a worker process")
}

async fn query_i64(read_model: &PostgresReadModel, sql: &str) -> i64 {
    let client = read_model.client().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Like [`query_i64`], but `None` while the table is not there yet (before the first
/// batch creates it).
async fn query_i64_once_created(read_model: &PostgresReadModel, sql: &str) -> Option<i64> {
    let client = read_model.client().await.unwrap();
    match client.query_one(sql, &[]).await {
        Ok(row) => Some(row.get(0)),
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            None
        }
        Err(error) => panic!("{sql}: {error}"),
    }
}

/// Waits until `sql`'s number (`None` while its table is not there yet) satisfies
/// `done`, failing with `what` after a minute.
async fn wait_until(
    read_model: &PostgresReadModel,
    what: &str,
    sql: &str,
    done: impl Fn(i64) -> bool,
) {
    let start = Instant::now();
    while !query_i64_once_created(read_model, sql)
        .await
        .is_some_and(&done)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited a minute for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn three_workers_one_killed() {
    let url = postgres_common::fresh_database(DATABASE).await;
    let (store, read_model) = connect(&url).await;
    append_rounds(&store, 0..10, Duration::ZERO).await;

    let mut workers: BTreeMap<&str, Child> = ["w1", "w2", "w3"]
        .into_iter()
        .map(|name| (name, spawn_worker(name, &url)))
        .collect();

    // Events keep coming while the workers run, and while one of them dies.
    let appending = {
        let store = store.clone();
        tokio::spawn(async move { append_rounds(&store, 10..70, Duration::from_millis(40)).await })
    };

    // Kill w2 once the partitions are spread over the three and it has applied events
    // of its own.
    wait_until(
        &read_model,
        "each worker to hold partitions",
        "SELECT count(DISTINCT owner) FROM factum_read_models.leases WHERE name = 'worker_tally'",
        |owners| owners == 3,
    )
    .await;
    wait_until(
        &read_model,
        "w2 to apply events",
        "SELECT count(*) FROM worker_tally__v1.applications WHERE worker = 'w2'",
        |applied| applied >= 40,
    )
    .await;
    let client = read_model.client().await.unwrap();
    let w2_partitions: BTreeSet<u32> = client
        .query(
            "SELECT partition FROM factum_read_models.leases WHERE name = 'worker_tally' AND owner = 'w2'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, i32>(0) as u32)
        .collect();
    let mut w2 = workers.remove("w2").unwrap();
    w2.kill().expect("kill w2");
    w2.wait().unwrap();
    let killed_at = store.head().await.unwrap().map_or(0, |head| head.position);
    assert!(
        !w2_partitions.is_empty(),
        "w2 held no partition when killed"
    );

    // The others take w2's partitions once its leases expire.
    let start = Instant::now();
    wait_until(
        &read_model,
        "w2's partitions to be taken over",
        "SELECT count(*) FROM factum_read_models.leases
         WHERE name = 'worker_tally' AND (owner IS NULL OR owner = 'w2')",
        |left| left == 0,
    )
    .await;
    println!(
        "w2's partitions were taken over {:?} after it was killed",
        start.elapsed()
    );

    // w3 stops without knowing it: its leases expire and pass to w1. Resumed, it applies
    // a step for the partitions it no longer holds before its next claim says so; what w1
    // applied meanwhile must not be applied again.
    let w3 = workers["w3"].id().to_string();
    signal(&w3, "-STOP");
    wait_until(
        &read_model,
        "w1 to take w3's partitions",
        "SELECT count(*) FROM factum_read_models.leases
         WHERE name = 'worker_tally' AND owner IS DISTINCT FROM 'w1'",
        |left| left == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&w3, "-CONT");
    wait_until(
        &read_model,
        "w3 to hold partitions again",
        "SELECT count(*) FROM factum_read_models.leases WHERE name = 'worker_tally' AND owner = 'w3'",
        |held| held > 0,
    )
    .await;

    appending.await.unwrap();
    let head = store.head().await.unwrap().unwrap().position;
    wait_until(
        &read_model,
        "the workers to catch up",
        "SELECT checkpoint FROM factum_read_models.versions WHERE name = 'worker_tally' AND version = 1",
        |checkpoint| checkpoint >= head as i64,
    )
    .await;

    // A clean stop: stdin closed, leases given back.
    for (name, mut child) in workers {
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "worker {name} ended with {status}");
    }
    assert_eq!(
        query_i64(
            &read_model,
            "SELECT count(*) FROM factum_read_models.leases WHERE name = 'worker_tally' AND owner IS NOT NULL"
        )
        .await,
        0,
        "stopped workers give their leases back"
    );

    // Every handled event applied exactly once.
    let mut handled = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page.iter().filter(|event| event.name == "Ticked") {
            handled.insert(event.position as i64, event.stream_id.clone());
        }
    }
    let applications: BTreeMap<i64, (String, String, i32)> = client
        .query(
            "SELECT position, stream, worker, times FROM worker_tally__v1.applications",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect();
    let twice: Vec<_> = applications
        .iter()
        .filter(|(_, (_, _, times))| *times != 1)
        .collect();
    assert!(twice.is_empty(), "events applied more than once: {twice:?}");
    let applied: BTreeMap<i64, String> = applications
        .iter()
        .map(|(position, (stream, _, _))| (*position, stream.clone()))
        .collect();
    assert_eq!(applied, handled, "every handled event, once");

    // w2's partitions were applied by the others after it died.
    let after_kill: BTreeSet<&str> = applications
        .iter()
        .filter(|(position, (stream, _, _))| {
            **position > killed_at as i64 && w2_partitions.contains(&PARTITIONS.of(stream))
        })
        .map(|(_, (_, worker, _))| worker.as_str())
        .collect();
    let by_w2: Vec<_> = applications
        .iter()
        .filter(|(position, (_, worker, _))| **position > killed_at as i64 && worker == "w2")
        .take(5)
        .collect();
    assert!(
        !after_kill.is_empty() && !after_kill.contains("w2"),
        "after the kill at {killed_at}, w2's partitions were applied by {after_kill:?}; by w2: {by_w2:?}"
    );

    // The workers' version caught up and became the one readers see.
    let versions = read_model.versions("worker_tally").await.unwrap();
    let v1 = versions.iter().find(|status| status.version == 1).unwrap();
    assert_eq!(v1.state, VersionState::Active);
    assert!(v1.checkpoint >= head);

    // The model equals a single runner's rebuild.
    let runner = ProjectionRunner::new(store.clone());
    let rebuilt = runner
        .rebuild(
            Tally::<2> {
                worker: "rebuild".to_owned(),
            },
            read_model.clone(),
            |_| {},
        )
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.applied, handled.len() as u64);
    let model = |version: u32| {
        let client = &client;
        async move {
            client
                .query(
                    &format!(
                        "SELECT stream, events, total, last_version FROM worker_tally__v{version}.streams ORDER BY stream"
                    ),
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row.get::<_, String>(0),
                        row.get::<_, i64>(1),
                        row.get::<_, i64>(2),
                        row.get::<_, i64>(3),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (workers_model, rebuilt_model) = (model(1).await, model(2).await);
    assert_eq!(workers_model.len(), STREAMS);
    assert_eq!(
        workers_model, rebuilt_model,
        "the workers' model equals a rebuild"
    );

    println!(
        "3 workers, w2 killed at position {killed_at} holding partitions {w2_partitions:?}: {} events applied once each",
        handled.len()
    );
}

/// Workers with another partition count, or a single runner, refuse a version the
/// workers feed: either would apply its events a second time.
async fn other_feeds_are_refused() {
    let url = postgres_common::database_url(DATABASE);
    let (store, read_model) = connect(&url).await;
    let runner = ProjectionRunner::new(store);
    let mut worker = runner
        .worker(
            Tally::<1> {
                worker: "w4".to_owned(),
            },
            read_model.clone(),
            read_model,
            "w4",
        )
        .partitions(StreamPartitions::new(5))
        .lease_ttl(LEASE_TTL);
    let error = worker.step().await.expect_err("another partition count");
    assert!(
        matches!(&error, RunnerError::FedOtherwise { found, expected, .. }
            if found == "factum.streams/12" && expected == "factum.streams/5"),
        "{error}"
    );

    let url = postgres_common::database_url(DATABASE);
    let (store, read_model) = connect(&url).await;
    let runner = ProjectionRunner::new(store);
    let mut single = runner.projector(
        Tally::<1> {
            worker: "single".to_owned(),
        },
        read_model,
    );
    let error = runner
        .catch_up(&mut single)
        .await
        .expect_err("a single runner");
    assert_eq!(
        error.to_string(),
        "projection `worker_tally` v1 is fed by `factum.streams/12`, not a single runner \
         reading the whole log: refusing to apply events a second time; feed each version \
         one way only (every worker with the same partition count), or bump the version to \
         build it anew"
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Ok(name) = std::env::var("FACTUM_WORKER_NAME") {
        let url = std::env::var("FACTUM_WORKER_URL").expect("FACTUM_WORKER_URL");
        runtime.block_on(worker(name, url));
        return;
    }
    runtime.block_on(async {
        three_workers_one_killed().await;
        println!("test three_workers_one_killed ... ok");
        other_feeds_are_refused().await;
        println!("test other_feeds_are_refused ... ok");
    });
    println!("\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
