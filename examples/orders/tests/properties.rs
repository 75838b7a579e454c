//! Properties over random inputs: replaying stored events rebuilds exactly the state the
//! aggregate had while deciding, and every event survives encode → decode unchanged.

use factum::prelude::*;
use factum::repository::decode_record;
use factum_example_orders::*;
use proptest::prelude::*;

const SKUS: [&str; 4] = ["tea", "mug", "kettle", "teapot"]; // "teapot" is not for sale

fn catalog() -> Catalog {
    Catalog::new([("tea", 450), ("mug", 1200), ("kettle", 3900)])
}

fn sku() -> impl Strategy<Value = String> {
    prop::sample::select(&SKUS[..]).prop_map(str::to_owned)
}

fn requested() -> impl Strategy<Value = RequestedLine> {
    (sku(), 0u32..4).prop_map(|(sku, quantity)| RequestedLine { sku, quantity })
}

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just(Currency::Eur),
        Just(Currency::Usd),
        Just(Currency::Gbp)
    ]
}

/// Commands to one of three orders; many are refused by the invariants, which is part
/// of what is tested (a refusal must leave no trace).
fn command() -> impl Strategy<Value = OrderCommand> {
    let order = prop::sample::select(vec!["o-1", "o-2", "o-3"]).prop_map(str::to_owned);
    prop_oneof![
        3 => (order.clone(), prop::collection::vec(requested(), 0..4), currency()).prop_map(|(order_id, lines, currency)| {
            PlaceOrder { order_id, customer_id: "c".into(), lines, currency }.into()
        }),
        4 => (order.clone(), requested()).prop_map(|(order_id, line)| AddItem { order_id, line }.into()),
        2 => (order.clone(), sku()).prop_map(|(order_id, sku)| RemoveItem { order_id, sku }.into()),
        2 => order.clone().prop_map(|order_id| ConfirmOrder { order_id }.into()),
        1 => (order.clone(), "[A-Z]{2,6}").prop_map(|(order_id, carrier)| ShipOrder { order_id, carrier, tracking_code: "T-1".into() }.into()),
        1 => order.clone().prop_map(|order_id| DeliverOrder { order_id }.into()),
        1 => (order.clone(), ".{0,12}").prop_map(|(order_id, reason)| CancelOrder { order_id, reason }.into()),
        1 => (order, "\\PC{0,20}").prop_map(|(order_id, text)| AddNote { order_id, text }.into()),
    ]
}

fn line() -> impl Strategy<Value = Line> {
    ("\\PC{0,10}", any::<u32>(), any::<u64>()).prop_map(|(sku, quantity, unit_price)| Line {
        sku,
        quantity,
        unit_price,
    })
}

/// Any event of the set, with any field values serde can carry.
fn event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        (
            "\\PC{0,16}",
            prop::collection::vec(line(), 0..4),
            currency()
        )
            .prop_map(|(customer_id, lines, currency)| {
                OrderPlaced {
                    customer_id,
                    lines,
                    currency,
                }
                .into()
            }),
        line().prop_map(|line| ItemAdded {
            sku: line.sku,
            quantity: line.quantity,
            unit_price: line.unit_price
        }
        .into()),
        "\\PC{0,10}".prop_map(|sku| ItemRemoved { sku }.into()),
        any::<u64>().prop_map(|total| OrderConfirmed { total }.into()),
        ("\\PC{0,10}", "\\PC{0,10}").prop_map(|(carrier, tracking_code)| OrderShipped {
            carrier,
            tracking_code
        }
        .into()),
        Just(OrderDelivered {}.into()),
        "\\PC{0,30}".prop_map(|reason| OrderCancelled { reason }.into()),
        "\\PC{0,30}".prop_map(|text| OrderNoteAdded { text }.into()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replaying_stored_events_rebuilds_the_decided_state(commands in prop::collection::vec(command(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let store = MemoryStore::new();
            let orders = Repository::<Order, _>::with_services(store.clone(), catalog());
            let mut live = std::collections::BTreeMap::new();
            for command in commands {
                let id = command.aggregate_id();
                let before = store.len();
                match orders.execute(command).await {
                    Ok(executed) => {
                        prop_assert_eq!(store.len(), before + executed.events.len());
                        live.insert(id, (executed.state, executed.version));
                    }
                    Err(RepositoryError::Rejected(_)) => prop_assert_eq!(store.len(), before),
                    Err(other) => prop_assert!(false, "unexpected error: {}", other),
                }
            }
            for (id, (state, version)) in live {
                let loaded = orders.load(&id).await.unwrap();
                prop_assert_eq!(loaded.version, version);
                prop_assert_eq!(loaded.state, state);
            }
            // Every stored record decodes, and encodes back to the very same payload.
            for record in store.read_all(0, usize::MAX).await.unwrap() {
                let event = decode_record::<OrderEvent>(&record).unwrap();
                let encoded = event.encode().unwrap();
                prop_assert_eq!((encoded.name, encoded.schema_version), (record.name.as_str(), record.schema_version));
                prop_assert_eq!(encoded.payload.get(), record.payload.get());
            }
            Ok(())
        })?;
    }

    #[test]
    fn every_event_decodes_to_what_was_encoded(event in event()) {
        let encoded = event.encode().unwrap();
        prop_assert_eq!(encoded.name, event.event_name());
        prop_assert_eq!(encoded.schema_version, event.event_version());
        let decoded = OrderEvent::decode(encoded.name, encoded.schema_version, encoded.payload.get()).unwrap();
        prop_assert_eq!(decoded, event);
    }

    #[test]
    fn order_placed_v1_upcasts_like_its_from_impl(customer_id in "\\PC{0,16}", lines in prop::collection::vec(line(), 0..4)) {
        let old = OrderPlacedV1 { customer_id, lines };
        let payload = serde_json::value::to_raw_value(&old).unwrap();
        let decoded = OrderEvent::decode("OrderPlaced", 1, payload.get()).unwrap();
        prop_assert_eq!(decoded, OrderEvent::Placed(OrderPlaced::from(old)));
    }
}
