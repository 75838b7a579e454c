//! Personal data on SQLite (issue 14): appending and replaying events with two personal
//! fields through `ProtectedStore<SqliteStore, SqliteKeyStore>`, which seals them under
//! the member's key on append and opens them on read, against the same events through
//! the plain `SqliteStore`, on files of the same schema, in one criterion run.
//!
//! - `append_sealed`: one-event commits and 100-event batches of `ContactChanged` (a
//!   member's id as the subject, an email address and a phone number as personal
//!   fields) to one growing stream of one member, through the protected store, the
//!   plain store and the raw rusqlite baseline of `append_sqlite.rs` (which neither seals
//!   nor hashes). The events are built outside the timed routine for all three.
//! - `replay_sealed`: a member stream of 10,000 such events, loaded through
//!   `Repository::load` (decode and apply) and read with `read_stream`, sealed and plain.
//!
//! Before timing, the bench checks that the protected store stored the personal fields
//! sealed and reads them back as they were given, and that both loads rebuild the same
//! state. Run with `cargo bench -p factum-benches --bench sealed_sqlite`; the figures
//! are recorded in `BENCHMARKS.md` at the workspace root.

#[path = "personal/domain.rs"]
mod domain;
#[path = "shared/raw_append.rs"]
mod raw_append;
#[path = "shared/sqlite.rs"]
mod sqlite;

use std::cell::Cell;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use factum::personal::bundle::{self, BundleCipher};
use factum::personal::{DataKey, KeyState, KeyStore, MasterKey, ProtectedStore, SubjectId};
use factum::prelude::*;
use factum::sqlite::{SqliteKeyStore, SqliteStore};

use crate::domain::{Member, new_events};
use crate::raw_append::raw_append;
use crate::sqlite::raw_connection;

type Protected = ProtectedStore<SqliteStore, SqliteKeyStore>;

/// The member whose stream every bench writes.
const MEMBER: &str = "m-000042";
/// The events of the replayed stream.
const REPLAYED: usize = 10_000;

/// A protected store over a new SQLite file, its keys in the same file.
async fn protected(path: &Path) -> Protected {
    let sqlite = SqliteStore::open(path).await.expect("open");
    let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes([7; 32]))
        .await
        .expect("the key store");
    ProtectedStore::new(sqlite, keys, domain::catalog())
}

/// Appends `events` to `stream_id` in batches of `batch`, returns the stream's version.
async fn fill(
    store: &impl EventStore,
    stream_id: &str,
    events: Vec<NewEvent>,
    batch: usize,
) -> u64 {
    let mut version = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(batch).collect();
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        version = store
            .append(stream_id, "Member", expected, chunk)
            .await
            .expect("append")
            .stream_version;
    }
    version
}

/// The binding of an event's bundle of its two personal fields, and its payload.
fn binding(
    event_id: factum::uuid::Uuid,
    name: &str,
    schema_version: u32,
    payload: &serde_json::value::RawValue,
) -> (Vec<u8>, serde_json::Value) {
    let mut aad = Vec::new();
    bundle::aad(
        &mut aad,
        event_id,
        name,
        schema_version,
        ["/email", "/phone"],
    );
    (aad, serde_json::from_str(payload.get()).expect("JSON"))
}

/// What the cipher of an event's bundle works on: the binding of its two personal
/// fields and their values as the JSON array a bundle seals.
fn bundle_inputs(events: &[NewEvent]) -> Vec<(Vec<u8>, Vec<u8>)> {
    events
        .iter()
        .map(|event| {
            let (aad, payload) = binding(
                event.event_id,
                &event.name,
                event.schema_version,
                &event.payload,
            );
            let plaintext =
                serde_json::to_vec(&[&payload["email"], &payload["phone"]]).expect("JSON");
            (aad, plaintext)
        })
        .collect()
}

/// Checks that `store` stores the personal fields sealed and reads back what it was
/// given, and that `plain` stores them as given.
fn check_append(runtime: &tokio::runtime::Runtime, store: &Protected, plain: &SqliteStore) {
    let events = new_events(MEMBER, 0, 3);
    assert_eq!(
        runtime.block_on(fill(store, "Member-check", events.clone(), 3)),
        3
    );
    assert_eq!(
        runtime.block_on(fill(plain, "Member-check", events.clone(), 3)),
        3
    );
    for (target, sealed) in [(store.inner(), true), (plain, false)] {
        let stored = runtime
            .block_on(target.read_stream("Member-check", 1, 3))
            .expect("read");
        assert_eq!(stored.len(), 3);
        for (stored, given) in stored.iter().zip(&events) {
            assert_eq!(stored.event_id, given.event_id);
            assert_eq!(stored.metadata, given.metadata);
            let payload = stored.payload.get();
            assert_eq!(payload.contains("\"email\":\"pii:v2:"), sealed, "{payload}");
            assert_eq!(
                payload.contains("\"phone\":\"pii:v2:bundled\""),
                sealed,
                "{payload}"
            );
            assert!(payload.contains(&format!("\"member_id\":\"{MEMBER}\"")));
        }
    }
    let opened = runtime
        .block_on(store.read_stream("Member-check", 1, 3))
        .expect("read");
    for (opened, given) in opened.iter().zip(&events) {
        let opened: serde_json::Value = serde_json::from_str(opened.payload.get()).expect("JSON");
        let given: serde_json::Value = serde_json::from_str(given.payload.get()).expect("JSON");
        assert_eq!(opened, given);
    }
}

/// Appends one batch of `size` per iteration to one growing stream: sealed, plain, raw.
fn append_group(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    size: usize,
    label: &str,
) {
    let store = runtime.block_on(protected(&dir.join(format!("sealed-{size}.db"))));
    let plain = runtime
        .block_on(SqliteStore::open(dir.join(format!("plain-{size}.db"))))
        .expect("open");
    let raw_path = dir.join(format!("raw-{size}.db"));
    drop(
        runtime
            .block_on(SqliteStore::open(&raw_path))
            .expect("open"),
    );
    let raw = raw_connection(&raw_path);
    check_append(runtime, &store, &plain);

    let stream_id = format!("Member-{MEMBER}");
    let mut group = c.benchmark_group("append_sealed");
    group.throughput(Throughput::Elements(size as u64));
    let next = Cell::new(0u64);
    for (name, sealed) in [("sealed", true), ("plain", false)] {
        let version = Cell::new(0u64);
        group.bench_function(format!("{name}/{label}"), |b| {
            b.to_async(runtime).iter_batched(
                || {
                    let first = next.get();
                    next.set(first + size as u64);
                    new_events(MEMBER, first, size)
                },
                |events| {
                    let expected = match version.get() {
                        0 => ExpectedVersion::NoStream,
                        version => ExpectedVersion::Exact(version),
                    };
                    let (store, plain, version, stream_id) = (&store, &plain, &version, &stream_id);
                    async move {
                        let outcome = if sealed {
                            store.append(stream_id, "Member", expected, events).await
                        } else {
                            plain.append(stream_id, "Member", expected, events).await
                        };
                        version.set(outcome.expect("append").stream_version);
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    let raw_version = Cell::new(0u64);
    group.bench_function(format!("raw/{label}"), |b| {
        b.iter_batched(
            || {
                let first = next.get();
                next.set(first + size as u64);
                new_events(MEMBER, first, size)
            },
            |events| {
                raw_version.set(raw_append(
                    &raw,
                    &stream_id,
                    "Member",
                    raw_version.get(),
                    &events,
                ))
            },
            BatchSize::SmallInput,
        );
    });
    // Diagnostic: the cipher alone, sealing each event's bundle (with a nonce drawn
    // per event; the store draws a batch's in one call).
    let cipher = BundleCipher::new(&DataKey::from_bytes([5; 32]));
    group.bench_function(format!("diagnostic/seal_bundles_only/{label}"), |b| {
        b.iter_batched(
            || bundle_inputs(&new_events(MEMBER, 0, size)),
            |inputs| {
                for (aad, plaintext) in &inputs {
                    black_box(cipher.seal(aad, plaintext).expect("seals"));
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn replay_group(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let store = runtime.block_on(protected(&dir.join("replay-sealed.db")));
    let plain = runtime
        .block_on(SqliteStore::open(dir.join("replay-plain.db")))
        .expect("open");
    let stream_id = Repository::<Member, SqliteStore>::stream_id(MEMBER);
    let events = new_events(MEMBER, 0, REPLAYED);
    assert_eq!(
        runtime.block_on(fill(&store, &stream_id, events.clone(), 500)),
        REPLAYED as u64
    );
    assert_eq!(
        runtime.block_on(fill(&plain, &stream_id, events, 500)),
        REPLAYED as u64
    );
    let sealed_members = Repository::<Member, Protected>::new(store.clone());
    let plain_members = Repository::<Member, SqliteStore>::new(plain.clone());

    // Both rebuild the same state, the last change's details.
    let last = domain::change(MEMBER, REPLAYED as u64 - 1);
    let sealed_state = runtime
        .block_on(sealed_members.load(MEMBER))
        .expect("load")
        .state;
    let plain_state = runtime
        .block_on(plain_members.load(MEMBER))
        .expect("load")
        .state;
    assert_eq!(sealed_state, plain_state);
    assert_eq!(sealed_state.changes, REPLAYED as u64);
    assert_eq!(sealed_state.email, last.email);
    assert_eq!(sealed_state.phone, last.phone);

    let mut group = c.benchmark_group("replay_sealed");
    group.throughput(Throughput::Elements(REPLAYED as u64));
    group.bench_function("sealed/repository_load", |b| {
        b.to_async(runtime)
            .iter(|| async { sealed_members.load(black_box(MEMBER)).await.expect("loads") });
    });
    group.bench_function("plain/repository_load", |b| {
        b.to_async(runtime)
            .iter(|| async { plain_members.load(black_box(MEMBER)).await.expect("loads") });
    });
    group.bench_function("sealed/read_stream", |b| {
        b.to_async(runtime).iter(|| async {
            store
                .read_stream(black_box(&stream_id), 1, usize::MAX)
                .await
                .expect("reads")
                .len()
        });
    });
    // Diagnostic: the cipher alone, opening the stream's 10,000 bundles as stored, with
    // the member's key.
    let stored = runtime
        .block_on(store.inner().read_stream(&stream_id, 1, usize::MAX))
        .expect("raw read");
    let KeyState::Active(key) = runtime
        .block_on(store.keys().data_key(&SubjectId::new(MEMBER).expect("id")))
        .expect("the key")
    else {
        panic!("the member has a key");
    };
    let cipher = BundleCipher::new(&key);
    let bundles: Vec<(Vec<u8>, String)> = stored
        .iter()
        .map(|event| {
            let (aad, payload) = binding(
                event.event_id,
                &event.name,
                event.schema_version,
                &event.payload,
            );
            (aad, payload["email"].as_str().expect("a bundle").to_owned())
        })
        .collect();
    group.bench_function("diagnostic/open_bundles_only", |b| {
        b.iter(|| {
            for (aad, text) in &bundles {
                black_box(cipher.open(aad, black_box(text)).expect("opens"));
            }
        });
    });
    group.bench_function("plain/read_stream", |b| {
        b.to_async(runtime).iter(|| async {
            plain
                .read_stream(black_box(&stream_id), 1, usize::MAX)
                .await
                .expect("reads")
                .len()
        });
    });
    group.finish();
}

fn sealed(c: &mut Criterion) {
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
    targets = sealed
}
criterion_main!(benches);
