//! Tamper evidence on SQLite (issue 14): `TamperEvident::verify` over a log of
//! 1,000,000 events, and over 10,000 for the per-event cost; `verify_signed` over the
//! same logs with one signed checkpoint of the whole log.
//!
//! Each log is built once per run in a temporary directory, the fastest honest way: the
//! events of `examples/member-profile`'s shape (`personal/domain.rs`) appended through
//! `ProtectedStore<SqliteStore, SqliteKeyStore>` (so the payloads are stored sealed, as
//! an issue-14 store holds them), 1,000 events per append, one stream per member of
//! 1,000 events, with `Synchronous::Normal` (no `fsync` per commit; verification reads
//! the same rows either way). Every append hashes its events, as every factum store
//! does. Then one checkpoint is signed.
//!
//! `verify` reads the whole log once per iteration, so the 1M group runs 10 samples of
//! one iteration each (`SamplingMode::Flat`). Under `cargo test --benches` (criterion's
//! test mode, which runs each bench once) the large log holds 2,000 events instead, so
//! CI stays quick. Run with `cargo bench -p factum-benches --bench verify_sqlite`; the
//! figures are recorded in `BENCHMARKS.md` at the workspace root.

#[path = "personal/domain.rs"]
mod domain;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use factum::integrity::{SigningKey, TamperEvident};
use factum::personal::{MasterKey, ProtectedStore};
use factum::prelude::*;
use factum::sqlite::{SqliteKeyStore, SqliteStore, Synchronous};

use crate::domain::new_events;

/// Events per member stream, and per append.
const PER_MEMBER: usize = 1_000;

/// Whether criterion measures (`cargo bench` passes `--bench`) or runs each bench once
/// (`cargo test --benches`).
fn measuring() -> bool {
    std::env::args().any(|argument| argument == "--bench")
}

/// A SQLite store of `events` sealed events in streams of `PER_MEMBER`, with one signed
/// checkpoint of the whole log.
fn build(
    runtime: &tokio::runtime::Runtime,
    path: &Path,
    events: usize,
    key: &SigningKey,
) -> SqliteStore {
    let started = Instant::now();
    let store = runtime.block_on(async {
        let sqlite = SqliteStore::options()
            .synchronous(Synchronous::Normal)
            .open(path)
            .await
            .expect("open");
        let keys = SqliteKeyStore::in_store(&sqlite, MasterKey::from_bytes([7; 32]))
            .await
            .expect("the key store");
        let store = ProtectedStore::new(sqlite, keys, domain::catalog());
        for member in 0..events.div_ceil(PER_MEMBER) {
            let member_id = format!("m-{member:06}");
            let count = PER_MEMBER.min(events - member * PER_MEMBER);
            store
                .append(
                    &format!("Member-{member_id}"),
                    "Member",
                    ExpectedVersion::NoStream,
                    new_events(&member_id, 0, count),
                )
                .await
                .expect("append");
        }
        let checkpoint = store.checkpoint(key).await.expect("checkpoint");
        assert_eq!(checkpoint.head.tree_size, events as u64);
        store.inner().clone()
    });
    eprintln!(
        "built a log of {events} events in {:.1} s ({} bytes on disk)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(path).map_or(0, |file| file.len())
    );
    store
}

fn verify_group(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    events: usize,
    label: &str,
    large: bool,
) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let public = key.verifying_key();
    let store = build(runtime, &dir.join(format!("{label}.db")), events, &key);

    // Both find the log intact, every event read.
    let verification = runtime.block_on(store.verify()).expect("verify");
    assert!(verification.is_intact(), "{verification}");
    assert_eq!(verification.events, events as u64);
    assert_eq!(verification.streams, events.div_ceil(PER_MEMBER) as u64);
    let signed = runtime
        .block_on(store.verify_signed(&public))
        .expect("verify_signed");
    assert!(signed.is_intact(), "{signed}");
    assert_eq!(signed.events, events as u64);

    let mut group = c.benchmark_group(format!("verify_{label}"));
    group.throughput(Throughput::Elements(events as u64));
    if large {
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(45));
    }
    group.bench_function("verify", |b| {
        b.to_async(runtime)
            .iter(|| async { store.verify().await.expect("verify").events });
    });
    group.bench_function("verify_signed", |b| {
        b.to_async(runtime).iter(|| async {
            store
                .verify_signed(&public)
                .await
                .expect("verify_signed")
                .events
        });
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("a temporary directory");
    verify_group(c, &runtime, dir.path(), 10_000, "10k", false);
    if measuring() {
        verify_group(c, &runtime, dir.path(), 1_000_000, "1m", true);
    } else {
        verify_group(c, &runtime, dir.path(), 2_000, "2k_test_mode", true);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = verify
}
criterion_main!(benches);
