//! The main job: the order lifecycle end to end, printed as it happens.
//!
//! Runs on the in-memory store. It first stores two orders the way an older release
//! wrote them (`OrderPlaced` version 1, `ItemAdded` version 1) and shows them replayed
//! into today's shapes; then it runs the whole lifecycle of new orders, the shop's
//! invariants refusing bad commands, and a concurrent write caught and retried.

use std::process::ExitCode;

use factum::prelude::*;
use factum_example_orders::{
    AddItem, AddNote, CancelOrder, Catalog, ConfirmOrder, Currency, DeliverOrder, Order,
    OrderCommand, PlaceOrder, RemoveItem, RequestedLine, ShipOrder,
};
use serde_json::json;

type Orders = Repository<Order, MemoryStore>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&*error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let catalog = Catalog::new([("tea", 450), ("mug", 1200), ("kettle", 3900)]);
    let orders = Orders::with_services(store.clone(), catalog);

    section("1. Orders stored by an older release are read in today's shape");
    store_legacy_order(&store).await?;
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
    // Deciding on the upcast state writes today's version next to the old ones.
    run_command(
        &orders,
        ConfirmOrder {
            order_id: "A-1001".into(),
        },
        actor("support"),
    )
    .await?;

    section("2. The lifecycle of a new order");
    let id = "A-1002";
    let steps: Vec<OrderCommand> = vec![
        PlaceOrder {
            order_id: id.into(),
            customer_id: "customer-7".into(),
            lines: vec![line("tea", 2), line("mug", 1)],
            currency: Currency::Eur,
        }
        .into(),
        AddItem {
            order_id: id.into(),
            line: line("kettle", 1),
        }
        .into(),
        RemoveItem {
            order_id: id.into(),
            sku: "mug".into(),
        }
        .into(),
        AddNote {
            order_id: id.into(),
            text: "gift wrap, please".into(),
        }
        .into(),
        ConfirmOrder {
            order_id: id.into(),
        }
        .into(),
        ShipOrder {
            order_id: id.into(),
            carrier: "PostNL".into(),
            tracking_code: "3SABCD1234567".into(),
        }
        .into(),
        DeliverOrder {
            order_id: id.into(),
        }
        .into(),
    ];
    // One checkout session: every command of it shares a correlation id.
    let checkout = factum::uuid::Uuid::now_v7();
    for command in steps {
        let metadata = CommandMetadata::new()
            .actor("customer-7")
            .correlation_id(checkout);
        run_command(&orders, command, metadata).await?;
    }
    let delivered = orders.load(id).await?;
    println!(
        "order {id} is {} at stream version {}, total {}",
        delivered.state.status,
        delivered.version,
        money(delivered.state.total())
    );

    section("3. The shop's invariants refuse bad commands (nothing is written)");
    let before = store.len();
    let refused: Vec<OrderCommand> = vec![
        AddItem {
            order_id: id.into(),
            line: line("tea", 1),
        }
        .into(),
        CancelOrder {
            order_id: id.into(),
            reason: "changed my mind".into(),
        }
        .into(),
        PlaceOrder {
            order_id: "A-1003".into(),
            customer_id: "customer-9".into(),
            lines: vec![line("teapot", 1)],
            currency: Currency::Usd,
        }
        .into(),
        PlaceOrder {
            order_id: "A-1003".into(),
            customer_id: "customer-9".into(),
            lines: vec![line("tea", 0)],
            currency: Currency::Usd,
        }
        .into(),
        ConfirmOrder {
            order_id: "A-9999".into(),
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
    println!("events stored before: {before}, after: {}", store.len());

    section("4. A concurrent write is caught, and a retry decides again");
    run_command(
        &orders,
        PlaceOrder {
            order_id: "A-1004".into(),
            customer_id: "customer-3".into(),
            lines: vec![line("mug", 2)],
            currency: Currency::Gbp,
        },
        actor("customer-3"),
    )
    .await?;
    let stale = orders.load("A-1004").await?;
    run_command(
        &orders,
        AddItem {
            order_id: "A-1004".into(),
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
                order_id: "A-1004".into(),
            }
            .into(),
            &Catalog::default(),
        )
        .map_err(|error| error.to_string())?;
    let event = stale_decision[0].encode()?;
    let conflict = store
        .append(
            &Orders::stream_id("A-1004"),
            "Order",
            ExpectedVersion::Exact(stale.version),
            vec![NewEvent::new(
                event.name,
                event.version,
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
                order_id: "A-1004".into(),
            },
            CommandMetadata::new().actor("customer-3"),
            RetryPolicy::attempts(3),
        )
        .await?;
    println!(
        "retrying execution confirmed A-1004 at version {} with total {}",
        retried.version,
        money(retried.state.total())
    );

    section("5. The whole log, in commit order");
    let mut correlation = std::collections::BTreeMap::new();
    for event in store.read_all(0, usize::MAX).await? {
        let correlation_id = event.metadata.correlation_id.map(|id| id.to_string());
        let next = correlation.len() + 1;
        let transaction = correlation_id
            .map(|id| *correlation.entry(id).or_insert(next))
            .map_or_else(|| "-".to_owned(), |n| format!("tx{n}"));
        println!(
            "#{:<3} {:<12} v{:<2} {:<15} schema v{}  by {:<13} {:<5} {}",
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
    Ok(())
}

/// Runs a command and prints the events it recorded.
async fn run_command(
    orders: &Orders,
    command: impl Into<OrderCommand>,
    metadata: CommandMetadata,
) -> Result<(), Box<dyn std::error::Error>> {
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

/// Stores order A-1001 as an older release wrote it: `OrderPlaced` without a currency
/// (version 1) and `ItemAdded` with `qty` (version 1, whose Rust type no longer exists).
async fn store_legacy_order(store: &MemoryStore) -> Result<(), Box<dyn std::error::Error>> {
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
    let outcome = store
        .append(
            &Orders::stream_id("A-1001"),
            "Order",
            ExpectedVersion::NoStream,
            events,
        )
        .await?;
    println!(
        "stored order A-1001 as written in 2024: OrderPlaced v1 {placed}, ItemAdded v1 {added} (stream version {})",
        outcome.stream_version
    );
    Ok(())
}

fn actor(name: &str) -> CommandMetadata {
    CommandMetadata::new().actor(name)
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
