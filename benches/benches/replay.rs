//! Aggregate replay: one 10,000-event order stream, stored as serialised events, decoded
//! and applied, by factum, by a hand-written serde_json baseline and by cqrs-es 0.5.
//!
//! Every path is checked once, before any timing, to rebuild the same final state from
//! the same events. Run with `cargo bench -p factum-benches --bench replay`; the figures
//! are recorded in `BENCHMARKS.md` at the workspace root.

#[path = "replay/cqrs.rs"]
mod cqrs;
#[path = "replay/raw.rs"]
mod raw;
#[path = "replay/stream.rs"]
mod stream;

use std::hint::black_box;
use std::time::Duration;

use cqrs_es::EventStore as _;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::prelude::*;
use factum::repository::{decode_record, replay};
use factum_example_orders::{Catalog, Order, OrderCommand, OrderEvent, Status};

use crate::cqrs::{CqrsCatalog, CqrsOrder, CqrsOrderEvent, MemoryRepository};
use crate::raw::Outcome;
use crate::stream::{EVENTS, Fixture, ORDER_ID};

/// The cqrs-es order's state, in the terms every path is compared in.
impl From<&CqrsOrder> for Outcome {
    fn from(order: &CqrsOrder) -> Self {
        Self {
            status: order.status.into(),
            customer_id: order.customer_id.clone(),
            currency: order.currency,
            lines: order.lines.values().cloned().collect(),
        }
    }
}

type CqrsStore = PersistedEventStore<MemoryRepository, CqrsOrder>;

/// Checks, once and untimed, that every path rebuilds the state the aggregate reached
/// while deciding, and that the cqrs-es domain decides exactly the events factum's did.
fn check(
    runtime: &tokio::runtime::Runtime,
    fixture: &Fixture,
    repository: &Repository<Order, MemoryStore>,
    stored: &[raw::Stored],
    cqrs_stores: &[&CqrsStore],
) {
    let expected = Outcome::from(&fixture.state);
    assert_eq!(expected.status, Status::Shipped);

    let mut state = Order::default();
    replay(&mut state, &fixture.records).expect("factum replays the stream");
    assert_eq!(Outcome::from(&state), expected, "factum/replay");

    let loaded = runtime
        .block_on(repository.load(ORDER_ID))
        .expect("factum loads the order");
    assert_eq!(loaded.version, EVENTS as u64);
    assert_eq!(
        Outcome::from(&loaded.state),
        expected,
        "factum/repository_load"
    );

    let mut state = raw::RawOrder::default();
    raw::replay::<raw::FromSlice>(&mut state, stored).expect("the raw baseline replays");
    assert_eq!(Outcome::from(&state), expected, "raw/serde_json_match");
    let mut state = raw::RawOrder::default();
    raw::replay::<raw::FromStr>(&mut state, stored).expect("the raw baseline replays");
    assert_eq!(
        Outcome::from(&state),
        expected,
        "raw/serde_json_match_from_str"
    );

    for store in cqrs_stores {
        let context = runtime
            .block_on(store.load_aggregate(ORDER_ID))
            .expect("cqrs-es loads the order");
        assert_eq!(context.current_sequence, EVENTS);
        assert_eq!(Outcome::from(&context.aggregate), expected, "cqrs-es");
    }

    // The cqrs-es domain is the same domain: fed the same commands, it decides the same
    // events.
    let catalog = CqrsCatalog(stream::prices().into_iter().collect());
    let mut aggregate = CqrsOrder::default();
    runtime.block_on(async {
        for (command, event) in fixture.commands.iter().zip(&fixture.events) {
            let sink = EventSink::default();
            cqrs_es::Aggregate::handle(&mut aggregate, command.clone(), &catalog, &sink)
                .await
                .expect("cqrs-es accepts the command");
            let decided: Vec<CqrsOrderEvent> = sink.collect().await;
            assert_eq!(decided, vec![CqrsOrderEvent::from(event.clone())]);
        }
    });
    assert_eq!(Outcome::from(&aggregate), expected, "cqrs-es handle");
    assert!(matches!(
        fixture.commands.last(),
        Some(OrderCommand::Ship(_))
    ));
}

fn replay_10k(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let fixture = stream::build(&runtime);
    let payload_bytes: usize = fixture.records.iter().map(|r| r.payload.get().len()).sum();
    eprintln!(
        "replay_10k stream: {} events, {} payload bytes, mix {:?}",
        fixture.records.len(),
        payload_bytes,
        fixture.mix()
    );

    let repository = Repository::<Order, MemoryStore>::with_services(
        fixture.store.clone(),
        Catalog::new(stream::prices()),
    );
    let stored = raw::stored(&fixture.records);
    let cqrs_store = CqrsStore::new_event_store(MemoryRepository::with_events(cqrs::serialized(
        ORDER_ID,
        &fixture.events,
        &fixture.records,
        true,
    )));
    let cqrs_store_bare = CqrsStore::new_event_store(MemoryRepository::with_events(
        cqrs::serialized(ORDER_ID, &fixture.events, &fixture.records, false),
    ));
    check(
        &runtime,
        &fixture,
        &repository,
        &stored,
        &[&cqrs_store, &cqrs_store_bare],
    );

    let mut group = c.benchmark_group("replay_10k");
    group.throughput(Throughput::Elements(EVENTS as u64));

    group.bench_function("factum/replay", |b| {
        b.iter(|| {
            let mut state = Order::default();
            replay(&mut state, black_box(&fixture.records)).expect("replays");
            state
        });
    });
    group.bench_function("factum/repository_load", |b| {
        b.to_async(&runtime)
            .iter(|| async { repository.load(black_box(ORDER_ID)).await.expect("loads") });
    });
    group.bench_function("raw/serde_json_match", |b| {
        b.iter(|| {
            let mut state = raw::RawOrder::default();
            raw::replay::<raw::FromSlice>(&mut state, black_box(&stored)).expect("replays");
            state
        });
    });
    group.bench_function("cqrs_es/persisted_event_store", |b| {
        b.to_async(&runtime).iter(|| async {
            cqrs_store
                .load_aggregate(black_box(ORDER_ID))
                .await
                .expect("loads")
        });
    });
    group.bench_function("cqrs_es/persisted_event_store_no_metadata", |b| {
        b.to_async(&runtime).iter(|| async {
            cqrs_store_bare
                .load_aggregate(black_box(ORDER_ID))
                .await
                .expect("loads")
        });
    });
    group.finish();

    // Not replays: where factum's time goes, and the baseline decoding like factum does.
    let mut group = c.benchmark_group("replay_10k_breakdown");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let stream_id = Repository::<Order, MemoryStore>::stream_id(ORDER_ID);
    group.bench_function("factum/store_read_stream", |b| {
        // Copying records out in pages of 1024, no decoding: what a replay would cost in
        // copies if `Repository::load` read through `read_stream` instead of lending
        // them with `for_each_in_stream`.
        b.to_async(&runtime).iter(|| async {
            let mut read = 0;
            loop {
                let page = fixture
                    .store
                    .read_stream(black_box(&stream_id), read as u64 + 1, 1024)
                    .await
                    .expect("reads");
                read += page.len();
                if page.len() < 1024 {
                    return read;
                }
            }
        });
    });
    group.bench_function("factum/decode_only", |b| {
        b.iter(|| {
            for record in black_box(&fixture.records) {
                black_box(decode_record::<OrderEvent>(record).expect("decodes"));
            }
        });
    });
    group.bench_function("raw/serde_json_match_from_str", |b| {
        b.iter(|| {
            let mut state = raw::RawOrder::default();
            raw::replay::<raw::FromStr>(&mut state, black_box(&stored)).expect("replays");
            state
        });
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = replay_10k
}
criterion_main!(benches);
