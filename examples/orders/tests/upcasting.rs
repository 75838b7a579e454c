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
    let event = OrderEvent::decode("OrderPlaced", 1, &payload).unwrap();
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
    let event = OrderEvent::decode("ItemAdded", 1, &payload).unwrap();
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
    let error = OrderEvent::decode("OrderTeleported", 1, &raw(json!({}))).unwrap_err();
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
    let error = OrderEvent::decode("OrderPlaced", 3, &raw(json!({}))).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::VersionTooNew { newest: 2 }
    ));
    assert_eq!(error.version, 3);
}

#[test]
fn a_version_older_than_every_upcast_is_a_typed_error() {
    let error = OrderEvent::decode("OrderPlaced", 0, &raw(json!({}))).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::NoUpcastPath { oldest: 1 }
    ));
    let error = OrderEvent::decode("ItemAdded", 0, &raw(json!({}))).unwrap_err();
    assert!(matches!(
        error.kind,
        DecodeErrorKind::NoUpcastPath { oldest: 1 }
    ));
    let error = OrderEvent::decode("OrderConfirmed", 0, &raw(json!({}))).unwrap_err();
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
    let error = OrderEvent::decode("OrderPlaced", 2, &payload).unwrap_err();
    match &error.kind {
        DecodeErrorKind::Payload {
            version,
            path,
            message,
        } => {
            assert_eq!(*version, 2);
            assert_eq!(path, "lines[0].quantity");
            assert!(message.contains("invalid type"), "{message}");
        }
        other => panic!("expected a payload error, got {other:?}"),
    }
    // An old version's payload is checked against the old shape.
    let error = OrderEvent::decode("OrderPlaced", 1, &raw(json!({ "lines": [] }))).unwrap_err();
    assert!(
        matches!(&error.kind, DecodeErrorKind::Payload { version: 1, message, .. } if message.contains("customer_id")),
        "{error}"
    );
}

#[test]
fn a_refusing_json_upcast_is_a_typed_error_with_its_cause() {
    let error = OrderEvent::decode("ItemAdded", 1, &raw(json!({ "sku": "mug" }))).unwrap_err();
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
