//! What the two PostgreSQL append benches share: factum's writer, the event they append,
//! the criterion groups and the paired (alternating) timing of factum against the
//! contender a bench compares it with.
//!
//! Included by `benches/append_postgres.rs` (factum against raw tokio-postgres) and by
//! `benches/postgres-es/benches/append_postgres_es.rs` (factum against postgres-es),
//! which is a crate of its own: this file uses only what both crates depend on (factum
//! with its `postgres` feature, criterion with `async_tokio`, tokio, tokio-postgres and
//! serde_json).

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use factum::prelude::*;
use factum::store::PostgresStore;
use serde_json::value::RawValue;
use tokio::runtime::Runtime;

/// A payload of the example's size: an `ItemAdded` event (about 50 bytes).
pub const PAYLOAD: &str = r#"{"sku":"SKU-0042","quantity":3,"unit_price":1999}"#;

/// The server's URL, from `FACTUM_POSTGRES_URL`; without it, a notice naming `bench`
/// and nothing (under `CI=true`, a panic: CI never skips the PostgreSQL benches).
pub fn postgres_url(bench: &str) -> Option<String> {
    let url = std::env::var("FACTUM_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    if url.is_none() {
        // Under CI a missing server is a failure, never a silent skip.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{bench}: FACTUM_POSTGRES_URL is not set and CI=true: start a server with \
             `eval \"$(scripts/postgres.sh start)\"`"
        );
        eprintln!(
            "{bench}: FACTUM_POSTGRES_URL is not set; skipping the PostgreSQL benches. \
             Start a server with `eval \"$(scripts/postgres.sh start)\"`."
        );
    }
    url
}

/// The runtime the benches run on: one thread, I/O and timers enabled.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The metadata of every appended event: a command's, with an actor.
pub fn metadata() -> Metadata {
    CommandContext::new()
        .actor(Actor::new("support_agent", "support-agent-7"))
        .event_metadata()
}

/// `count` new `ItemAdded` events (new ids and timestamps) of `payload`.
pub fn new_events(count: usize, payload: &RawValue, metadata: &Metadata) -> Vec<NewEvent> {
    (0..count)
        .map(|_| NewEvent::new("ItemAdded", 2, payload.to_owned(), metadata.clone()))
        .collect()
}

/// A tokio-postgres connection (its connection task spawned on the current runtime).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to FACTUM_POSTGRES_URL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// factum's store in `schema`, dropped and created afresh.
pub async fn fresh_store(url: &str, schema: &str) -> PostgresStore {
    connect(url)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop the bench schema");
    PostgresStore::builder(url)
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .expect("connect the store")
}

/// factum's side: one stream of a fresh store, the version it is at, and the payload
/// and metadata of its events (which the contender writes too).
pub struct FactumWriter {
    pub store: PostgresStore,
    pub stream: &'static str,
    pub payload: Box<RawValue>,
    pub metadata: Metadata,
    pub version: Cell<u64>,
}

impl FactumWriter {
    pub async fn new(url: &str, schema: &str, stream: &'static str) -> Self {
        Self {
            store: fresh_store(url, schema).await,
            stream,
            payload: RawValue::from_string(PAYLOAD.to_owned()).expect("valid JSON"),
            metadata: metadata(),
            version: Cell::new(0),
        }
    }

    /// `EventStore::append` of `batch` events, the version checked against the last
    /// one written.
    pub async fn append(&self, batch: usize) {
        let expected = match self.version.get() {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        let outcome = self
            .store
            .append(
                self.stream,
                "Order",
                expected,
                new_events(batch, &self.payload, &self.metadata),
            )
            .await
            .expect("factum append");
        self.version.set(black_box(outcome).stream_version);
    }
}

/// factum and the contender a bench measures it against, each on a stream of its own.
pub trait Contenders {
    /// The contender's function name in the groups (`raw/insert`).
    const FUNCTION: &'static str;
    /// The contender's name in the ratio line of the paired timing (`raw`).
    const NAME: &'static str;

    fn factum(&self) -> &FactumWriter;

    /// The contender's commit of `batch` events.
    fn append(&self, batch: usize) -> impl Future<Output = ()>;
}

/// The groups `append_postgres_single` (one event per commit) and
/// `append_postgres_batch100` (100), each with `factum/append` and the contender.
pub fn append_groups<C: Contenders>(criterion: &mut Criterion, runtime: &Runtime, contenders: &C) {
    for (group_name, batch) in [
        ("append_postgres_single", 1usize),
        ("append_postgres_batch100", 100),
    ] {
        let mut group = criterion.benchmark_group(group_name);
        group.throughput(Throughput::Elements(batch as u64));
        group.sample_size(if batch == 1 { 100 } else { 30 });
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(if batch == 1 { 6 } else { 8 }));
        group.bench_function("factum/append", |b| {
            b.to_async(runtime).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    contenders.factum().append(batch).await;
                }
                start.elapsed()
            })
        });
        group.bench_function(C::FUNCTION, |b| {
            b.to_async(runtime).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    contenders.append(batch).await;
                }
                start.elapsed()
            })
        });
        group.finish();
    }
}

/// Alternates the two round by round (who goes first alternates too), so both see the
/// same server and machine state; prints latency percentiles (µs) and the ratios.
pub fn paired<C: Contenders>(runtime: &Runtime, contenders: &C, batch: usize, rounds: usize) {
    let (mut factum, mut other) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            for factum_turn in [round % 2 == 0, round % 2 != 0] {
                let start = Instant::now();
                if factum_turn {
                    contenders.factum().append(batch).await;
                    factum.push(start.elapsed());
                } else {
                    contenders.append(batch).await;
                    other.push(start.elapsed());
                }
            }
        }
    });
    let stats = |times: &mut Vec<Duration>| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
        (at(0.5), at(0.9), at(0.99), mean)
    };
    let (f, o) = (stats(&mut factum), stats(&mut other));
    let width = "factum/append".len().max(C::FUNCTION.len()) + 3;
    println!("paired, {batch} event(s) per commit, {rounds} rounds each, latency in µs:");
    for (name, s) in [("factum/append", f), (C::FUNCTION, o)] {
        println!(
            "  {name:width$}p50 {:8.1}  p90 {:8.1}  p99 {:8.1}  mean {:8.1}",
            s.0, s.1, s.2, s.3
        );
    }
    println!(
        "  factum throughput / {}: {:.2}x (medians), {:.2}x (means)",
        C::NAME,
        o.0 / f.0,
        o.3 / f.3
    );
}
