//! Appending to and replaying from a SQLite file: factum's `SqliteStore` against the same
//! work done with rusqlite directly.
//!
//! - `append_sqlite`: one-event commits and 100-event batches. The raw baseline runs the
//!   statements factum runs (`BEGIN IMMEDIATE`, read the stream row, insert or update it,
//!   insert the events with their JSON metadata, `COMMIT`) with rusqlite's cached
//!   prepared statements, on a file of the same schema (created by `SqliteStore::open`)
//!   with the same pragmas (WAL, `synchronous = FULL`, foreign keys on). The events are
//!   built outside the timed routine for both.
//! - `replay_sqlite_10k`: the example's 10,000-event order stream (the one
//!   `benches/replay.rs` replays from memory) stored in a SQLite file and loaded through
//!   `Repository::load`, against a raw loop that selects `(name, schema_version,
//!   payload)` of the stream in order and decodes and applies each row by hand.
//! - `replay_sqlite_10k_busy`: the same replays while one busy-looping `sh` process per
//!   core runs beside the bench (started before the group, killed after it).
//! - `replay_sqlite_10k_cpu`: the same replays timed by the CPU they take (the process's
//!   CPU clock: every thread, the store's reading thread too), which other processes do
//!   not change; what a replay costs a machine whose cores are all taken.
//!
//! Before timing, the bench checks that both sides rebuild the same state and that both
//! append paths wrote what they were given. Run with
//! `cargo bench -p factum-benches --bench append_sqlite`; the figures are recorded in
//! `BENCHMARKS.md` at the workspace root.

#[allow(dead_code)]
#[path = "replay/raw.rs"]
mod raw;
#[path = "shared/raw_append.rs"]
mod raw_append;
#[path = "shared/sqlite.rs"]
mod sqlite;
#[allow(dead_code)]
#[path = "replay/stream.rs"]
mod stream;

use std::cell::Cell;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use factum::prelude::*;
use factum::repository::decode_record;
use factum::store::SqliteStore;
use factum_example_orders::{Catalog, Order};
use rusqlite::{Connection, params};
use serde_json::json;

use crate::raw::{FromStr, Outcome, RawOrder};
use crate::raw_append::raw_append;
use crate::sqlite::raw_connection;
use crate::stream::{EVENTS, ORDER_ID};

/// A fresh batch of `size` events (new ids), carrying a command's metadata as the
/// repository would.
fn new_events(size: usize) -> Vec<NewEvent> {
    let metadata = CommandContext::new()
        .actor(Actor::new("support_agent", "support-agent-7"))
        .event_metadata();
    (0..size)
        .map(|n| {
            NewEvent::new(
                "ItemAdded",
                2,
                serde_json::value::to_raw_value(
                    &json!({ "sku": format!("SKU-{:04}", n % 40), "quantity": 2, "unit_price": 1234 }),
                )
                .expect("JSON"),
                metadata.clone(),
            )
        })
        .collect()
}

/// Appends one batch per iteration to one growing stream, through factum and by hand.
fn append_group(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    size: usize,
    label: &str,
) {
    let factum_path = dir.join(format!("factum-{size}.db"));
    let raw_path = dir.join(format!("raw-{size}.db"));
    let store = runtime
        .block_on(SqliteStore::open(&factum_path))
        .expect("open");
    // The raw file gets the same schema, then is written by hand.
    drop(
        runtime
            .block_on(SqliteStore::open(&raw_path))
            .expect("open"),
    );
    let raw = raw_connection(&raw_path);

    // Both paths write what they are given (checked once, untimed).
    let check = new_events(size);
    let outcome = runtime
        .block_on(store.append("check", "Order", ExpectedVersion::NoStream, check.clone()))
        .expect("append");
    assert_eq!(outcome.stream_version, size as u64);
    assert_eq!(raw_append(&raw, "check", "Order", 0, &check), size as u64);
    let read = runtime
        .block_on(store.read_stream("check", 1, size))
        .expect("read");
    let raw_store = runtime
        .block_on(SqliteStore::open(&raw_path))
        .expect("open");
    let raw_read = runtime
        .block_on(raw_store.read_stream("check", 1, size))
        .expect("read");
    drop(raw_store);
    assert_eq!(read.len(), size);
    for ((factum, raw), event) in read.iter().zip(&raw_read).zip(&check) {
        assert_eq!(factum.event_id, event.event_id);
        assert_eq!(raw.event_id, event.event_id);
        assert_eq!(factum.payload.get(), raw.payload.get());
        assert_eq!(factum.metadata, raw.metadata);
        assert_eq!(factum.timestamp, raw.timestamp);
    }

    let mut group = c.benchmark_group("append_sqlite");
    group.throughput(Throughput::Elements(size as u64));
    let version = Cell::new(0u64);
    group.bench_function(format!("factum/{label}"), |b| {
        b.to_async(runtime).iter_batched(
            || new_events(size),
            |events| {
                let expected = match version.get() {
                    0 => ExpectedVersion::NoStream,
                    version => ExpectedVersion::Exact(version),
                };
                let store = &store;
                let version = &version;
                async move {
                    let outcome = store
                        .append("bench", "Order", expected, events)
                        .await
                        .expect("append");
                    version.set(outcome.stream_version);
                }
            },
            BatchSize::SmallInput,
        );
    });
    let raw_version = Cell::new(0u64);
    group.bench_function(format!("raw/{label}"), |b| {
        b.iter_batched(
            || new_events(size),
            |events| {
                raw_version.set(raw_append(
                    &raw,
                    "bench",
                    "Order",
                    raw_version.get(),
                    &events,
                ))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The raw replay: one query, rows decoded and applied as they are stepped.
fn raw_replay(connection: &Connection, stream_id: &str) -> RawOrder {
    let mut statement = connection
        .prepare_cached(
            "SELECT name, schema_version, payload FROM events
             WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1)
             ORDER BY stream_version",
        )
        .expect("prepare");
    let mut rows = statement.query(params![stream_id]).expect("query");
    let mut state = RawOrder::default();
    while let Some(row) = rows.next().expect("step") {
        let name = row.get_ref(0).and_then(|v| Ok(v.as_str()?)).expect("name");
        let version: u32 = row.get(1).expect("version");
        let payload = row
            .get_ref(2)
            .and_then(|v| Ok(v.as_str()?))
            .expect("payload");
        raw::apply::<FromStr>(&mut state, name, version, payload).expect("the row replays");
    }
    state
}

fn replay_group(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let fixture = stream::build(runtime);
    let path = dir.join("replay.db");
    let store = runtime.block_on(SqliteStore::open(&path)).expect("open");
    let stream_id = Repository::<Order, SqliteStore>::stream_id(ORDER_ID);
    let mut version = 0;
    for chunk in fixture.records.chunks(500) {
        let events = stream::to_new_events(chunk);
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        version = runtime
            .block_on(store.append(&stream_id, Order::NAME, expected, events))
            .expect("append")
            .stream_version;
    }
    assert_eq!(version, EVENTS as u64);
    let repository = Repository::<Order, SqliteStore>::with_services(
        store.clone(),
        Catalog::new(stream::prices()),
    );
    let raw = Connection::open(&path).expect("open");
    raw.pragma_update(None, "query_only", "ON")
        .expect("query_only");

    // Both rebuild the state the aggregate reached while deciding.
    let expected = Outcome::from(&fixture.state);
    let loaded = runtime.block_on(repository.load(ORDER_ID)).expect("load");
    assert_eq!(loaded.version, EVENTS as u64);
    assert_eq!(Outcome::from(&loaded.state), expected);
    assert_eq!(Outcome::from(&raw_replay(&raw, &stream_id)), expected);

    let mut group = c.benchmark_group("replay_sqlite_10k");
    group.throughput(Throughput::Elements(EVENTS as u64));
    replay_functions(&mut group, runtime, &repository, &raw, &stream_id);
    // Diagnostics: reading the records without decoding them.
    group.bench_function("factum/read_stream_only", |b| {
        b.to_async(runtime).iter(|| async {
            store
                .read_stream(black_box(&stream_id), 1, usize::MAX)
                .await
                .expect("reads")
                .len()
        });
    });
    group.finish();

    // The same two while other processes keep every core busy: a replay that hands work
    // between threads pays for each wake-up when the scheduler has other work to run.
    let busy = Busy::start();
    let mut group = c.benchmark_group("replay_sqlite_10k_busy");
    group.throughput(Throughput::Elements(EVENTS as u64));
    replay_functions(&mut group, runtime, &repository, &raw, &stream_id);
    group.finish();
    drop(busy);

    let mut group = c.benchmark_group("replay_sqlite_10k_cpu");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("factum/repository_load", |b| {
        b.iter_custom(|iterations| {
            cpu_time(iterations, || {
                runtime
                    .block_on(repository.load(black_box(ORDER_ID)))
                    .expect("loads")
            })
        });
    });
    group.bench_function("raw/rusqlite_decode_apply", |b| {
        b.iter_custom(|iterations| {
            cpu_time(iterations, || raw_replay(&raw, black_box(&stream_id)))
        });
    });
    group.finish();
}

/// The CPU time this process spends running `routine` `iterations` times, on all its
/// threads.
fn cpu_time<T>(iterations: u64, mut routine: impl FnMut() -> T) -> Duration {
    let clock = || {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Duration::new(
            u64::try_from(now.tv_sec).expect("a CPU time after the process started"),
            u32::try_from(now.tv_nsec).expect("nanoseconds below one second"),
        )
    };
    let start = clock();
    for _ in 0..iterations {
        black_box(routine());
    }
    clock() - start
}

/// factum's replay and the raw one, as functions of `group`.
fn replay_functions(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    repository: &Repository<Order, SqliteStore>,
    raw: &Connection,
    stream_id: &str,
) {
    group.bench_function("factum/repository_load", |b| {
        b.to_async(runtime)
            .iter(|| async { repository.load(black_box(ORDER_ID)).await.expect("loads") });
    });
    group.bench_function("raw/rusqlite_decode_apply", |b| {
        b.iter(|| raw_replay(raw, black_box(stream_id)));
    });
    // Diagnostic: the replay as loads ran it before `replay_stream`, through whole
    // records (as commands and `load_as_of` still do).
    group.bench_function("factum/records_decode_apply", |b| {
        b.to_async(runtime).iter(|| async {
            let mut state = Order::default();
            repository
                .store()
                .for_each_in_stream(black_box(stream_id), 1, |record| {
                    state.apply(&decode_record::<<Order as Aggregate>::Events>(record)?);
                    Ok::<_, factum::repository::RecordDecodeError>(())
                })
                .await
                .expect("replays");
            state
        });
    });
}

/// A background load: one busy-looping process per core, separate from the bench's,
/// killed when dropped (also when a panic unwinds past it).
struct Busy(Vec<std::process::Child>);

impl Busy {
    fn start() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self(
            (0..cores)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(std::process::Stdio::null())
                        .spawn()
                        .expect("start a busy process")
                })
                .collect(),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Already gone is fine: the point is that none outlives the bench.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("a temporary directory");
    append_group(c, &runtime, dir.path(), 1, "single_event_commit");
    append_group(c, &runtime, dir.path(), 100, "batch_100");
    replay_group(c, &runtime, dir.path());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = sqlite
}
criterion_main!(benches);
