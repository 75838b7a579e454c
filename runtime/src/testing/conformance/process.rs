//! The process-store conformance suite: the fulfilment saga of [`shop`](super::shop) run
//! on a backend's [`ProcessStore`] — the happy path, each compensation path, two racing
//! drivers and a driver killed mid-flow — with every step checked to be taken once.
//!
//! Each check resets its own manager's read model first (the managers are named per
//! check, see [`Lane`]) and takes an event store that is empty of the shop's streams.
//! [`run_process_contract`] runs the single-driver checks; [`racing_drivers`] and
//! [`restart_after_kill`] need more than one handle or a child process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::IntoStore;
use super::shop::{
    ConfirmOrder, DECLINED_CARD, Fulfilment, FulfilmentState, Lane, NOWHERE, ReceiveStock,
    ShopCommand, ShopOrder, Warehouse,
};
use crate::context::{Actor, CommandContext};
use crate::envelope::RecordedEvent;
use crate::process::{
    CommandKind, Instance, OutboxEntry, OutboxState, ProcessRunner, ProcessStatus, ProcessStore,
};
use crate::projection::{Retry, Target};
use crate::repository::Repository;
use crate::store::EventStore;

/// The lanes of the checks, one manager name each.
macro_rules! lanes {
    ($($(#[$doc:meta])* $lane:ident = $name:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $lane;

        impl Lane for $lane {
            const NAME: &'static str = $name;
        }
    )*};
}

lanes! {
    /// [`happy_path`]'s manager.
    HappyPath = "conformance_fulfil_happy";
    /// [`out_of_stock`]'s manager.
    OutOfStock = "conformance_fulfil_stock";
    /// [`card_declined`]'s manager.
    CardDeclined = "conformance_fulfil_card";
    /// [`undeliverable`]'s manager.
    Undeliverable = "conformance_fulfil_address";
    /// [`racing_drivers`]' manager.
    Racing = "conformance_fulfil_racing";
    /// [`restart_after_kill`]'s manager.
    Killed = "conformance_fulfil_killed";
}

const SKU: &str = "widget";
const WAIT: Duration = Duration::from_secs(60);

/// Runs the single-driver checks — [`happy_path`], [`out_of_stock`], [`card_declined`],
/// [`undeliverable`] — each on a fresh event store from `fresh_store`, with the managers
/// in `read_model`.
pub async fn run_process_contract<S, P, F, Fut>(mut fresh_store: F, read_model: P)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
    F: FnMut() -> Fut,
    Fut: IntoStore<S>,
{
    happy_path(fresh_store().into_store().await, read_model.clone()).await;
    out_of_stock(fresh_store().into_store().await, read_model.clone()).await;
    card_declined(fresh_store().into_store().await, read_model.clone()).await;
    undeliverable(fresh_store().into_store().await, read_model).await;
}

/// Empties the manager's read model, left from an earlier run.
async fn reset<L: Lane, P: ProcessStore>(read_model: &P) {
    read_model
        .reset(Target {
            name: L::NAME,
            version: 0,
        })
        .await
        .unwrap_or_else(|error| panic!("resetting `{}`: {error}", L::NAME));
}

/// Receives `quantity` widgets.
async fn stock<S: EventStore + Clone>(store: &S, quantity: u32) {
    Repository::<Warehouse, _>::new(store.clone())
        .execute(ReceiveStock {
            sku: SKU.into(),
            quantity,
        })
        .await
        .expect("receive stock");
}

/// Confirms the order `order_id` of `quantity` widgets; returns its correlation id.
async fn confirm<S: EventStore + Clone>(
    store: &S,
    order_id: &str,
    quantity: u32,
    card: &str,
    address: &str,
) -> Uuid {
    let correlation_id = Uuid::now_v7();
    Repository::<ShopOrder, _>::new(store.clone())
        .execute_with(
            ConfirmOrder {
                order_id: order_id.into(),
                sku: SKU.into(),
                quantity,
                card: card.into(),
                address: address.into(),
            },
            CommandContext::new()
                .correlation_id(correlation_id)
                .actor(Actor::new("customer", "c-1")),
        )
        .await
        .expect("confirm the order");
    correlation_id
}

/// Every event of the log, in order.
async fn log<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        let after = events
            .last()
            .map_or(0, |event: &RecordedEvent| event.position);
        let page = store.read_all(after, 1000).await.expect("read the log");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// The events of `order_id`'s fulfilment, in log order: its order, payment and shipment
/// streams and the warehouse's events naming it.
fn flow<'a>(events: &'a [RecordedEvent], order_id: &str) -> Vec<&'a RecordedEvent> {
    events
        .iter()
        .filter(|event| {
            event
                .stream_id
                .strip_suffix(order_id)
                .is_some_and(|prefix| {
                    prefix.ends_with('-') && event.stream_type != "ConformanceWarehouse"
                })
                || (event.stream_type == "ConformanceWarehouse"
                    && serde_json::from_str::<serde_json::Value>(event.payload.get())
                        .is_ok_and(|payload| payload["order_id"] == order_id))
        })
        .collect()
}

fn names(flow: &[&RecordedEvent]) -> Vec<String> {
    flow.iter()
        .map(|event| event.name.trim_start_matches("Conformance").to_owned())
        .collect()
}

/// Catches up until every instance in `keys` has ended; panics after [`WAIT`].
async fn fulfil<L, S, P>(store: &S, read_model: &P, keys: &[&str])
where
    L: Lane,
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    let runner = ProcessRunner::new(store.clone()).retry(quick_retry());
    let mut driver = runner.driver(Fulfilment::<L, S>::new(store.clone()), read_model.clone());
    let started = Instant::now();
    loop {
        runner
            .catch_up(&mut driver)
            .await
            .unwrap_or_else(|error| panic!("`{}` failed: {error}", L::NAME));
        if all_final::<L, S, P>(read_model, keys).await {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "`{}`: the instances {keys:?} did not end within {WAIT:?}",
            L::NAME
        );
    }
}

fn quick_retry() -> Retry {
    Retry::new(5, Duration::from_millis(10)).max_backoff(Duration::from_millis(100))
}

async fn instance<L, S, P>(read_model: &P, key: &str) -> Option<Instance<FulfilmentState>>
where
    L: Lane,
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    crate::process::ProcessStates::<Fulfilment<L, S>, P>::new(read_model.clone())
        .get(key)
        .await
        .unwrap_or_else(|error| panic!("reading instance `{key}` of `{}`: {error}", L::NAME))
}

async fn history<L, S, P>(read_model: &P, key: &str) -> Vec<OutboxEntry<ShopCommand>>
where
    L: Lane,
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    crate::process::ProcessStates::<Fulfilment<L, S>, P>::new(read_model.clone())
        .history(key)
        .await
        .unwrap_or_else(|error| panic!("reading the history of `{key}` of `{}`: {error}", L::NAME))
}

async fn all_final<L, S, P>(read_model: &P, keys: &[&str]) -> bool
where
    L: Lane,
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    for key in keys {
        match instance::<L, S, P>(read_model, key).await {
            Some(instance) if instance.status.is_final() => {}
            _ => return false,
        }
    }
    true
}

/// A history as (kind, command name, outcome) triples, for comparing.
fn outline(history: &[OutboxEntry<ShopCommand>]) -> Vec<(CommandKind, String, OutboxState)> {
    history
        .iter()
        .map(|entry| {
            let name = format!("{:?}", entry.command);
            let name = name.split('(').next().unwrap_or_default().to_owned();
            (entry.kind, name, entry.state)
        })
        .collect()
}

fn step(name: &str, state: OutboxState) -> (CommandKind, String, OutboxState) {
    (CommandKind::Step, name.to_owned(), state)
}

fn compensation(name: &str) -> (CommandKind, String, OutboxState) {
    (
        CommandKind::Compensation,
        name.to_owned(),
        OutboxState::Done,
    )
}

/// Checks that every command of `history` that was accepted recorded its events with the
/// command's id as causation id and the instance's correlation id, and that no command
/// id recurs.
fn assert_traced(
    manager: &str,
    events: &[&RecordedEvent],
    history: &[OutboxEntry<ShopCommand>],
    correlation_id: Uuid,
) {
    let mut ids = std::collections::HashSet::new();
    for entry in history {
        assert!(
            ids.insert(entry.command_id),
            "`{manager}`: command id {} decided twice",
            entry.command_id
        );
        assert_eq!(
            entry.correlation_id, correlation_id,
            "`{manager}`: {:?} does not carry the order's correlation id",
            entry.command
        );
    }
    for event in events.iter().skip(1) {
        assert_eq!(
            event.metadata.correlation_id,
            Some(correlation_id),
            "`{manager}`: `{}` does not carry the order's correlation id",
            event.name
        );
        let cause = event.metadata.causation_id;
        assert!(
            history
                .iter()
                .any(|entry| Some(entry.command_id) == cause && entry.state == OutboxState::Done),
            "`{manager}`: `{}` was caused by {cause:?}, which is no accepted command of the instance",
            event.name
        );
    }
}

/// The happy path: the stock reserved, the payment taken, the carrier booked, the order
/// shipped — each once, in that order, every command traced to its cause and every event
/// to the order's correlation id; the instance completed.
pub async fn happy_path<S, P>(store: S, read_model: P)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<HappyPath, _>(&read_model).await;
    stock(&store, 10).await;
    let correlation_id = confirm(&store, "o-happy", 3, "4242", "1 Main Street").await;
    fulfil::<HappyPath, _, _>(&store, &read_model, &["o-happy"]).await;

    let events = log(&store).await;
    let flow = flow(&events, "o-happy");
    assert_eq!(
        names(&flow),
        [
            "OrderConfirmed",
            "StockReserved",
            "PaymentTaken",
            "CarrierBooked",
            "OrderShipped"
        ],
        "`{}`: the happy path",
        HappyPath::NAME
    );
    let instance = instance::<HappyPath, S, P>(&read_model, "o-happy")
        .await
        .expect("the instance was started");
    assert_eq!(instance.status, ProcessStatus::Completed);
    assert_eq!(instance.correlation_id, correlation_id);
    assert_eq!(instance.failure, None);
    let history = history::<HappyPath, S, P>(&read_model, "o-happy").await;
    assert_eq!(
        outline(&history),
        [
            step("Reserve", OutboxState::Done),
            step("Pay", OutboxState::Done),
            step("Book", OutboxState::Done),
            step("Ship", OutboxState::Done),
        ]
    );
    // The first two steps were decided on the confirmation, the booking on the
    // payment, the shipping on the booking.
    let causes: Vec<Uuid> = history.iter().map(|entry| entry.causation_id).collect();
    assert_eq!(
        causes,
        [
            flow[0].event_id,
            flow[0].event_id,
            flow[2].event_id,
            flow[3].event_id
        ],
        "`{}`: each step is caused by the event it was decided on",
        HappyPath::NAME
    );
    assert_traced(HappyPath::NAME, &flow, &history, correlation_id);
}

/// The stock is short: the reservation is refused, the payment never taken, and the
/// order cancelled; the instance compensated, with the refusal as its failure.
pub async fn out_of_stock<S, P>(store: S, read_model: P)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<OutOfStock, _>(&read_model).await;
    stock(&store, 2).await;
    let correlation_id = confirm(&store, "o-short", 3, "4242", "1 Main Street").await;
    fulfil::<OutOfStock, _, _>(&store, &read_model, &["o-short"]).await;

    let events = log(&store).await;
    let flow = flow(&events, "o-short");
    assert_eq!(names(&flow), ["OrderConfirmed", "OrderCancelled"]);
    let instance = instance::<OutOfStock, S, P>(&read_model, "o-short")
        .await
        .expect("the instance was started");
    assert_eq!(instance.status, ProcessStatus::Compensated);
    let failure = instance.failure.unwrap_or_default();
    assert!(
        failure.contains("out of stock"),
        "`{}`: the failure names the refusal: {failure:?}",
        OutOfStock::NAME
    );
    assert!(
        instance
            .state
            .refused
            .is_some_and(|refused| refused.contains("out of stock")),
        "`{}`: the manager was told why the step was refused",
        OutOfStock::NAME
    );
    let history = history::<OutOfStock, S, P>(&read_model, "o-short").await;
    assert_eq!(
        outline(&history),
        [
            step("Reserve", OutboxState::Rejected),
            step("Pay", OutboxState::Skipped),
            compensation("Cancel"),
        ]
    );
    assert!(
        history[0]
            .outcome
            .as_deref()
            .is_some_and(|outcome| outcome.contains("out of stock")),
        "`{}`: a rejected command keeps its reason",
        OutOfStock::NAME
    );
    assert_eq!(
        history[2].causation_id, history[0].command_id,
        "a compensation is caused by the rejected command"
    );
    assert_traced(OutOfStock::NAME, &flow, &history, correlation_id);
}

/// The card is declined: the reserved stock is released, then the order cancelled.
pub async fn card_declined<S, P>(store: S, read_model: P)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<CardDeclined, _>(&read_model).await;
    stock(&store, 10).await;
    let correlation_id = confirm(&store, "o-declined", 3, DECLINED_CARD, "1 Main Street").await;
    fulfil::<CardDeclined, _, _>(&store, &read_model, &["o-declined"]).await;

    let events = log(&store).await;
    let flow = flow(&events, "o-declined");
    assert_eq!(
        names(&flow),
        [
            "OrderConfirmed",
            "StockReserved",
            "StockReleased",
            "OrderCancelled"
        ]
    );
    let instance = instance::<CardDeclined, S, P>(&read_model, "o-declined")
        .await
        .expect("the instance was started");
    assert_eq!(instance.status, ProcessStatus::Compensated);
    let history = history::<CardDeclined, S, P>(&read_model, "o-declined").await;
    assert_eq!(
        outline(&history),
        [
            step("Reserve", OutboxState::Done),
            step("Pay", OutboxState::Rejected),
            compensation("Release"),
            compensation("Cancel"),
        ]
    );
    assert_traced(CardDeclined::NAME, &flow, &history, correlation_id);
    let warehouse = Repository::<Warehouse, _>::new(store.clone())
        .load(SKU)
        .await
        .expect("load the warehouse");
    assert_eq!(
        warehouse.state.available, 10,
        "the released stock is available again"
    );
}

/// No carrier goes to the address: the payment is refunded, the stock released and the
/// order cancelled — the completed steps undone in reverse order. The address holds a NUL
/// character, so the refusal does: the reason reads back with U+FFFD in its place on
/// every backend (PostgreSQL's text cannot hold NUL).
pub async fn undeliverable<S, P>(store: S, read_model: P)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<Undeliverable, _>(&read_model).await;
    stock(&store, 10).await;
    let address = format!("{NOWHERE}\0 (no such street)");
    let correlation_id = confirm(&store, "o-nowhere", 3, "4242", &address).await;
    fulfil::<Undeliverable, _, _>(&store, &read_model, &["o-nowhere"]).await;

    let events = log(&store).await;
    let flow = flow(&events, "o-nowhere");
    assert_eq!(
        names(&flow),
        [
            "OrderConfirmed",
            "StockReserved",
            "PaymentTaken",
            "PaymentRefunded",
            "StockReleased",
            "OrderCancelled"
        ]
    );
    let instance = instance::<Undeliverable, S, P>(&read_model, "o-nowhere")
        .await
        .expect("the instance was started");
    assert_eq!(instance.status, ProcessStatus::Compensated);
    let refused = "no carrier delivers to `nowhere\u{FFFD} (no such street)`";
    assert!(
        instance
            .failure
            .as_deref()
            .is_some_and(|failure| failure.contains(refused)),
        "`{}`: the failure reads back with U+FFFD for NUL: {:?}",
        Undeliverable::NAME,
        instance.failure
    );
    let history = history::<Undeliverable, S, P>(&read_model, "o-nowhere").await;
    assert_eq!(
        outline(&history),
        [
            step("Reserve", OutboxState::Done),
            step("Pay", OutboxState::Done),
            step("Book", OutboxState::Rejected),
            compensation("Refund"),
            compensation("Release"),
            compensation("Cancel"),
        ]
    );
    assert!(
        history[2]
            .outcome
            .as_deref()
            .is_some_and(|outcome| outcome.contains(refused)),
        "`{}`: the rejection reads back with U+FFFD for NUL: {:?}",
        Undeliverable::NAME,
        history[2].outcome
    );
    assert_traced(Undeliverable::NAME, &flow, &history, correlation_id);
}

/// Counts each event name of each order's flow; panics naming the order whose flow is
/// not the happy path exactly once.
fn assert_each_step_once(manager: &str, events: &[RecordedEvent], orders: &[String]) {
    for order_id in orders {
        let flow = flow(events, order_id);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for name in names(&flow) {
            *counts.entry(name).or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = [
            "OrderConfirmed",
            "StockReserved",
            "PaymentTaken",
            "CarrierBooked",
            "OrderShipped",
        ]
        .into_iter()
        .map(|name| (name.to_owned(), 1))
        .collect();
        assert_eq!(
            counts, expected,
            "`{manager}`: order `{order_id}` took a step twice or not at all"
        );
    }
}

/// Two drivers of one manager — each with its own read-model handle (`read_model`,
/// `other`: two connections to the same database) — run live while `orders` orders are
/// confirmed, half before they start and half while they run; every fifth card is
/// declined. Every order ends as it would with one driver: fulfilled with each step
/// taken once, or compensated with each compensation decided and run once; no instance
/// decided a command twice, and the warehouse holds what is left.
pub async fn racing_drivers<S, P>(store: S, read_model: P, other: P, orders: usize)
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<Racing, _>(&read_model).await;
    let quantity = u32::try_from(orders).expect("a few orders") * 2;
    stock(&store, quantity + 5).await;
    let ids: Vec<String> = (0..orders).map(|n| format!("o-race-{n}")).collect();
    let declined = |id: &str| {
        id.rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n % 5 == 4)
    };
    let card = |id: &str| if declined(id) { DECLINED_CARD } else { "4242" };
    for id in &ids[..orders / 2] {
        confirm(&store, id, 2, card(id), "1 Main Street").await;
    }
    let runner = ProcessRunner::new(store.clone())
        .retry(quick_retry())
        .idle_wait(Duration::from_millis(50));
    let first = runner.spawn(
        Fulfilment::<Racing, S>::new(store.clone()),
        read_model.clone(),
    );
    let second = runner.spawn(Fulfilment::<Racing, S>::new(store.clone()), other);
    for id in &ids[orders / 2..] {
        confirm(&store, id, 2, card(id), "1 Main Street").await;
    }
    let keys: Vec<&str> = ids.iter().map(String::as_str).collect();
    let started = Instant::now();
    while !all_final::<Racing, S, P>(&read_model, &keys).await {
        assert!(
            !first.is_finished() && !second.is_finished(),
            "`{}`: a driver stopped: {:?} / {:?}",
            Racing::NAME,
            first.last_error(),
            second.last_error()
        );
        assert!(
            started.elapsed() < WAIT,
            "`{}`: not every order ended within {WAIT:?}",
            Racing::NAME
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await.expect("the first driver ends cleanly");
    second.stop().await.expect("the second driver ends cleanly");

    let events = log(&store).await;
    let (refused, fulfilled): (Vec<String>, Vec<String>) =
        ids.iter().cloned().partition(|id| declined(id));
    assert_each_step_once(Racing::NAME, &events, &fulfilled);
    for id in &ids {
        let instance = instance::<Racing, S, P>(&read_model, id)
            .await
            .expect("the instance was started");
        let outline = outline(&history::<Racing, S, P>(&read_model, id).await);
        if declined(id) {
            assert_eq!(instance.status, ProcessStatus::Compensated, "order `{id}`");
            assert_eq!(
                outline,
                [
                    step("Reserve", OutboxState::Done),
                    step("Pay", OutboxState::Rejected),
                    compensation("Release"),
                    compensation("Cancel"),
                ],
                "`{}`: order `{id}` decided a command twice",
                Racing::NAME
            );
            assert_eq!(
                names(&flow(&events, id)),
                [
                    "OrderConfirmed",
                    "StockReserved",
                    "StockReleased",
                    "OrderCancelled"
                ],
                "`{}`: order `{id}`",
                Racing::NAME
            );
        } else {
            assert_eq!(instance.status, ProcessStatus::Completed, "order `{id}`");
            assert_eq!(
                outline,
                [
                    step("Reserve", OutboxState::Done),
                    step("Pay", OutboxState::Done),
                    step("Book", OutboxState::Done),
                    step("Ship", OutboxState::Done),
                ],
                "`{}`: order `{id}` decided a command twice",
                Racing::NAME
            );
        }
    }
    let warehouse = Repository::<Warehouse, _>::new(store.clone())
        .load(SKU)
        .await
        .expect("load the warehouse");
    let reserved = u32::try_from(fulfilled.len()).expect("a few orders") * 2;
    assert_eq!(
        warehouse.state.available,
        quantity + 5 - reserved,
        "each fulfilled order reserved once, each of the {} refused ones released",
        refused.len()
    );
}

/// The orders [`restart_after_kill`] fulfils.
const KILLED_ORDERS: [&str; 3] = ["o-kill-0", "o-kill-1", "o-kill-2"];

/// The child's side of [`restart_after_kill`]: runs the manager live, pausing after
/// each accepted command before its outcome is recorded, until the process is killed.
pub async fn drive_until_killed<S, P>(store: S, read_model: P) -> !
where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    let manager = Fulfilment::<Killed, S>::new(store.clone()).pausing(Duration::from_millis(150));
    let _handle = ProcessRunner::new(store)
        .idle_wait(Duration::from_millis(50))
        .spawn(manager, read_model);
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// A driver killed (SIGKILL, not dropped) in the middle of the fulfilments, and a new
/// one started on the same store and read model, takes every remaining step once.
///
/// `start_child` starts a process that calls [`drive_until_killed`] on the same store
/// and read model (a test binary runs itself again, say). This confirms three orders,
/// starts the child, kills it once a payment was taken while an order was not yet
/// shipped, checks that the kill left work behind, then finishes in this process.
pub async fn restart_after_kill<S, P>(
    store: S,
    read_model: P,
    start_child: impl FnOnce() -> std::process::Child,
) where
    S: EventStore + Clone + 'static,
    P: ProcessStore,
{
    reset::<Killed, _>(&read_model).await;
    stock(&store, 20).await;
    for id in KILLED_ORDERS {
        confirm(&store, id, 2, "4242", "1 Main Street").await;
    }
    let mut child = start_child();
    let started = Instant::now();
    loop {
        let events = log(&store).await;
        if events
            .iter()
            .any(|event| event.name == "ConformancePaymentTaken")
        {
            break;
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!("the child driver ended before taking a payment: {status}");
        }
        assert!(
            started.elapsed() < WAIT,
            "the child driver took no payment within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("kill the child"); // SIGKILL on Unix
    child.wait().expect("reap the child");

    let keys: Vec<&str> = KILLED_ORDERS.to_vec();
    assert!(
        !all_final::<Killed, S, P>(&read_model, &keys).await,
        "the kill landed after every order was fulfilled: the check proved nothing"
    );
    fulfil::<Killed, _, _>(&store, &read_model, &keys).await;

    let events = log(&store).await;
    let ids: Vec<String> = KILLED_ORDERS.iter().map(|id| (*id).to_owned()).collect();
    assert_each_step_once(Killed::NAME, &events, &ids);
    for id in KILLED_ORDERS {
        let instance = instance::<Killed, S, P>(&read_model, id)
            .await
            .expect("the instance was started");
        assert_eq!(instance.status, ProcessStatus::Completed, "order `{id}`");
    }
}
