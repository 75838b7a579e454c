//! Snapshots shorten loads without changing what is loaded; snapshots of another schema
//! are ignored and replaced; time travel loads the order as it was.

use chrono::{TimeZone, Utc};
use factum::envelope::Snapshot;
use factum::prelude::*;
use factum::repository::SnapshotPolicy;
use factum_example_orders::*;

type Orders = Repository<Order, MemoryStore>;

fn orders(store: &MemoryStore) -> Orders {
    Orders::with_services(store.clone(), Catalog::new([("tea", 450), ("mug", 1200)]))
        .with_snapshots(SnapshotPolicy::every(3))
}

async fn place_and_add_items(orders: &Orders, items: u32) {
    orders
        .execute(PlaceOrder {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            lines: vec![RequestedLine {
                sku: "tea".into(),
                quantity: 1,
            }],
            currency: Currency::Eur,
        })
        .await
        .unwrap();
    for _ in 0..items {
        orders
            .execute(AddItem {
                order_id: "o-1".into(),
                line: RequestedLine {
                    sku: "mug".into(),
                    quantity: 1,
                },
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn snapshots_are_taken_by_the_policy_and_change_nothing_that_is_loaded() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    place_and_add_items(&orders, 7).await; // versions 1..=8
    let snapshot = store
        .load_snapshot("Order-o-1")
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.schema_version, 1);
    assert_eq!(
        snapshot.stream_version, 6,
        "every 3 events: at 3, then at 6"
    );

    let with_snapshot = orders.load("o-1").await.unwrap();
    let without = Orders::with_services(store.clone(), Catalog::default())
        .load("o-1")
        .await
        .unwrap();
    assert_eq!(with_snapshot, without);
    assert_eq!(with_snapshot.version, 8);
    assert_eq!(with_snapshot.state.lines["mug"].quantity, 7);
}

#[tokio::test]
async fn a_load_starts_from_the_snapshot() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    place_and_add_items(&orders, 2).await; // versions 1..=3, snapshot at 3
    // A doctored snapshot proves the load reads it instead of replaying events 1..=3.
    let mut doctored = orders.load("o-1").await.unwrap().state;
    doctored.customer_id = "from-the-snapshot".into();
    store
        .save_snapshot(Snapshot {
            stream_id: "Order-o-1".into(),
            stream_version: 3,
            schema_version: 1,
            state: serde_json::value::to_raw_value(&doctored).unwrap(),
            taken_at: factum::envelope::now(),
        })
        .await
        .unwrap();
    let loaded = orders.load("o-1").await.unwrap();
    assert_eq!(loaded.state.customer_id, "from-the-snapshot");
    assert_eq!(loaded.version, 3);
}

#[tokio::test]
async fn a_snapshot_of_another_schema_is_ignored_and_replaced() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    place_and_add_items(&orders, 3).await; // versions 1..=4
    for (schema_version, state) in [
        (0, r#"{"status":"Open","totally":"different shape"}"#),
        (1, r#"{"not":"an order"}"#),
    ] {
        store
            .save_snapshot(Snapshot {
                stream_id: "Order-o-1".into(),
                stream_version: 4,
                schema_version,
                state: serde_json::value::RawValue::from_string(state.into()).unwrap(),
                taken_at: factum::envelope::now(),
            })
            .await
            .unwrap();
        let loaded = orders.load("o-1").await.unwrap();
        assert_eq!(loaded.version, 4);
        assert_eq!(loaded.state.customer_id, "c-1", "rebuilt from events");
        assert_eq!(loaded.state.lines["mug"].quantity, 3);
        let fresh = store.load_snapshot("Order-o-1").await.unwrap().unwrap();
        assert_eq!(
            (fresh.schema_version, fresh.stream_version),
            (1, 4),
            "a fresh snapshot replaced it"
        );
        let restored: Order = serde_json::from_str(fresh.state.get()).unwrap();
        assert_eq!(restored, loaded.state);
    }
}

#[tokio::test]
async fn time_travel_loads_the_order_as_it_was_at_a_version() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    place_and_add_items(&orders, 7).await;
    orders
        .execute(ConfirmOrder {
            order_id: "o-1".into(),
        })
        .await
        .unwrap(); // version 9
    for version in [1u64, 2, 5, 6, 7, 8] {
        let then = orders.load_at_version("o-1", version).await.unwrap();
        assert_eq!(then.version, version);
        assert_eq!(then.state.status, Status::Open);
        let mugs = then.state.lines.get("mug").map_or(0, |line| line.quantity);
        assert_eq!(u64::from(mugs), version - 1, "at version {version}");
    }
    assert_eq!(
        orders.load_at_version("o-1", 9).await.unwrap().state.status,
        Status::Confirmed
    );
    assert_eq!(
        orders.load_at_version("o-1", 50).await.unwrap().version,
        9,
        "past the end: the last version"
    );
    assert_eq!(
        orders.load_at_version("o-1", 0).await.unwrap(),
        Loaded {
            state: Order::default(),
            version: 0
        }
    );
}

#[tokio::test]
async fn time_travel_loads_the_order_as_it_was_at_a_moment() {
    let store = MemoryStore::new();
    let day = |d: u32| Utc.with_ymd_and_hms(2025, 3, d, 12, 0, 0).single().unwrap();
    let placed = OrderEvent::from(OrderPlaced {
        customer_id: "c-1".into(),
        lines: vec![Line {
            sku: "tea".into(),
            quantity: 1,
            unit_price: 450,
        }],
        currency: Currency::Eur,
    });
    let confirmed = OrderEvent::from(OrderConfirmed { total: 450 });
    let shipped = OrderEvent::from(OrderShipped {
        carrier: "DHL".into(),
        tracking_code: "1".into(),
    });
    let events = [(placed, day(1)), (confirmed, day(2)), (shipped, day(5))]
        .into_iter()
        .map(|(event, at)| {
            let encoded = event.encode().unwrap();
            let mut new = NewEvent::new(
                encoded.name,
                encoded.schema_version,
                encoded.payload,
                Metadata::default(),
            );
            new.timestamp = at;
            new
        })
        .collect();
    store
        .append("Order-o-1", "Order", ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    let orders = orders(&store);

    let status_on = |d: u32| {
        let orders = &orders;
        async move {
            let then = orders
                .load_as_of("o-1", day(d) + chrono::TimeDelta::hours(1))
                .await
                .unwrap();
            (then.state.status, then.version)
        }
    };
    assert_eq!(status_on(1).await, (Status::Open, 1));
    assert_eq!(status_on(3).await, (Status::Confirmed, 2));
    assert_eq!(status_on(9).await, (Status::Shipped, 3));
    let before = orders
        .load_as_of("o-1", day(1) - chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(before.version, 0);
    let exactly = orders.load_as_of("o-1", day(2)).await.unwrap();
    assert_eq!(
        exactly.version, 2,
        "an event recorded exactly at the moment is included"
    );
}
