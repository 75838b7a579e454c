//! The order part of the main job: the order lifecycle end to end, printed as it happens.
//!
//! It keeps its events in a SQLite file (`orders.sqlite3` by default; or in memory, for a
//! throwaway store), so every run adds to the same history. The first run imports two
//! orders the way an older release wrote them (`OrderPlaced` version 1, `ItemAdded`
//! version 1) and every run shows them replayed into today's shapes; then it runs the
//! lifecycle of a new order, the shop's invariants refusing bad commands, and a
//! concurrent write caught and retried. Used by the `orders` binary and by `factum-demo`.

use std::path::{Path, PathBuf};

use factum::prelude::*;
use serde_json::json;

use crate::{
    AddItem, AddNote, CancelOrder, Catalog, ConfirmOrder, Currency, DeliverOrder, Order,
    OrderCommand, PlaceOrder, RemoveItem, RequestedLine, ShipOrder,
};

/// Why the job stopped: a store, repository or encoding error, or an outcome the
/// scenario did not expect, with its causes.
pub type Failure = Box<dyn std::error::Error>;

/// Where the job keeps its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file, created if missing; every run adds to it.
    Sqlite(PathBuf),
    /// Memory, for this run only.
    InMemory,
}

/// Runs the order lifecycle on the chosen storage.
pub async fn run(storage: &Storage) -> Result<(), Failure> {
    match storage {
        Storage::InMemory => {
            println!("store: in memory (nothing is kept after this run)");
            run_on(MemoryStore::new()).await
        }
        Storage::Sqlite(path) => run_on(open_sqlite(path).await?).await,
    }
}

/// The domain's schema registry as pretty JSON, the input of `factum schema ...`.
pub fn registry_json() -> Result<String, Failure> {
    let registry = factum::registry::Registry::builder()
        .aggregate::<Order>()
        .build()
        .map_err(|conflicts| {
            conflicts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    Ok(serde_json::to_string_pretty(&registry)?)
}

async fn open_sqlite(path: &Path) -> Result<factum::store::SqliteStore, Failure> {
    let store = factum::store::SqliteStore::open(path).await?;
    println!("store: SQLite file {}", path.display());
    Ok(store)
}

/// Runs the order lifecycle on `store`.
pub async fn run_on<S: EventStore + Clone>(store: S) -> Result<(), Failure> {
    let catalog = Catalog::new([("tea", 450), ("mug", 1200), ("kettle", 3900)]);
    let orders = Repository::<Order, S>::with_services(store.clone(), catalog);
    let history_before = store.read_all(0, usize::MAX).await?;
    let run = start_run(&store).await?;
    println!(
        "run {run}: the store holds {} events from earlier runs",
        history_before.len()
    );
    let first_position_of_this_run = history_before.last().map_or(0, |event| event.position);

    section("1. Orders stored by an older release are read in today's shape");
    import_legacy_order(&store).await?;
    let legacy = orders.load("A-1001").await?;
    println!(
        "order A-1001 (OrderPlaced v1 + ItemAdded v1 on disk) -> status {}, currency {:?}, {} lines, total {}",
        legacy.state.status,
        legacy.state.currency,
        legacy.state.lines.len(),
        money(legacy.state.total())
    );
    for line in legacy.state.lines.values() {
        println!(
            "    {} x{} at {}",
            line.sku,
            line.quantity,
            money(line.unit_price)
        );
    }
    if legacy.version == 2 {
        // Deciding on the upcast state writes today's versions next to the old ones.
        run_command(
            &orders,
            ConfirmOrder {
                order_id: "A-1001".into(),
            },
            actor("support"),
        )
        .await?;
    }

    section("2. The lifecycle of a new order");
    let id = format!("B-{run:04}");
    let steps: Vec<OrderCommand> = vec![
        PlaceOrder {
            order_id: id.clone(),
            customer_id: "customer-7".into(),
            lines: vec![line("tea", 2), line("mug", 1)],
            currency: Currency::Eur,
        }
        .into(),
        AddItem {
            order_id: id.clone(),
            line: line("kettle", 1),
        }
        .into(),
        RemoveItem {
            order_id: id.clone(),
            sku: "mug".into(),
        }
        .into(),
        AddNote {
            order_id: id.clone(),
            text: "gift wrap, please".into(),
        }
        .into(),
        ConfirmOrder {
            order_id: id.clone(),
        }
        .into(),
        ShipOrder {
            order_id: id.clone(),
            carrier: "PostNL".into(),
            tracking_code: format!("3SABCD{run:07}"),
        }
        .into(),
        DeliverOrder {
            order_id: id.clone(),
        }
        .into(),
    ];
    // One checkout session: every command of it shares a correlation id.
    let checkout = factum::uuid::Uuid::now_v7();
    for command in steps {
        let metadata = CommandContext::new()
            .actor(Actor::new("customer", "customer-7"))
            .correlation_id(checkout);
        run_command(&orders, command, metadata).await?;
    }
    let delivered = orders.load(&id).await?;
    println!(
        "order {id} is {} at stream version {}, total {}",
        delivered.state.status,
        delivered.version,
        money(delivered.state.total())
    );
    let at_confirmation = orders.load_at_version(&id, 5).await?;
    println!(
        "time travel: at version 5 it was {} with {} lines",
        at_confirmation.state.status,
        at_confirmation.state.lines.len()
    );

    section("3. The shop's invariants refuse bad commands (nothing is written)");
    let before = store.read_all(0, usize::MAX).await?.len();
    let never_placed = format!("C-{run:04}");
    let refused: Vec<OrderCommand> = vec![
        AddItem {
            order_id: id.clone(),
            line: line("tea", 1),
        }
        .into(),
        CancelOrder {
            order_id: id.clone(),
            reason: "changed my mind".into(),
        }
        .into(),
        PlaceOrder {
            order_id: never_placed.clone(),
            customer_id: "customer-9".into(),
            lines: vec![line("teapot", 1)],
            currency: Currency::Usd,
        }
        .into(),
        PlaceOrder {
            order_id: never_placed.clone(),
            customer_id: "customer-9".into(),
            lines: vec![line("tea", 0)],
            currency: Currency::Usd,
        }
        .into(),
        ConfirmOrder {
            order_id: never_placed,
        }
        .into(),
    ];
    for command in refused {
        let name = command.command_name();
        match orders.execute(command).await {
            Err(RepositoryError::Rejected(reason)) => println!("{name:<13} refused: {reason}"),
            Err(other) => return Err(other.into()),
            Ok(executed) => {
                return Err(format!("{name} was accepted: {:?}", executed.events).into());
            }
        }
    }
    let after = store.read_all(0, usize::MAX).await?.len();
    println!("events stored before: {before}, after: {after}");

    section("4. A concurrent write is caught, and a retry decides again");
    let contested = format!("D-{run:04}");
    run_command(
        &orders,
        PlaceOrder {
            order_id: contested.clone(),
            customer_id: "customer-3".into(),
            lines: vec![line("mug", 2)],
            currency: Currency::Gbp,
        },
        actor("customer-3"),
    )
    .await?;
    let stale = orders.load(&contested).await?;
    run_command(
        &orders,
        AddItem {
            order_id: contested.clone(),
            line: line("tea", 3),
        },
        actor("customer-3"),
    )
    .await?;
    // A writer that decided on the stale state must not overwrite the newer event.
    let stale_decision = stale
        .state
        .handle(
            ConfirmOrder {
                order_id: contested.clone(),
            }
            .into(),
            &Catalog::default(),
            &actor("support"),
        )
        .map_err(|error| error.to_string())?;
    let event = stale_decision[0].encode()?;
    let conflict = store
        .append(
            &Repository::<Order, S>::stream_id(&contested),
            "Order",
            ExpectedVersion::Exact(stale.version),
            vec![NewEvent::new(
                event.name,
                event.schema_version,
                event.payload,
                Metadata::default(),
            )],
        )
        .await;
    match conflict {
        Err(error @ StoreError::Conflict { .. }) => println!("stale writer refused: {error}"),
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    let retried = orders
        .execute_retrying(
            ConfirmOrder {
                order_id: contested.clone(),
            },
            actor("customer-3"),
            Retry::immediately(3),
        )
        .await?;
    println!(
        "retrying execution confirmed {contested} at version {} with total {}",
        retried.version,
        money(retried.state.total())
    );

    section("5. This run's events, in commit order");
    let mut transactions = std::collections::BTreeMap::new();
    let this_run = store
        .read_all(first_position_of_this_run, usize::MAX)
        .await?;
    for event in &this_run {
        let next = transactions.len() + 1;
        let transaction = event
            .metadata
            .correlation_id
            .map(|id| *transactions.entry(id).or_insert(next))
            .map_or_else(|| "-".to_owned(), |n| format!("tx{n}"));
        println!(
            "#{:<4} {:<13} v{:<2} {:<15} schema v{}  by {:<13} {:<5} {}",
            event.position,
            event.stream_id,
            event.stream_version,
            event.name,
            event.schema_version,
            event.metadata.actor.as_deref().unwrap_or("-"),
            transaction,
            event.payload.get()
        );
    }
    let history_after = store.read_all(0, usize::MAX).await?.len();
    println!(
        "\nrun {run} added {} events; the store now holds {history_after} (run again to add more)",
        this_run.len()
    );
    Ok(())
}

/// Counts this run in a stream of its own: its version is the run number.
async fn start_run<S: EventStore>(store: &S) -> Result<u64, Failure> {
    let started = NewEvent::new(
        "RunStarted",
        1,
        serde_json::value::to_raw_value(&json!({ "program": "orders" }))?,
        Metadata::default(),
    );
    let outcome = store
        .append(
            "example-runs",
            "ExampleRun",
            ExpectedVersion::Any,
            vec![started],
        )
        .await?;
    Ok(outcome.stream_version)
}

/// Runs a command and prints the events it recorded.
async fn run_command<S: EventStore>(
    orders: &Repository<Order, S>,
    command: impl Into<OrderCommand>,
    metadata: CommandContext,
) -> Result<(), Failure> {
    let command = command.into();
    let name = command.command_name();
    let executed = orders.execute_with(command, metadata).await?;
    let recorded: Vec<&str> = executed
        .events
        .iter()
        .map(|event| event.event_name())
        .collect();
    println!(
        "{name:<13} -> {:<30} {} now at version {}",
        recorded.join(", "),
        executed.stream_id,
        executed.version
    );
    Ok(())
}

/// Stores order A-1001 as an older release wrote it, unless an earlier run did:
/// `OrderPlaced` without a currency (version 1) and `ItemAdded` with `qty` (version 1,
/// whose Rust type no longer exists).
pub async fn import_legacy_order<S: EventStore>(store: &S) -> Result<(), Failure> {
    let stream_id = Repository::<Order, S>::stream_id("A-1001");
    if store.stream_version(&stream_id).await?.is_some() {
        println!("order A-1001 was imported from the older release by an earlier run");
        return Ok(());
    }
    let metadata = Metadata {
        actor: Some("legacy-import".into()),
        ..Metadata::default()
    };
    let placed = json!({
        "customer_id": "customer-1",
        "lines": [{ "sku": "tea", "quantity": 3, "unit_price": 400 }]
    });
    let added = json!({ "sku": "mug", "qty": 2, "unit_price": 1100 });
    let events = vec![
        NewEvent::new(
            "OrderPlaced",
            1,
            serde_json::value::to_raw_value(&placed)?,
            metadata.clone(),
        ),
        NewEvent::new(
            "ItemAdded",
            1,
            serde_json::value::to_raw_value(&added)?,
            metadata,
        ),
    ];
    store
        .append(&stream_id, "Order", ExpectedVersion::NoStream, events)
        .await?;
    println!(
        "imported order A-1001 as an older release wrote it: OrderPlaced v1 {placed}, ItemAdded v1 {added}"
    );
    Ok(())
}

fn actor(name: &str) -> CommandContext {
    CommandContext::new().actor(Actor::new("staff", name))
}

fn line(sku: &str, quantity: u32) -> RequestedLine {
    RequestedLine {
        sku: sku.into(),
        quantity,
    }
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn section(title: &str) {
    println!("\n== {title}");
}
