//! The order fulfilment saga on a real SQLite store and read model: the happy path, each
//! compensation path, and restarts after a crash mid-flow.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factum::envelope::{COMMAND_CAUSATION_KEY, NewEvent, RecordedEvent, Snapshot};
use factum::prelude::*;
use factum::process::sqlite::{Instance, OutboxState, ProcessRunner};
use factum::process::{CommandKind, ProcessStatus};
use factum::projection::Retry;
use factum::projection::sqlite::SqliteReadModel;
use factum::store::{AppendOutcome, FilteredPage, Head, SqliteStore};
use factum::uuid::Uuid;
use factum_example_orders::fulfilment::{
    Bank, Carrier, FulfilmentCommand, FulfilmentState, Inventory, OrderFulfilment, ReceiveStock,
    Stage,
};
use factum_example_orders::{
    Catalog, ConfirmOrder, Currency, Order, PlaceOrder, RequestedLine, Status,
};

const WAREHOUSE: &str = "main";
const WAIT: Duration = Duration::from_secs(30);

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("factum-fulfilment-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Shop {
    _dir: TempDir,
    store: SqliteStore,
    read_models: SqliteReadModel,
}

/// A shop whose warehouse holds 10 widgets and 5 gadgets.
async fn shop() -> Shop {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    let inventory = Repository::<Inventory, _>::new(store.clone());
    for (sku, quantity) in [("widget", 10), ("gadget", 5)] {
        inventory
            .execute(ReceiveStock {
                warehouse_id: WAREHOUSE.into(),
                sku: sku.into(),
                quantity,
            })
            .await
            .unwrap();
    }
    Shop {
        _dir: dir,
        store,
        read_models,
    }
}

fn catalog() -> Catalog {
    Catalog::new([("widget", 250), ("gadget", 1200)])
}

/// Places and confirms an order in one business transaction; returns its correlation id.
async fn place_and_confirm(
    store: &SqliteStore,
    order_id: &str,
    customer_id: &str,
    lines: &[(&str, u32)],
) -> Uuid {
    let orders = Repository::<Order, _>::with_services(store.clone(), catalog());
    let correlation_id = Uuid::now_v7();
    orders
        .execute_with(
            PlaceOrder {
                order_id: order_id.into(),
                customer_id: customer_id.into(),
                lines: lines
                    .iter()
                    .map(|(sku, quantity)| RequestedLine {
                        sku: (*sku).into(),
                        quantity: *quantity,
                    })
                    .collect(),
                currency: Currency::Eur,
            },
            CommandContext::new()
                .correlation_id(correlation_id)
                .actor(Actor::new("customer", customer_id)),
        )
        .await
        .unwrap();
    orders
        .execute_with(
            ConfirmOrder {
                order_id: order_id.into(),
            },
            CommandContext::new()
                .correlation_id(correlation_id)
                .actor(Actor::new("customer", customer_id)),
        )
        .await
        .unwrap();
    correlation_id
}

/// Runs the fulfilment until the order's instance ends, then stops it.
async fn fulfil<S: EventStore + Clone + 'static>(
    store: S,
    read_models: &SqliteReadModel,
    bank: Bank,
    carrier: Carrier,
    order_id: &str,
) -> Instance<FulfilmentState> {
    let manager = OrderFulfilment::new(store.clone(), WAREHOUSE, bank, carrier);
    let mut handle = ProcessRunner::new(store)
        .idle_wait(Duration::from_millis(50))
        .spawn(manager, read_models.clone());
    let instance = handle.wait_until_final(order_id, WAIT).await.unwrap();
    handle.stop().await.unwrap();
    instance
}

async fn all_events(store: &SqliteStore) -> Vec<RecordedEvent> {
    store.read_all(0, 10_000).await.unwrap()
}

/// The events of one order's flow: its own streams, and the warehouse's events naming it.
fn flow_of<'a>(events: &'a [RecordedEvent], order_id: &str) -> Vec<&'a RecordedEvent> {
    let own = [
        format!("Order-{order_id}"),
        format!("Payment-{order_id}"),
        format!("Shipment-{order_id}"),
    ];
    events
        .iter()
        .filter(|event| {
            own.contains(&event.stream_id)
                || (event.stream_type == "Inventory"
                    && event
                        .payload
                        .get()
                        .contains(&format!("\"order_id\":\"{order_id}\"")))
        })
        .collect()
}

fn names(events: &[&RecordedEvent]) -> Vec<String> {
    events.iter().map(|event| event.name.clone()).collect()
}

fn one<'a>(events: &[&'a RecordedEvent], name: &str) -> &'a RecordedEvent {
    let found: Vec<_> = events.iter().filter(|event| event.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one `{name}` in {:?}",
        names(events)
    );
    found[0]
}

/// The id of the event whose reaction dispatched the command that recorded `event`.
fn command_causation(event: &RecordedEvent) -> Option<Uuid> {
    event
        .metadata
        .extra
        .get(COMMAND_CAUSATION_KEY)
        .and_then(|value| value.as_str())
        .map(|text| text.parse().unwrap())
}

async fn inventory(store: &SqliteStore) -> Inventory {
    Repository::<Inventory, _>::new(store.clone())
        .load(WAREHOUSE)
        .await
        .unwrap()
        .state
}

async fn order_status(store: &SqliteStore, order_id: &str) -> Status {
    Repository::<Order, _>::with_services(store.clone(), catalog())
        .load(order_id)
        .await
        .unwrap()
        .state
        .status
}

/// Kinds, command names and outcomes of an instance's history.
fn summary(
    history: &[factum::process::sqlite::OutboxEntry<FulfilmentCommand>],
) -> Vec<(CommandKind, &'static str, OutboxState)> {
    history
        .iter()
        .map(|entry| {
            let name = match &entry.command {
                FulfilmentCommand::ReserveInventory(_) => "ReserveInventory",
                FulfilmentCommand::ReleaseInventory(_) => "ReleaseInventory",
                FulfilmentCommand::TakePayment(_) => "TakePayment",
                FulfilmentCommand::RefundPayment(_) => "RefundPayment",
                FulfilmentCommand::CreateShipment(_) => "CreateShipment",
                FulfilmentCommand::CancelShipment(_) => "CancelShipment",
                FulfilmentCommand::ShipOrder(_) => "ShipOrder",
                FulfilmentCommand::CancelOrder(_) => "CancelOrder",
            };
            (entry.kind, name, entry.state)
        })
        .collect()
}

#[tokio::test]
async fn the_happy_path_ships_the_order_with_one_correlation_and_a_causation_chain() {
    let shop = shop().await;
    let correlation_id =
        place_and_confirm(&shop.store, "o-1", "alice", &[("widget", 2), ("gadget", 1)]).await;

    let instance = fulfil(
        shop.store.clone(),
        &shop.read_models,
        Bank::new(),
        Carrier::new("ParcelCo"),
        "o-1",
    )
    .await;
    assert_eq!(instance.status, ProcessStatus::Completed);
    assert_eq!(instance.state.stage, Stage::Shipped);
    assert_eq!(instance.state.total, 2 * 250 + 1200);
    assert_eq!(
        instance.state.tracking_code.as_deref(),
        Some("PARCELCO-o-1")
    );
    assert_eq!(instance.correlation_id, correlation_id);
    assert_eq!(instance.failure, None);
    assert_eq!(order_status(&shop.store, "o-1").await, Status::Shipped);
    let stock = inventory(&shop.store).await;
    assert_eq!(
        (stock.available("widget"), stock.available("gadget")),
        (8, 4)
    );

    let events = all_events(&shop.store).await;
    let flow = flow_of(&events, "o-1");
    assert_eq!(
        names(&flow),
        [
            "OrderPlaced",
            "OrderConfirmed",
            "InventoryReserved",
            "PaymentTaken",
            "ShipmentCreated",
            "OrderShipped"
        ]
    );
    for event in &flow {
        assert_eq!(
            event.metadata.correlation_id,
            Some(correlation_id),
            "{} keeps the correlation id",
            event.name
        );
    }

    // event → command → event: each step's event was recorded by a command that the
    // previous step's event caused.
    let history = shop.read_models.clone();
    let states =
        factum::process::sqlite::ProcessStates::<OrderFulfilment<SqliteStore>>::new(history);
    let history = states.history("o-1").await.unwrap();
    assert_eq!(
        summary(&history),
        [
            (CommandKind::Step, "ReserveInventory", OutboxState::Done),
            (CommandKind::Step, "TakePayment", OutboxState::Done),
            (CommandKind::Step, "CreateShipment", OutboxState::Done),
            (CommandKind::Step, "ShipOrder", OutboxState::Done),
        ]
    );
    let chain = [
        "OrderConfirmed",
        "InventoryReserved",
        "PaymentTaken",
        "ShipmentCreated",
        "OrderShipped",
    ];
    for (index, pair) in chain.windows(2).enumerate() {
        let cause = one(&flow, pair[0]);
        let effect = one(&flow, pair[1]);
        let command = &history[index];
        assert_eq!(
            command.causation_id, cause.event_id,
            "{} caused the command",
            pair[0]
        );
        assert_eq!(command.correlation_id, correlation_id);
        assert_eq!(
            effect.metadata.causation_id,
            Some(command.command_id),
            "{} was recorded by the command",
            pair[1]
        );
        assert_eq!(command_causation(effect), Some(cause.event_id));
        assert_eq!(effect.metadata.actor.as_deref(), Some("order_fulfilment"));
    }
}

#[tokio::test]
async fn out_of_stock_cancels_the_order() {
    let shop = shop().await;
    let correlation_id = place_and_confirm(&shop.store, "o-2", "bob", &[("gadget", 6)]).await;

    let instance = fulfil(
        shop.store.clone(),
        &shop.read_models,
        Bank::new(),
        Carrier::default(),
        "o-2",
    )
    .await;
    assert_eq!(instance.status, ProcessStatus::Compensated);
    assert_eq!(instance.state.stage, Stage::Failed);
    let failure = instance.failure.unwrap();
    assert!(
        failure.contains("out of stock: `gadget` has 5 available, 6 requested"),
        "{failure}"
    );
    assert_eq!(order_status(&shop.store, "o-2").await, Status::Cancelled);
    assert_eq!(inventory(&shop.store).await.available("gadget"), 5);

    let events = all_events(&shop.store).await;
    let flow = flow_of(&events, "o-2");
    assert_eq!(
        names(&flow),
        ["OrderPlaced", "OrderConfirmed", "OrderCancelled"]
    );
    assert!(
        flow.iter()
            .all(|event| event.metadata.correlation_id == Some(correlation_id))
    );

    let states = factum::process::sqlite::ProcessStates::<OrderFulfilment<SqliteStore>>::new(
        shop.read_models.clone(),
    );
    let history = states.history("o-2").await.unwrap();
    assert_eq!(
        summary(&history),
        [
            (CommandKind::Step, "ReserveInventory", OutboxState::Rejected),
            (CommandKind::Compensation, "CancelOrder", OutboxState::Done),
        ]
    );
    // A compensation is caused by the command whose rejection triggered it.
    assert_eq!(history[1].causation_id, history[0].command_id);
    let cancelled = one(&flow, "OrderCancelled");
    assert_eq!(cancelled.metadata.causation_id, Some(history[1].command_id));
}

#[tokio::test]
async fn a_declined_card_releases_the_stock_and_cancels_the_order() {
    let shop = shop().await;
    let correlation_id = place_and_confirm(&shop.store, "o-3", "carol", &[("widget", 3)]).await;

    let instance = fulfil(
        shop.store.clone(),
        &shop.read_models,
        Bank::new().decline("carol"),
        Carrier::default(),
        "o-3",
    )
    .await;
    assert_eq!(instance.status, ProcessStatus::Compensated);
    assert!(
        instance
            .failure
            .as_deref()
            .unwrap()
            .contains("the card of customer `carol` was declined"),
        "{:?}",
        instance.failure
    );
    assert_eq!(order_status(&shop.store, "o-3").await, Status::Cancelled);
    let stock = inventory(&shop.store).await;
    assert_eq!(stock.available("widget"), 10);
    assert!(!stock.holds_reservation_for("o-3"));

    let events = all_events(&shop.store).await;
    let flow = flow_of(&events, "o-3");
    assert_eq!(
        names(&flow),
        [
            "OrderPlaced",
            "OrderConfirmed",
            "InventoryReserved",
            "InventoryReleased",
            "OrderCancelled"
        ]
    );
    assert!(
        flow.iter()
            .all(|event| event.metadata.correlation_id == Some(correlation_id))
    );
}

#[tokio::test]
async fn an_unshippable_address_refunds_releases_and_cancels_in_reverse_order() {
    let shop = shop().await;
    let correlation_id =
        place_and_confirm(&shop.store, "o-4", "dave", &[("widget", 1), ("gadget", 2)]).await;

    let instance = fulfil(
        shop.store.clone(),
        &shop.read_models,
        Bank::new(),
        Carrier::new("ParcelCo").refuse("dave"),
        "o-4",
    )
    .await;
    assert_eq!(instance.status, ProcessStatus::Compensated);
    assert!(
        instance
            .failure
            .as_deref()
            .unwrap()
            .contains("carrier `ParcelCo` cannot deliver to the address of customer `dave`"),
        "{:?}",
        instance.failure
    );
    assert_eq!(order_status(&shop.store, "o-4").await, Status::Cancelled);
    let stock = inventory(&shop.store).await;
    assert_eq!(
        (stock.available("widget"), stock.available("gadget")),
        (10, 5)
    );

    let events = all_events(&shop.store).await;
    let flow = flow_of(&events, "o-4");
    // The log orders the compensations: payment, then stock, then the order.
    assert_eq!(
        names(&flow),
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
    assert!(
        flow.iter()
            .all(|event| event.metadata.correlation_id == Some(correlation_id))
    );

    let states = factum::process::sqlite::ProcessStates::<OrderFulfilment<SqliteStore>>::new(
        shop.read_models.clone(),
    );
    assert_eq!(
        summary(&states.history("o-4").await.unwrap()),
        [
            (CommandKind::Step, "ReserveInventory", OutboxState::Done),
            (CommandKind::Step, "TakePayment", OutboxState::Done),
            (CommandKind::Step, "CreateShipment", OutboxState::Rejected),
            (
                CommandKind::Compensation,
                "RefundPayment",
                OutboxState::Done
            ),
            (
                CommandKind::Compensation,
                "ReleaseInventory",
                OutboxState::Done
            ),
            (CommandKind::Compensation, "CancelOrder", OutboxState::Done),
        ]
    );
    assert_eq!(
        states.status("o-4").await.unwrap(),
        Some(ProcessStatus::Compensated)
    );
    assert_eq!(states.status("no-such-order").await.unwrap(), None);
}

/// A store that fails the first append to a payment stream: before writing it (the
/// process died before the command reached the store) or after (it died before hearing
/// that the command went through). From then on every call fails: the process is dead.
#[derive(Clone)]
struct CrashingStore {
    inner: SqliteStore,
    after_append: bool,
    crashed: Arc<AtomicBool>,
}

impl CrashingStore {
    fn crash() -> StoreError {
        StoreError::Backend("the process died (simulated)".into())
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.crashed.load(Ordering::SeqCst) {
            Err(Self::crash())
        } else {
            Ok(())
        }
    }
}

impl EventStore for CrashingStore {
    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: factum::store::CommandRecord,
    ) -> Result<factum::store::CommandAppend, StoreError> {
        self.alive()?;
        // The repository writes a command's events with its record: the crash happens here.
        if stream_id.starts_with("Payment-") && !self.crashed.swap(true, Ordering::SeqCst) {
            if self.after_append {
                self.inner
                    .append_command(stream_id, stream_type, expected, events, command)
                    .await?;
            }
            return Err(Self::crash());
        }
        self.inner
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn command_outcome(
        &self,
        command_id: factum::uuid::Uuid,
    ) -> Result<Option<factum::store::CommandOutcome>, StoreError> {
        self.alive()?;
        self.inner.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.alive()?;
        self.inner.prune_commands(recorded_before).await
    }

    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.alive()?;
        if stream_id.starts_with("Payment-") && !self.crashed.swap(true, Ordering::SeqCst) {
            if self.after_append {
                self.inner
                    .append(stream_id, stream_type, expected, events)
                    .await?;
            }
            return Err(Self::crash());
        }
        self.inner
            .append(stream_id, stream_type, expected, events)
            .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.alive()?;
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.alive()?;
        self.inner.read_all(after, limit).await
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        self.alive()?;
        self.inner.read_all_filtered(after, limit, names).await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.alive()?;
        self.inner.head().await
    }

    async fn wait_for_events(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.wait_for_events(after, timeout).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.alive()?;
        self.inner.stream_version(stream_id).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.alive()?;
        self.inner.load_snapshot(stream_id).await
    }
}

/// Crashes the manager at the payment step, restarts a new one over the same store and
/// read model, and checks the order is fulfilled exactly once.
async fn restart_after_a_crash_at_the_payment(after_append: bool) {
    let shop = shop().await;
    place_and_confirm(&shop.store, "o-5", "erin", &[("widget", 4)]).await;

    let crashing = CrashingStore {
        inner: shop.store.clone(),
        after_append,
        crashed: Arc::new(AtomicBool::new(false)),
    };
    let manager =
        OrderFulfilment::new(crashing.clone(), WAREHOUSE, Bank::new(), Carrier::default());
    let first = ProcessRunner::new(crashing)
        .idle_wait(Duration::from_millis(50))
        .retry(Retry::never())
        .spawn(manager, shop.read_models.clone());
    // The dispatch fails, and so does everything after it: the runner keeps retrying
    // (its task does not end on a failure a retry may cure) until it is stopped.
    let failure = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(error) = first.last_error() {
                // The cause is the error's source: shown with the whole chain.
                return factum::error::Report(&*error).to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the crash is reported");
    assert!(
        failure.contains("the process died (simulated)"),
        "{failure}"
    );
    assert!(!first.is_finished(), "a failed dispatch is retried");
    let states = first.states().clone();
    first.stop().await.unwrap();
    let midway = states.get("o-5").await.unwrap().unwrap();
    assert_eq!(midway.status, ProcessStatus::Running);
    assert_eq!(midway.state.stage, Stage::Paying);
    let history = states.history("o-5").await.unwrap();
    assert_eq!(
        summary(&history)[1],
        (CommandKind::Step, "TakePayment", OutboxState::Pending),
        "the payment is decided but its outcome unknown"
    );
    let payments_before = all_events(&shop.store)
        .await
        .iter()
        .filter(|event| event.name == "PaymentTaken")
        .count();
    assert_eq!(payments_before, usize::from(after_append));

    let instance = fulfil(
        shop.store.clone(),
        &shop.read_models,
        Bank::new(),
        Carrier::default(),
        "o-5",
    )
    .await;
    assert_eq!(instance.status, ProcessStatus::Completed);
    assert_eq!(order_status(&shop.store, "o-5").await, Status::Shipped);
    assert_eq!(inventory(&shop.store).await.available("widget"), 6);

    let events = all_events(&shop.store).await;
    let flow = flow_of(&events, "o-5");
    assert_eq!(
        names(&flow),
        [
            "OrderPlaced",
            "OrderConfirmed",
            "InventoryReserved",
            "PaymentTaken",
            "ShipmentCreated",
            "OrderShipped"
        ],
        "every step exactly once"
    );
    let history = states.history("o-5").await.unwrap();
    assert_eq!(
        summary(&history),
        [
            (CommandKind::Step, "ReserveInventory", OutboxState::Done),
            (CommandKind::Step, "TakePayment", OutboxState::Done),
            (CommandKind::Step, "CreateShipment", OutboxState::Done),
            (CommandKind::Step, "ShipOrder", OutboxState::Done),
        ]
    );
    // The payment recorded is the one of the command decided before the crash.
    assert_eq!(
        one(&flow, "PaymentTaken").metadata.causation_id,
        Some(history[1].command_id)
    );
}

#[tokio::test]
async fn a_restart_after_a_crash_before_the_payment_reached_the_store_pays_once() {
    restart_after_a_crash_at_the_payment(false).await;
}

#[tokio::test]
async fn a_restart_after_a_crash_after_the_payment_was_stored_does_not_pay_twice() {
    restart_after_a_crash_at_the_payment(true).await;
}
