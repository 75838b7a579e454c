//! The order fulfilment saga on PostgreSQL — the store and the process manager's state
//! both in the database a team grows into: a shipped order, and an unshippable one whose
//! payment is refunded, stock released and order cancelled, in that order.
//!
//! Run with `cargo test -p factum-example-orders --features postgres --test
//! fulfilment_postgres`; needs a server: `eval "$(scripts/postgres.sh start)"`.

use std::time::Duration;

use factum::postgres::{PostgresReadModel, PostgresStore};
use factum::prelude::*;
use factum::process::{ProcessRunner, ProcessStates, ProcessStatus};
use factum::projection::{ReadModel, Target};
use factum_example_orders::fulfilment::{
    Bank, Carrier, FulfilmentState, Inventory, OrderFulfilment, ReceiveStock, Stage,
};
use factum_example_orders::{
    Catalog, ConfirmOrder, Currency, Order, PlaceOrder, RequestedLine, Status,
};

const SCHEMA: &str = "t_orders_fulfilment";
const WAREHOUSE: &str = "main";

/// The server's connection string; without one the test fails, never passes.
fn url() -> String {
    std::env::var("FACTUM_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .expect(
            "FACTUM_POSTGRES_URL is not set: start a throwaway server with \
             `eval \"$(scripts/postgres.sh start)\"`",
        )
}

/// An empty store in its own schema, the manager's state reset, 10 widgets in stock.
async fn shop() -> (PostgresStore, PostgresReadModel) {
    let read_models = PostgresReadModel::connect(&url()).await.unwrap();
    read_models
        .client()
        .await
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await
        .unwrap();
    read_models
        .reset(Target {
            name: "order_fulfilment",
            version: 0,
        })
        .await
        .unwrap();
    let store = PostgresStore::builder(url())
        .schema(SCHEMA)
        .connect()
        .await
        .unwrap();
    Repository::<Inventory, _>::new(store.clone())
        .execute(ReceiveStock {
            warehouse_id: WAREHOUSE.into(),
            sku: "widget".into(),
            quantity: 10,
        })
        .await
        .unwrap();
    (store, read_models)
}

async fn place_and_confirm(store: &PostgresStore, order_id: &str, customer_id: &str) {
    let orders =
        Repository::<Order, _>::with_services(store.clone(), Catalog::new([("widget", 250)]));
    orders
        .execute(PlaceOrder {
            order_id: order_id.into(),
            customer_id: customer_id.into(),
            lines: vec![RequestedLine {
                sku: "widget".into(),
                quantity: 2,
            }],
            currency: Currency::Eur,
        })
        .await
        .unwrap();
    orders
        .execute(ConfirmOrder {
            order_id: order_id.into(),
        })
        .await
        .unwrap();
}

async fn order_status(store: &PostgresStore, order_id: &str) -> Status {
    Repository::<Order, _>::with_services(store.clone(), Catalog::default())
        .load(order_id)
        .await
        .unwrap()
        .state
        .status
}

async fn flow_names(store: &PostgresStore, order_id: &str) -> Vec<String> {
    store
        .read_all(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| {
            event.stream_id.ends_with(&format!("-{order_id}"))
                || event
                    .payload
                    .get()
                    .contains(&format!("\"order_id\":\"{order_id}\""))
        })
        .map(|event| event.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fulfilment_saga_runs_on_postgres() {
    let (store, read_models) = shop().await;
    place_and_confirm(&store, "o-pg-1", "alice").await;
    place_and_confirm(&store, "o-pg-2", "dave").await;

    let manager = OrderFulfilment::new(
        store.clone(),
        WAREHOUSE,
        Bank::new(),
        Carrier::new("ParcelCo").refuse("dave"),
    );
    let mut handle = ProcessRunner::new(store.clone())
        .idle_wait(Duration::from_millis(50))
        .spawn(manager, read_models.clone());
    let shipped = handle
        .wait_until_final("o-pg-1", Duration::from_secs(60))
        .await
        .unwrap();
    let refused = handle
        .wait_until_final("o-pg-2", Duration::from_secs(60))
        .await
        .unwrap();
    handle.stop().await.unwrap();

    assert_eq!(shipped.status, ProcessStatus::Completed);
    assert_eq!(shipped.state.stage, Stage::Shipped);
    assert_eq!(order_status(&store, "o-pg-1").await, Status::Shipped);
    assert_eq!(
        flow_names(&store, "o-pg-1").await,
        [
            "OrderPlaced",
            "OrderConfirmed",
            "InventoryReserved",
            "PaymentTaken",
            "ShipmentCreated",
            "OrderShipped"
        ]
    );

    assert_eq!(refused.status, ProcessStatus::Compensated);
    assert_eq!(order_status(&store, "o-pg-2").await, Status::Cancelled);
    assert_eq!(
        flow_names(&store, "o-pg-2").await,
        [
            "OrderPlaced",
            "OrderConfirmed",
            "InventoryReserved",
            "PaymentTaken",
            "PaymentRefunded",
            "InventoryReleased",
            "OrderCancelled"
        ]
    );
    let stock = Repository::<Inventory, _>::new(store.clone())
        .load(WAREHOUSE)
        .await
        .unwrap()
        .state;
    assert_eq!(
        stock.available("widget"),
        8,
        "only the shipped order holds stock"
    );

    // The state is read back from PostgreSQL by a reader of its own.
    let states = ProcessStates::<OrderFulfilment<PostgresStore>, _>::new(read_models);
    let read: FulfilmentState = states.get("o-pg-1").await.unwrap().unwrap().state;
    assert_eq!(read, shipped.state);
    assert_eq!(states.history("o-pg-2").await.unwrap().len(), 6);
}
