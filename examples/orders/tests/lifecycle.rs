//! The order's invariants, as given / when / then cases.

use factum::testing::AggregateFixture;
use factum_example_orders::*;

fn catalog() -> Catalog {
    Catalog::new([("tea", 450), ("mug", 1200)])
}

fn fixture() -> AggregateFixture<Order> {
    AggregateFixture::with_services(catalog())
}

fn requested(sku: &str, quantity: u32) -> RequestedLine {
    RequestedLine {
        sku: sku.into(),
        quantity,
    }
}

fn priced(sku: &str, quantity: u32, unit_price: Cents) -> Line {
    Line {
        sku: sku.into(),
        quantity,
        unit_price,
    }
}

fn placed() -> OrderPlaced {
    OrderPlaced {
        customer_id: "c-1".into(),
        lines: vec![priced("tea", 2, 450)],
        currency: Currency::Eur,
    }
}

fn id() -> String {
    "o-1".into()
}

#[test]
fn placing_prices_lines_from_the_catalog_and_merges_repeated_products() {
    fixture()
        .when(PlaceOrder {
            order_id: id(),
            customer_id: "c-1".into(),
            lines: vec![
                requested("tea", 1),
                requested("mug", 1),
                requested("tea", 1),
            ],
            currency: Currency::Usd,
        })
        .then_expect_events([OrderPlaced {
            customer_id: "c-1".into(),
            lines: vec![priced("tea", 2, 450), priced("mug", 1, 1200)],
            currency: Currency::Usd,
        }]);
}

#[test]
fn an_order_is_placed_once() {
    fixture()
        .given([placed()])
        .when(PlaceOrder {
            order_id: id(),
            customer_id: "c-1".into(),
            lines: vec![requested("tea", 1)],
            currency: Currency::Eur,
        })
        .then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn an_order_needs_lines_known_products_and_positive_quantities() {
    let place = |lines| PlaceOrder {
        order_id: id(),
        customer_id: "c-1".into(),
        lines,
        currency: Currency::Eur,
    };
    fixture()
        .when(place(vec![]))
        .then_expect_error(OrderError::NoLines);
    fixture()
        .when(place(vec![requested("teapot", 1)]))
        .then_expect_error(OrderError::UnknownProduct("teapot".into()));
    fixture()
        .when(place(vec![requested("tea", 0)]))
        .then_expect_error(OrderError::ZeroQuantity("tea".into()));
}

#[test]
fn items_are_added_and_removed_while_the_order_is_open() {
    let state = fixture()
        .given([placed()])
        .when(AddItem {
            order_id: id(),
            line: requested("mug", 3),
        })
        .then_expect_events([ItemAdded {
            sku: "mug".into(),
            quantity: 3,
            unit_price: 1200,
        }]);
    assert_eq!(state.total(), 2 * 450 + 3 * 1200);

    let state = fixture()
        .given([placed()])
        .when(RemoveItem {
            order_id: id(),
            sku: "tea".into(),
        })
        .then_expect_events([ItemRemoved { sku: "tea".into() }]);
    assert!(state.lines.is_empty());

    fixture()
        .given([placed()])
        .when(RemoveItem {
            order_id: id(),
            sku: "mug".into(),
        })
        .then_expect_error(OrderError::NoSuchLine("mug".into()));
}

#[test]
fn a_confirmed_order_cannot_change_its_lines() {
    fixture()
        .given((placed(), OrderConfirmed { total: 900 }))
        .when(AddItem {
            order_id: id(),
            line: requested("mug", 1),
        })
        .then_expect_error(OrderError::NotOpen(Status::Confirmed));
}

#[test]
fn an_emptied_order_cannot_be_confirmed() {
    fixture()
        .given((placed(), ItemRemoved { sku: "tea".into() }))
        .when(ConfirmOrder { order_id: id() })
        .then_expect_error(OrderError::NoLines);
}

#[test]
fn confirming_records_the_total() {
    fixture()
        .given([placed()])
        .when(ConfirmOrder { order_id: id() })
        .then_expect_events([OrderConfirmed { total: 900 }]);
}

#[test]
fn shipping_needs_a_confirmed_order_and_delivery_a_shipped_one() {
    let ship = || ShipOrder {
        order_id: id(),
        carrier: "DHL".into(),
        tracking_code: "JD0001".into(),
    };
    fixture()
        .given([placed()])
        .when(ship())
        .then_expect_error(OrderError::WrongStatus {
            action: "ship",
            status: Status::Open,
        });
    fixture()
        .given((placed(), OrderConfirmed { total: 900 }))
        .when(ship())
        .then_expect_events([OrderShipped {
            carrier: "DHL".into(),
            tracking_code: "JD0001".into(),
        }]);
    fixture()
        .given((placed(), OrderConfirmed { total: 900 }))
        .when(DeliverOrder { order_id: id() })
        .then_expect_error(OrderError::WrongStatus {
            action: "deliver",
            status: Status::Confirmed,
        });
}

#[test]
fn cancelling_is_possible_until_shipment_and_idempotent() {
    let cancel = || CancelOrder {
        order_id: id(),
        reason: "late".into(),
    };
    fixture()
        .given((placed(), OrderConfirmed { total: 900 }))
        .when(cancel())
        .then_expect_events([OrderCancelled {
            reason: "late".into(),
        }]);
    fixture()
        .given((placed(), OrderCancelled { reason: "x".into() }))
        .when(cancel())
        .then_expect_no_events();
    fixture()
        .given((
            placed(),
            OrderConfirmed { total: 900 },
            OrderShipped {
                carrier: "DHL".into(),
                tracking_code: "JD0001".into(),
            },
        ))
        .when(cancel())
        .then_expect_error(OrderError::WrongStatus {
            action: "cancel",
            status: Status::Shipped,
        });
}

#[test]
fn commands_to_an_order_never_placed_are_refused() {
    fixture()
        .when(ConfirmOrder { order_id: id() })
        .then_expect_error(OrderError::NotPlaced);
    fixture()
        .when(AddNote {
            order_id: id(),
            text: "hello".into(),
        })
        .then_expect_error(OrderError::NotPlaced);
}

#[test]
fn a_note_changes_no_state() {
    let before = fixture()
        .given([placed()])
        .when(ConfirmOrder { order_id: id() });
    let noted = fixture()
        .given((
            placed(),
            OrderNoteAdded {
                text: "call first".into(),
            },
        ))
        .when(ConfirmOrder { order_id: id() });
    assert_eq!(
        before.then_expect_events([OrderConfirmed { total: 900 }]),
        noted.then_expect_events([OrderConfirmed { total: 900 }])
    );
}

#[test]
#[should_panic(expected = "the command recorded other events than expected")]
fn the_fixture_fails_with_a_diff_when_events_differ() {
    fixture()
        .given([placed()])
        .when(ConfirmOrder { order_id: id() })
        .then_expect_events([OrderConfirmed { total: 1 }]);
}

#[test]
#[should_panic(expected = "expected the command to be rejected")]
fn the_fixture_fails_when_an_expected_rejection_is_accepted() {
    fixture()
        .given([placed()])
        .when(ConfirmOrder { order_id: id() })
        .then_expect_error(OrderError::NoLines);
}
