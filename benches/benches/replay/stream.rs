//! The benchmarked stream: 10,000 events of one order, produced by running the real
//! `Order` aggregate of the example through factum and stored in a `MemoryStore`.

use std::collections::BTreeMap;

use factum::prelude::*;
use factum_example_orders::{
    AddItem, AddNote, Catalog, ConfirmOrder, Currency, Order, OrderCommand, OrderEvent, PlaceOrder,
    RemoveItem, RequestedLine, ShipOrder,
};

/// Events in the stream.
pub const EVENTS: usize = 10_000;

/// The id of the benchmarked order.
pub const ORDER_ID: &str = "bench-0001";

/// How many products the catalogue sells.
const PRODUCTS: u64 = 40;

/// The stock-keeping unit of product `n`.
pub fn sku(n: u64) -> String {
    format!("SKU-{n:04}")
}

/// The catalogue's `(sku, unit price in cents)` pairs.
pub fn prices() -> Vec<(String, u64)> {
    (0..PRODUCTS).map(|n| (sku(n), 199 + 137 * n)).collect()
}

/// A small deterministic generator (xorshift64*), so every run replays the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The stream and everything derived from it.
pub struct Fixture {
    /// The commands that produced the stream, in order.
    pub commands: Vec<OrderCommand>,
    /// The events, as the aggregate produced them.
    pub events: Vec<OrderEvent>,
    /// The state after the last event, as the aggregate computed it while deciding.
    pub state: Order,
    /// A store holding exactly the stream.
    pub store: MemoryStore,
    /// The stream as the store recorded it.
    pub records: Vec<RecordedEvent>,
}

impl Fixture {
    /// How many events of each name the stream holds.
    pub fn mix(&self) -> BTreeMap<&str, usize> {
        let mut mix = BTreeMap::new();
        for record in &self.records {
            *mix.entry(record.name.as_str()).or_insert(0) += 1;
        }
        mix
    }
}

/// Recorded events as new events, to append the stream to another store: the same ids,
/// names, schema versions, payloads, timestamps and metadata.
#[allow(dead_code)] // The replay bench keeps the stream in memory.
pub fn to_new_events(records: &[RecordedEvent]) -> Vec<NewEvent> {
    records
        .iter()
        .map(|record| NewEvent {
            event_id: record.event_id,
            name: record.name.clone(),
            schema_version: record.schema_version,
            payload: record.payload.clone(),
            timestamp: record.timestamp,
            metadata: record.metadata.clone(),
            tags: Vec::new(),
        })
        .collect()
}

/// Builds the stream: an order placed with three lines, then a mix of about 62% added
/// items, 30% removed items and 8% notes, ending confirmed and shipped.
pub fn build(runtime: &tokio::runtime::Runtime) -> Fixture {
    let catalog = Catalog::new(prices());
    let mut state = Order::default();
    let mut commands = Vec::with_capacity(EVENTS);
    let mut events = Vec::with_capacity(EVENTS);
    let mut new_events = Vec::with_capacity(EVENTS);
    let mut run = |state: &mut Order, command: OrderCommand| {
        let ctx = CommandContext::new().actor(Actor::new("support_agent", "support-agent-7"));
        let metadata = ctx.event_metadata();
        let produced = <Order as Aggregate>::handle(state, command.clone(), &catalog, &ctx)
            .expect("the generated command is valid");
        assert_eq!(
            produced.len(),
            1,
            "every generated command records one event"
        );
        for event in produced {
            state.apply(&event);
            let encoded = event.encode().expect("events encode");
            new_events.push(NewEvent::new(
                encoded.name,
                encoded.schema_version,
                encoded.payload,
                metadata.clone(),
            ));
            events.push(event);
        }
        commands.push(command);
    };

    let order_id = ORDER_ID.to_owned();
    run(
        &mut state,
        PlaceOrder {
            order_id: order_id.clone(),
            customer_id: "customer-4711".to_owned(),
            lines: vec![
                RequestedLine {
                    sku: sku(1),
                    quantity: 2,
                },
                RequestedLine {
                    sku: sku(7),
                    quantity: 1,
                },
                RequestedLine {
                    sku: sku(12),
                    quantity: 3,
                },
            ],
            currency: Currency::Usd,
        }
        .into(),
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Every command records exactly one event (checked in `run`).
    for recorded in 1..EVENTS - 2 {
        let roll = rng.below(100);
        let command: OrderCommand = if roll < 8 {
            AddNote {
                order_id: order_id.clone(),
                text: format!("note {recorded}: the customer asked to deliver after 5 pm"),
            }
            .into()
        } else if roll < 38 && state.lines.len() > 2 {
            let index = rng.below(state.lines.len() as u64) as usize;
            let sku = state.lines.keys().nth(index).expect("in range").clone();
            RemoveItem {
                order_id: order_id.clone(),
                sku,
            }
            .into()
        } else {
            AddItem {
                order_id: order_id.clone(),
                line: RequestedLine {
                    sku: sku(rng.below(PRODUCTS)),
                    quantity: 1 + rng.below(4) as u32,
                },
            }
            .into()
        };
        run(&mut state, command);
    }
    run(
        &mut state,
        ConfirmOrder {
            order_id: order_id.clone(),
        }
        .into(),
    );
    run(
        &mut state,
        ShipOrder {
            order_id,
            carrier: "DHL".to_owned(),
            tracking_code: "JJD0003900078234".to_owned(),
        }
        .into(),
    );
    assert_eq!(events.len(), EVENTS);

    let store = MemoryStore::new();
    let stream_id = Repository::<Order, MemoryStore>::stream_id(ORDER_ID);
    let mut version = 0;
    for batch in new_events.chunks(500) {
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        };
        let outcome = runtime
            .block_on(store.append(&stream_id, Order::NAME, expected, batch.to_vec()))
            .expect("the append succeeds");
        version = outcome.stream_version;
    }
    let records = runtime
        .block_on(store.read_stream(&stream_id, 1, usize::MAX))
        .expect("the stream reads back");
    assert_eq!(records.len(), EVENTS);

    Fixture {
        commands,
        events,
        state,
        store,
        records,
    }
}
