//! Appends and replay on PostgreSQL: factum's `PostgresStore` against a raw
//! tokio-postgres baseline writing the same rows to the same table shape.
//! (postgres-es 0.5, the third contender, is measured by `benches/postgres-es/`: its
//! sqlx cannot share this workspace's lock file with rusqlite.)
//!
//! - `append_postgres_single`: one event per commit, to one stream, version checked.
//! - `append_postgres_batch100`: 100 events per commit.
//! - `replay_10k_postgres`: the 10,000-event order stream of the replay bench, loaded
//!   from PostgreSQL and applied.
//! - Printed after the groups: the same appends alternated round by round (latency
//!   percentiles, robust to the machine's drift), and 1, 8 or 32 concurrent writers
//!   (whether commits to different streams are grouped as raw inserts' are).
//!
//! Needs a server: `eval "$(scripts/postgres.sh start)"`, then
//! `cargo bench -p factum-benches --features postgres --bench append_postgres`.
//! Without `FACTUM_POSTGRES_URL` it prints a notice and measures nothing. Every run
//! drops and recreates its schemas (`bench_factum`, `bench_raw`, `bench_replay`).

#[allow(dead_code)]
#[path = "replay/raw.rs"]
mod raw;
#[path = "shared/pg.rs"]
mod shared;
#[allow(dead_code)]
#[path = "replay/stream.rs"]
mod stream;

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use factum::prelude::*;
use factum::store::PostgresStore;
use factum_example_orders::{Catalog, Order};
use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use tokio_postgres::types::{Json, ToSql};

use crate::shared::{
    Contenders, FactumWriter, PAYLOAD, append_groups, connect, fresh_store, metadata, new_events,
    paired,
};

/// The raw baseline's table: the columns, types, keys and indexes of factum's `events`.
const RAW_DDL: &str = "
    DROP SCHEMA IF EXISTS bench_raw CASCADE;
    CREATE SCHEMA bench_raw;
    CREATE TABLE bench_raw.events (
        position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id      text        NOT NULL,
        stream_type    text        NOT NULL,
        stream_version bigint      NOT NULL CHECK (stream_version > 0),
        event_id       uuid        NOT NULL,
        name           text        NOT NULL,
        schema_version bigint      NOT NULL,
        payload        json        NOT NULL,
        occurred_at    timestamptz NOT NULL,
        metadata       json        NOT NULL,
        CONSTRAINT events_event_id_key UNIQUE (event_id),
        CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
    );";

const RAW_INSERT_ONE: &str = "
    INSERT INTO bench_raw.events (stream_id, stream_type, stream_version, event_id, name,
                                  schema_version, payload, occurred_at, metadata)
    VALUES ($1, $2, $3, $4, $5, $6, $7::text::json, $8, $9::text::json)";

const RAW_INSERT_MANY: &str = "
    INSERT INTO bench_raw.events (stream_id, stream_type, stream_version, event_id, name,
                                  schema_version, payload, occurred_at, metadata)
    SELECT $1, $2, $3 + b.ord, b.id, b.name, b.schema_version, b.payload::json,
           b.occurred_at, b.metadata::json
      FROM unnest($4::uuid[], $5::text[], $6::bigint[], $7::text[], $8::timestamptz[],
                  $9::text[]) WITH ORDINALITY
           AS b(id, name, schema_version, payload, occurred_at, metadata, ord)
     ORDER BY b.ord";

/// The raw baseline's append: the rows factum stores, one autocommit `INSERT`, the
/// version known to the writer (the unique index is its concurrency check).
async fn raw_append(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    stream_id: &str,
    version_before: i64,
    events: &[NewEvent],
) {
    if let [event] = events {
        let metadata = serde_json::to_string(&event.metadata).expect("metadata serialises");
        let params: [&(dyn ToSql + Sync); 9] = [
            &stream_id,
            &"Order",
            &(version_before + 1),
            &event.event_id,
            &event.name,
            &i64::from(event.schema_version),
            &event.payload.get(),
            &event.timestamp,
            &metadata,
        ];
        client
            .execute(statement, &params)
            .await
            .expect("raw insert");
    } else {
        let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        let versions: Vec<i64> = events.iter().map(|e| i64::from(e.schema_version)).collect();
        let payloads: Vec<&str> = events.iter().map(|e| e.payload.get()).collect();
        let timestamps: Vec<_> = events.iter().map(|e| e.timestamp).collect();
        let metadata: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(&e.metadata).expect("metadata serialises"))
            .collect();
        let params: [&(dyn ToSql + Sync); 9] = [
            &stream_id,
            &"Order",
            &version_before,
            &ids,
            &names,
            &versions,
            &payloads,
            &timestamps,
            &metadata,
        ];
        client
            .execute(statement, &params)
            .await
            .expect("raw insert");
    }
}

/// factum and the raw baseline, each on its own stream, with the version it is at.
struct Writers {
    factum: FactumWriter,
    client: tokio_postgres::Client,
    insert_one: tokio_postgres::Statement,
    insert_many: tokio_postgres::Statement,
    raw_version: Cell<i64>,
}

impl Writers {
    async fn new(url: &str) -> Self {
        let factum = FactumWriter::new(url, "bench_factum", "Order-factum").await;
        let client = connect(url).await;
        client.batch_execute(RAW_DDL).await.expect("raw schema");
        let insert_one = client.prepare(RAW_INSERT_ONE).await.expect("prepare");
        let insert_many = client.prepare(RAW_INSERT_MANY).await.expect("prepare");
        Self {
            factum,
            client,
            insert_one,
            insert_many,
            raw_version: Cell::new(0),
        }
    }
}

impl Contenders for Writers {
    const FUNCTION: &'static str = "raw/insert";
    const NAME: &'static str = "raw";

    fn factum(&self) -> &FactumWriter {
        &self.factum
    }

    /// The raw baseline: the same rows, one autocommit `INSERT`.
    async fn append(&self, batch: usize) {
        let events = new_events(batch, &self.factum.payload, &self.factum.metadata);
        let statement = if batch == 1 {
            &self.insert_one
        } else {
            &self.insert_many
        };
        raw_append(
            &self.client,
            statement,
            "Order-raw",
            self.raw_version.get(),
            &events,
        )
        .await;
        self.raw_version.set(self.raw_version.get() + batch as i64);
    }
}

/// Appends under concurrency: `writers` tasks, each appending one event per commit to
/// its own stream, `appends` times; factum through one store (a pool of `writers`
/// connections: appends to different streams commit side by side, the append lock held
/// only while positions are taken) and raw inserts on `writers` connections of their own.
/// The two alternate for `rounds` rounds, on fresh tables each round; prints events per
/// second of each round and the median of the ratios.
fn concurrent(url: &str, writers: usize, appends: usize, rounds: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let payload = RawValue::from_string(PAYLOAD.to_owned()).expect("valid JSON");
    let metadata = metadata();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (factum, raw) = runtime.block_on(async {
            let store = PostgresStore::builder(url)
                .schema("bench_factum")
                .pool_size(writers)
                .connect()
                .await
                .expect("connect the store");
            let start = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|writer| {
                    let (store, payload, metadata) =
                        (store.clone(), payload.clone(), metadata.clone());
                    tokio::spawn(async move {
                        for _ in 0..appends {
                            store
                                .append(
                                    &format!("Order-concurrent-{writers}-{round}-{writer}"),
                                    "Order",
                                    ExpectedVersion::Any,
                                    new_events(1, &payload, &metadata),
                                )
                                .await
                                .expect("factum append");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a writer");
            }
            let factum = start.elapsed();

            let mut clients = Vec::new();
            for _ in 0..writers {
                let client = connect(url).await;
                let statement = client.prepare(RAW_INSERT_ONE).await.expect("prepare");
                clients.push((client, statement));
            }
            let start = Instant::now();
            let tasks: Vec<_> = clients
                .into_iter()
                .enumerate()
                .map(|(writer, (client, statement))| {
                    let (payload, metadata) = (payload.clone(), metadata.clone());
                    tokio::spawn(async move {
                        for n in 0..appends {
                            let events = new_events(1, &payload, &metadata);
                            let stream = format!("Order-concurrent-{writers}-{round}-{writer}");
                            raw_append(&client, &statement, &stream, n as i64, &events).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("a writer");
            }
            (factum, start.elapsed())
        });
        let total = (writers * appends) as f64;
        let ratio = raw.as_secs_f64() / factum.as_secs_f64();
        println!(
            "concurrent, {writers} writers x {appends} single-event commits, round {}: \
             factum {:.0} events/s, raw {:.0} events/s ({ratio:.2}x)",
            round + 1,
            total / factum.as_secs_f64(),
            total / raw.as_secs_f64(),
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "concurrent, {writers} writers: median factum / raw {:.2}x (range {:.2}x to {:.2}x)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

fn appends(criterion: &mut Criterion, runtime: &Runtime, url: &str) {
    let writers = runtime.block_on(Writers::new(url));
    append_groups(criterion, runtime, &writers);
    paired(runtime, &writers, 1, 1500);
    paired(runtime, &writers, 100, 150);
    for concurrency in [1, 8, 32] {
        concurrent(url, concurrency, 2400 / concurrency, 3);
    }

    // Both wrote what they claim.
    let stored = runtime
        .block_on(writers.factum.store.stream_version(writers.factum.stream))
        .expect("stream version");
    assert_eq!(stored, Some(writers.factum.version.get()));

    let raw_stored: i64 = runtime
        .block_on(writers.client.query_one(
            "SELECT coalesce(max(stream_version), 0) FROM bench_raw.events WHERE stream_id = $1",
            &[&"Order-raw"],
        ))
        .expect("raw version")
        .get(0);
    assert_eq!(raw_stored, writers.raw_version.get());
}

/// The envelope columns the like-for-like raw baseline decodes beside the payload (and
/// then only drops, as a replay does).
#[allow(dead_code)]
struct RawEnvelope {
    position: i64,
    stream_id: String,
    stream_type: String,
    stream_version: i64,
    event_id: factum::uuid::Uuid,
    occurred_at: std::time::SystemTime,
    metadata: Metadata,
}

fn replays(criterion: &mut Criterion, runtime: &Runtime, url: &str) {
    let fixture = stream::build(runtime);
    let store = runtime.block_on(fresh_store(url, "bench_replay"));
    let stream_id = Repository::<Order, PostgresStore>::stream_id(stream::ORDER_ID);
    let payload = RawValue::from_string(PAYLOAD.to_owned()).expect("valid JSON");
    let other_metadata = metadata();
    runtime.block_on(async {
        for (index, chunk) in fixture.records.chunks(1000).enumerate() {
            // The order is one stream among many: 9,000 events of other orders between
            // each 1,000 of its own, so the stream is 10% of a 100,000-event table.
            for other in 0..9 {
                store
                    .append(
                        &format!("Order-other-{other}"),
                        Order::NAME,
                        ExpectedVersion::Any,
                        new_events(1000, &payload, &other_metadata),
                    )
                    .await
                    .expect("store the other streams");
            }
            let events = stream::to_new_events(chunk);
            let expected = match index {
                0 => ExpectedVersion::NoStream,
                _ => ExpectedVersion::Exact((index * 1000) as u64),
            };
            store
                .append(&stream_id, Order::NAME, expected, events)
                .await
                .expect("store the replay stream");
        }
    });
    let repository = Repository::<Order, PostgresStore>::with_services(
        store.clone(),
        Catalog::new(stream::prices()),
    );
    let client = runtime.block_on(connect(url));
    let select = runtime
        .block_on(client.prepare(
            "SELECT name, schema_version, payload FROM bench_replay.events \
             WHERE stream_id = $1 ORDER BY stream_version",
        ))
        .expect("prepare the raw select");
    let select_all = runtime
        .block_on(client.prepare(
            "SELECT position, stream_id, stream_type, stream_version, event_id, name, \
             schema_version, payload, occurred_at, metadata FROM bench_replay.events \
             WHERE stream_id = $1 ORDER BY stream_version",
        ))
        .expect("prepare the raw select");
    // The lean baseline: what rebuilding the state needs (name, version, payload).
    let raw_load = || async {
        let rows = client
            .query(&select, &[&stream_id])
            .await
            .expect("raw select");
        let stored: Vec<raw::Stored> = rows
            .iter()
            .map(|row| raw::Stored {
                name: row.get(0),
                version: u32::try_from(row.get::<_, i64>(1)).expect("a u32 version"),
                payload: row.get::<_, Json<&RawValue>>(2).0.get().into(),
            })
            .collect();
        let mut state = raw::RawOrder::default();
        raw::replay::<raw::FromSlice>(&mut state, &stored).expect("raw replay");
        state
    };
    // The like-for-like baseline: every column factum's records carry, decoded.
    let raw_load_all = || async {
        let rows = client
            .query(&select_all, &[&stream_id])
            .await
            .expect("raw select");
        let mut envelopes = Vec::with_capacity(rows.len());
        let stored: Vec<raw::Stored> = rows
            .iter()
            .map(|row| {
                envelopes.push(RawEnvelope {
                    position: row.get(0),
                    stream_id: row.get(1),
                    stream_type: row.get(2),
                    stream_version: row.get(3),
                    event_id: row.get(4),
                    occurred_at: row.get(8),
                    metadata: row.get::<_, Json<Metadata>>(9).0,
                });
                raw::Stored {
                    name: row.get(5),
                    version: u32::try_from(row.get::<_, i64>(6)).expect("a u32 version"),
                    payload: row.get::<_, Json<&RawValue>>(7).0.get().into(),
                }
            })
            .collect();
        let mut state = raw::RawOrder::default();
        raw::replay::<raw::FromSlice>(&mut state, &stored).expect("raw replay");
        black_box(envelopes);
        state
    };

    // Untimed: both paths rebuild the state the aggregate reached while deciding.
    let loaded = runtime
        .block_on(repository.load(stream::ORDER_ID))
        .expect("factum load");
    assert_eq!(loaded.version, stream::EVENTS as u64);
    assert_eq!(loaded.state, fixture.state);
    for raw_state in [
        runtime.block_on(raw_load()),
        runtime.block_on(raw_load_all()),
    ] {
        assert_eq!(
            raw::Outcome::from(&raw_state),
            raw::Outcome::from(&fixture.state)
        );
    }

    let mut group = criterion.benchmark_group("replay_10k_postgres");
    group.throughput(Throughput::Elements(stream::EVENTS as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("factum/repository_load", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(repository.load(stream::ORDER_ID).await.expect("load")) })
    });
    group.bench_function("raw/select_decode", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(raw_load().await) })
    });
    group.bench_function("raw/select_all_columns_decode", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(raw_load_all().await) })
    });
    group.bench_function("factum/visit_only", |b| {
        b.to_async(runtime).iter(|| async {
            let mut bytes = 0;
            store
                .for_each_in_stream(&stream_id, 1, |record| {
                    bytes += record.payload.get().len();
                    Ok::<_, ()>(())
                })
                .await
                .expect("visit");
            black_box(bytes)
        })
    });
    group.finish();
}

fn main() {
    let Some(url) = shared::postgres_url("append_postgres") else {
        return;
    };
    let runtime = shared::runtime();
    let mut criterion = Criterion::default().configure_from_args();
    appends(&mut criterion, &runtime, &url);
    replays(&mut criterion, &runtime, &url);
    criterion.final_summary();
}
