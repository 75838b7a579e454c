//! Appends on PostgreSQL: factum's `PostgresStore` against postgres-es 0.5 (the
//! published PostgreSQL store of cqrs-es), in one process, on the same server.
//!
//! postgres-es is measured through its persist path, as cqrs-es calls it after a
//! command: `PersistedEventRepository::persist::<A>(&[SerializedEvent], None)`, which
//! opens a transaction, inserts each event (one `INSERT` per event) and commits. It
//! writes to its own table (`bench_pges.events`, the DDL of its `db/init.sql`); factum
//! to its store in `bench_pges_factum`. Both get the same payload and the same metadata
//! entries, one stream each, one event or 100 per commit.
//!
//! This crate is a workspace of its own (sqlx, under postgres-es, cannot share a lock
//! file with the SQLite store's rusqlite). Run, with a server
//! (`eval "$(scripts/postgres.sh start)"`):
//! `cargo bench --manifest-path benches/postgres-es/Cargo.toml`.
//! Without `FACTUM_POSTGRES_URL` it prints a notice and measures nothing.

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
use criterion::{Criterion, Throughput};
use factum::prelude::*;
use factum::store::PostgresStore;
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::runtime::Runtime;

/// The payload of every event: an `ItemAdded` of the example (about 50 bytes).
const PAYLOAD: &str = r#"{"sku":"SKU-0042","quantity":3,"unit_price":1999}"#;

/// postgres-es's tables, from its `db/init.sql`, in a schema of their own.
const PGES_DDL: &str = "
    DROP SCHEMA IF EXISTS bench_pges CASCADE;
    CREATE SCHEMA bench_pges;
    CREATE TABLE bench_pges.events (
        aggregate_type text                         NOT NULL,
        aggregate_id   text                         NOT NULL,
        sequence       bigint CHECK (sequence >= 0) NOT NULL,
        event_type     text                         NOT NULL,
        event_version  text                         NOT NULL,
        payload        json                         NOT NULL,
        metadata       json                         NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    );
    CREATE TABLE bench_pges.snapshots (
        aggregate_type   text                                 NOT NULL,
        aggregate_id     text                                 NOT NULL,
        last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload          json                                 NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
    );";

/// The aggregate postgres-es needs a type of (`persist` only reads its `TYPE`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchOrder;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BenchEvent {
    ItemAdded(Value),
}

impl DomainEvent for BenchEvent {
    fn event_type(&self) -> String {
        "ItemAdded".to_owned()
    }

    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

/// The aggregate's error: it never fails.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Aggregate for BenchOrder {
    const TYPE: &'static str = "Order";
    type Command = ();
    type Event = BenchEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        _command: (),
        _services: &(),
        _sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Never> {
        Ok(())
    }

    fn apply(&mut self, _event: BenchEvent) {}
}

fn metadata() -> Metadata {
    CommandMetadata::new()
        .actor("support-agent-7")
        .event_metadata()
}

/// The metadata entries as cqrs-es carries them: a string map.
fn cqrs_metadata(metadata: &Metadata) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let uuid = |id: Option<factum::uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    map.insert("correlation_id".to_owned(), uuid(metadata.correlation_id));
    map.insert("causation_id".to_owned(), uuid(metadata.causation_id));
    map.insert(
        "actor".to_owned(),
        metadata.actor.clone().unwrap_or_default(),
    );
    map
}

/// The serialised events cqrs-es hands to `persist`, made as cqrs-es makes them.
fn serialized_events(
    count: usize,
    first_sequence: usize,
    payload: &Value,
    metadata: &std::collections::HashMap<String, String>,
) -> Vec<SerializedEvent> {
    (0..count)
        .map(|n| {
            let envelope = EventEnvelope::<BenchOrder> {
                aggregate_id: "bench-order".to_owned(),
                sequence: first_sequence + n,
                payload: BenchEvent::ItemAdded(payload.clone()),
                metadata: metadata.clone(),
            };
            SerializedEvent::try_from(&envelope).expect("the event serialises")
        })
        .collect()
}

fn new_events(count: usize, payload: &RawValue, metadata: &Metadata) -> Vec<NewEvent> {
    (0..count)
        .map(|_| NewEvent::new("ItemAdded", 2, payload.to_owned(), metadata.clone()))
        .collect()
}

struct Contenders {
    store: PostgresStore,
    repository: PostgresEventRepository,
    raw_payload: Box<RawValue>,
    value_payload: Value,
    metadata: Metadata,
    cqrs_metadata: std::collections::HashMap<String, String>,
    factum_version: Cell<u64>,
    pges_sequence: Cell<usize>,
}

impl Contenders {
    async fn factum(&self, batch: usize) {
        let expected = match self.factum_version.get() {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        let outcome = self
            .store
            .append(
                "Order-bench-order",
                "Order",
                expected,
                new_events(batch, &self.raw_payload, &self.metadata),
            )
            .await
            .expect("factum append");
        self.factum_version.set(black_box(outcome).stream_version);
    }

    async fn postgres_es(&self, batch: usize) {
        let first = self.pges_sequence.get() + 1;
        let events = serialized_events(batch, first, &self.value_payload, &self.cqrs_metadata);
        self.repository
            .persist::<BenchOrder>(&events, None)
            .await
            .expect("postgres-es persist");
        self.pges_sequence.set(first + batch - 1);
    }
}

async fn setup(url: &str) -> Contenders {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to FACTUM_POSTGRES_URL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .batch_execute(&format!(
            "{PGES_DDL} DROP SCHEMA IF EXISTS bench_pges_factum CASCADE;"
        ))
        .await
        .expect("the bench schemas");
    let store = PostgresStore::builder(url)
        .schema("bench_pges_factum")
        .pool_size(4)
        .connect()
        .await
        .expect("connect factum");
    let pool = postgres_es::default_postgress_pool(url).await;
    let repository =
        PostgresEventRepository::new(pool).with_tables("bench_pges.events", "bench_pges.snapshots");
    let metadata = metadata();
    Contenders {
        store,
        repository,
        raw_payload: RawValue::from_string(PAYLOAD.to_owned()).expect("valid JSON"),
        value_payload: serde_json::from_str(PAYLOAD).expect("valid JSON"),
        cqrs_metadata: cqrs_metadata(&metadata),
        metadata,
        factum_version: Cell::new(0),
        pges_sequence: Cell::new(0),
    }
}

/// Alternates the two, round by round, so both see the same server and machine state;
/// prints latency percentiles (µs) and the ratio of medians.
fn paired(runtime: &Runtime, contenders: &Contenders, batch: usize, rounds: usize) {
    let (mut factum, mut pges) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            for first in [round % 2 == 0, round % 2 != 0] {
                let start = Instant::now();
                if first {
                    contenders.factum(batch).await;
                    factum.push(start.elapsed());
                } else {
                    contenders.postgres_es(batch).await;
                    pges.push(start.elapsed());
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
    let (f, p) = (stats(&mut factum), stats(&mut pges));
    println!("paired, {batch} event(s) per commit, {rounds} rounds each, latency in µs:");
    println!(
        "  factum/append         p50 {:8.1}  p90 {:8.1}  p99 {:8.1}  mean {:8.1}",
        f.0, f.1, f.2, f.3
    );
    println!(
        "  postgres_es/persist   p50 {:8.1}  p90 {:8.1}  p99 {:8.1}  mean {:8.1}",
        p.0, p.1, p.2, p.3
    );
    println!(
        "  factum throughput / postgres-es: {:.2}x (medians), {:.2}x (means)",
        p.0 / f.0,
        p.3 / f.3
    );
}

fn main() {
    let Some(url) = std::env::var("FACTUM_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        eprintln!(
            "append_postgres_es: FACTUM_POSTGRES_URL is not set; skipping. Start a server with \
             `eval \"$(scripts/postgres.sh start)\"`."
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let contenders = runtime.block_on(setup(&url));
    let mut criterion = Criterion::default().configure_from_args();
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
            b.to_async(&runtime).iter_custom(|iters| {
                let contenders = &contenders;
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        contenders.factum(batch).await;
                    }
                    start.elapsed()
                }
            })
        });
        group.bench_function("postgres_es/persist", |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let contenders = &contenders;
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        contenders.postgres_es(batch).await;
                    }
                    start.elapsed()
                }
            })
        });
        group.finish();
    }
    criterion.final_summary();
    paired(&runtime, &contenders, 1, 1500);
    paired(&runtime, &contenders, 100, 150);
}
