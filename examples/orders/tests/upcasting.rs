//! Stored events of every version decode into today's shapes, and bad stored data gives
//! typed errors that name what failed.

use factum::error::DecodeErrorKind;
use factum::prelude::*;
use factum::repository::decode_record;
use factum_example_orders::*;
use serde_json::{Value, json, value::RawValue};

fn raw(value: Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&value).unwrap()
}

#[test]
fn order_placed_v1_is_read_as_v2_in_euros() {
    let payload = raw(json!({
        "customer_id": "c-1",
        "lines": [{ "sku": "tea", "quantity": 2, "unit_price": 450 }]
    }));
    let event = OrderEvent::decode("OrderPlaced", 1, payload.get()).unwrap();
    assert_eq!(
        event,
        OrderEvent::Placed(OrderPlaced {
            customer_id: "c-1".into(),
            lines: vec![Line {
                sku: "tea".into(),
                quantity: 2,
                unit_price: 450
            }],
            currency: Currency::Eur,
        })
    );
}

#[test]
fn retired_item_added_v1_is_read_through_its_json_upcast() {
    let payload = raw(json!({ "sku": "mug", "qty": 3, "unit_price": 1200 }));
    let event = OrderEvent::decode("ItemAdded", 1, payload.get()).unwrap();
    assert_eq!(
        event,
        OrderEvent::ItemAdded(ItemAdded {
            sku: "mug".into(),
            quantity: 3,
            unit_price: 1200
        })
    );
}

#[test]
fn versions_and_chain_ends_are_declared() {
    assert_eq!(<OrderPlaced as Event>::NAME, "OrderPlaced");
    assert_eq!(<OrderPlaced as Event>::VERSION, 2);
    assert_eq!(<OrderPlaced as Event>::OLDEST_VERSION, 1);
    assert_eq!(<OrderPlacedV1 as Event>::VERSION, 1);
    assert_eq!(<ItemAdded as Event>::OLDEST_VERSION, 1);
    assert_eq!(
        OrderEvent::EVENT_NAMES,
        [
            "OrderPlaced",
            "ItemAdded",
            "ItemRemoved",
            "OrderConfirmed",
            "OrderShipped",
            "OrderDelivered",
            "OrderCancelled",
            "OrderNoteAdded"
        ]
    );
}

#[test]
fn an_unknown_event_name_is_a_typed_error() {
    let error = OrderEvent::decode("OrderTeleported", 1, raw(json!({})).get()).unwrap_err();
    assert_eq!(error.event, "OrderTeleported");
    assert!(matches!(
        error.kind,
        DecodeErrorKind::UnknownEvent { set: "OrderEvent" }
    ));
    assert_eq!(
        factum::error::Report(&error).to_string(),
        "cannot decode event `OrderTeleported` version 1: `OrderEvent` has no event of this name"
    );
}

#[test]
fn a_version_newer_than_the_code_is_a_typed_error() {
    let error = OrderEvent::decode("OrderPlaced", 3, raw(json!({})).get()).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::VersionTooNew { newest: 2 }
    ));
    assert_eq!(error.schema_version, 3);
}

#[test]
fn a_version_older_than_every_upcast_is_a_typed_error() {
    let error = OrderEvent::decode("OrderPlaced", 0, raw(json!({})).get()).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::NoUpcastPath { oldest: 1 }
    ));
    let error = OrderEvent::decode("ItemAdded", 0, raw(json!({})).get()).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::NoUpcastPath { oldest: 1 }
    ));
    let error = OrderEvent::decode("OrderConfirmed", 0, raw(json!({})).get()).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::NoUpcastPath { oldest: 1 }
    ));
}

#[test]
fn a_mismatching_payload_names_the_path_of_the_bad_field() {
    let payload = raw(json!({
        "customer_id": "c-1",
        "lines": [{ "sku": "tea", "quantity": "two", "unit_price": 450 }],
        "currency": "Eur"
    }));
    let error = OrderEvent::decode("OrderPlaced", 2, payload.get()).unwrap_err();
    match &error.kind {
        DecodeErrorKind::Payload {
            version,
            path,
            source,
        } => {
            assert_eq!(*version, 2);
            assert_eq!(path, "lines[0].quantity");
            assert!(source.to_string().contains("invalid type"), "{source}");
        }
        other => panic!("expected a payload error, got {other:?}"),
    }
    // An old version's payload is checked against the old shape.
    let error =
        OrderEvent::decode("OrderPlaced", 1, raw(json!({ "lines": [] })).get()).unwrap_err();
    assert!(
        matches!(&error.kind, DecodeErrorKind::Payload { version: 1, source, .. } if source.to_string().contains("customer_id")),
        "{error}"
    );
}

#[test]
fn a_refusing_json_upcast_is_a_typed_error_with_its_cause() {
    let error = OrderEvent::decode("ItemAdded", 1, raw(json!({ "sku": "mug" })).get()).unwrap_err();
    match &error.kind {
        DecodeErrorKind::Upcast { from, to, source } => {
            assert_eq!((*from, *to), (1, 2));
            assert_eq!(source.to_string(), "cannot upcast: no field `qty`");
        }
        other => panic!("expected an upcast error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_stored_event_names_stream_version_and_event_and_spares_the_rest() {
    let store = MemoryStore::new();
    let stream = Repository::<Order, MemoryStore>::stream_id("o-1");
    let good = NewEvent::new(
        "OrderPlaced",
        2,
        raw(json!({ "customer_id": "c", "lines": [], "currency": "Eur" })),
        Metadata::default(),
    );
    let bad = NewEvent::new(
        "OrderConfirmed",
        1,
        raw(json!({ "total": -5 })),
        Metadata::default(),
    );
    store
        .append(&stream, "Order", ExpectedVersion::NoStream, vec![good, bad])
        .await
        .unwrap();
    let other = Repository::<Order, MemoryStore>::stream_id("o-2");
    store
        .append(
            &other,
            "Order",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "OrderPlaced",
                1,
                raw(json!({ "customer_id": "d", "lines": [] })),
                Metadata::default(),
            )],
        )
        .await
        .unwrap();

    let orders = Repository::<Order, _>::with_services(store.clone(), Catalog::default());
    let error = orders.load("o-1").await.unwrap_err();
    let RepositoryError::Decode(error) = &error else {
        panic!("expected a decode error, got {error:?}");
    };
    assert_eq!(error.stream_id, "Order-o-1");
    assert_eq!(error.stream_version, 2);
    assert_eq!(error.source.event, "OrderConfirmed");
    assert!(
        factum::error::Report(error)
            .to_string()
            .starts_with("stream `Order-o-1` version 2 (position 2): cannot decode event `OrderConfirmed` version 1: payload does not match version 1 at `total`"),
        "{error}"
    );
    // Nothing was lost, and the other stream still loads.
    assert_eq!(store.len(), 3);
    assert_eq!(orders.load("o-2").await.unwrap().state.status, Status::Open);
    let records = store.read_stream(&stream, 1, 1).await.unwrap();
    assert!(decode_record::<OrderEvent>(&records[0]).is_ok());
}

/// The store as the demo leaves it after its first section: order A-1001 as an older
/// release wrote it (`OrderPlaced` v1, the retired `ItemAdded` v1), confirmed by today's
/// code; and one event of a stream type the order domain does not own.
async fn legacy_history() -> MemoryStore {
    let store = MemoryStore::new();
    factum_example_orders::demo::import_legacy_order(&store)
        .await
        .unwrap();
    let orders = Repository::<Order, _>::with_services(store.clone(), Catalog::default());
    orders
        .execute(ConfirmOrder {
            order_id: "A-1001".into(),
        })
        .await
        .unwrap();
    store
        .append(
            "Invoice-9",
            "Invoice",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "InvoiceSent",
                1,
                raw(json!({ "to": "c-1" })),
                Metadata::default(),
            )],
        )
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn delivered_events_are_in_their_newest_version_and_keep_the_stored_one() {
    let store = legacy_history().await;
    let stored = store.read_all(0, 100).await.unwrap();
    let upcaster = factum::upcast::Upcaster::new().aggregate::<Order>();
    assert!(upcaster.knows("Order") && !upcaster.knows("Invoice"));
    let delivered: Vec<RecordedEvent> = stored
        .iter()
        .map(|event| upcaster.upcast(event.clone()).unwrap())
        .collect();

    let versions: Vec<_> = delivered
        .iter()
        .map(|event| {
            (
                event.name.as_str(),
                event.schema_version,
                event.stored_schema_version,
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("OrderPlaced", 2, Some(1)),
            ("ItemAdded", 2, Some(1)),
            ("OrderConfirmed", 1, None),
            ("InvoiceSent", 1, None),
        ]
    );
    // The payload is what today's type writes for the upcast event.
    let payload: Value = serde_json::from_str(delivered[0].payload.get()).unwrap();
    assert_eq!(
        payload,
        json!({
            "customer_id": "customer-1",
            "lines": [{ "sku": "tea", "quantity": 3, "unit_price": 400 }],
            "currency": "Eur"
        })
    );
    let payload: Value = serde_json::from_str(delivered[1].payload.get()).unwrap();
    assert_eq!(
        payload,
        json!({ "sku": "mug", "quantity": 2, "unit_price": 1100 })
    );
    // Everything else of the envelope is as stored; events already newest (and another
    // domain's) are delivered byte for byte.
    for (stored, delivered) in stored.iter().zip(&delivered) {
        assert_eq!(
            (
                stored.event_id,
                &stored.stream_id,
                stored.position,
                &stored.metadata
            ),
            (
                delivered.event_id,
                &delivered.stream_id,
                delivered.position,
                &delivered.metadata
            )
        );
        if delivered.stored_schema_version.is_none() {
            assert_eq!(stored, delivered);
        }
    }
    // The stored version is in the JSON only when the event was upcast.
    let json: Vec<Value> = delivered
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect();
    assert_eq!(json[1]["stored_schema_version"], 1);
    assert!(json[2].get("stored_schema_version").is_none());
    // Upcasting again changes nothing: the version on disk is kept.
    assert_eq!(upcaster.upcast(delivered[1].clone()).unwrap(), delivered[1]);

    // What a consumer folds from the delivered events is what the aggregate loads.
    let mut order = Order::default();
    for event in delivered
        .iter()
        .filter(|event| event.stream_type == "Order")
    {
        order.apply(
            &OrderEvent::decode(&event.name, event.schema_version, event.payload.get()).unwrap(),
        );
    }
    let loaded = Repository::<Order, _>::with_services(store, Catalog::default())
        .load("A-1001")
        .await
        .unwrap();
    assert_eq!(order.lines, loaded.state.lines);
    assert_eq!(order.lines.len(), 2);

    // A CloudEvent of an upcast event carries the stored version, and reads back with it.
    let mapping = factum::cloudevents::CloudEvents::new("/orders", "shop").unwrap();
    let text = mapping.to_structured(&delivered[1]).unwrap();
    let cloud: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            cloud["eventversion"].clone(),
            cloud["storedversion"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(
        mapping
            .from_structured(&text)
            .unwrap()
            .stored_schema_version,
        Some(1)
    );
    let binary = mapping.to_binary(&delivered[1]).unwrap();
    let header = |name: &str| {
        binary
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let read = factum::cloudevents::CloudEvents::recorded_from_binary(
        header,
        binary.data.get().as_bytes(),
    )
    .unwrap();
    assert_eq!(read, delivered[1]);
}

#[tokio::test]
async fn an_event_that_cannot_be_upcast_is_an_error_naming_it() {
    let store = MemoryStore::new();
    store
        .append(
            "Order-o-3",
            "Order",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "ItemAdded",
                1,
                raw(json!({ "sku": "mug", "unit_price": 1 })),
                Metadata::default(),
            )],
        )
        .await
        .unwrap();
    let stored = store.read_all(0, 10).await.unwrap().remove(0);
    let upcaster = factum::upcast::Upcaster::new().aggregate::<Order>();
    let error = upcaster.upcast(stored.clone()).unwrap_err();
    assert_eq!(
        (
            error.stream_id.as_str(),
            error.stream_version,
            error.position,
            error.event_id
        ),
        ("Order-o-3", 1, stored.position, stored.event_id)
    );
    let report = factum::error::Report(&error).to_string();
    assert!(
        report.starts_with("stream `Order-o-3` version 1 (position 1, event ")
            && report.contains("ItemAdded")
            && report.contains("no field `qty`"),
        "{report}"
    );
}

#[tokio::test]
async fn an_upcast_export_carries_the_newest_versions_and_imports_as_them() {
    let store = legacy_history().await;
    let mapping = factum::cloudevents::CloudEvents::new("/orders", "shop").unwrap();
    let upcaster = factum::upcast::Upcaster::new().aggregate::<Order>();
    let mut file = Vec::new();
    let written = mapping
        .export_jsonl_upcast(&store, 0, &upcaster, &mut file)
        .await
        .unwrap();
    assert_eq!(written, 4);
    let lines: Vec<Value> = String::from_utf8(file.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let versions: Vec<_> = lines
        .iter()
        .map(|line| {
            (
                line["type"].as_str().unwrap().to_owned(),
                line["eventversion"].clone(),
                line.get("storedversion").cloned(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (
                "shop.Order.OrderPlaced".to_owned(),
                json!(2),
                Some(json!(1))
            ),
            ("shop.Order.ItemAdded".to_owned(), json!(2), Some(json!(1))),
            ("shop.Order.OrderConfirmed".to_owned(), json!(1), None),
            ("shop.Invoice.InvoiceSent".to_owned(), json!(1), None),
        ]
    );
    assert_eq!(lines[1]["data"]["quantity"], 2);

    // The plain export keeps what is on disk.
    let mut plain = Vec::new();
    mapping.export_jsonl(&store, 0, &mut plain).await.unwrap();
    let first: Value =
        serde_json::from_str(String::from_utf8(plain).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["eventversion"].clone(), first.get("storedversion")),
        (json!(1), None)
    );

    // Imported, the upcast export is a store of today's versions the aggregate reads alike.
    let copy = MemoryStore::new();
    mapping.import_jsonl(&copy, file.as_slice()).await.unwrap();
    let imported = copy.read_all(0, 10).await.unwrap();
    assert_eq!(
        imported
            .iter()
            .map(|event| event.schema_version)
            .collect::<Vec<_>>(),
        [2, 2, 1, 1]
    );
    let original = Repository::<Order, _>::with_services(store, Catalog::default())
        .load("A-1001")
        .await
        .unwrap();
    let copied = Repository::<Order, _>::with_services(copy, Catalog::default())
        .load("A-1001")
        .await
        .unwrap();
    assert_eq!(copied.state.lines, original.state.lines);
    assert_eq!(copied.state.status, original.state.status);
}
