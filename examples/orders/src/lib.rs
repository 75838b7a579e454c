//! The order lifecycle of a web shop, as a factum domain.
//!
//! An order is placed with lines priced from the catalogue, edited while open, confirmed,
//! shipped and delivered, or cancelled before it ships. `OrderPlaced` evolved: version 1
//! had no currency (the shop sold in euros only), version 2 names it. `ItemAdded`
//! version 1 was retired: its Rust type is gone, and a JSON upcast renames its `qty`
//! field to `quantity`.
#![warn(missing_docs)]

pub mod demo;

pub mod fulfilment;

use std::collections::BTreeMap;

use factum::prelude::*;
use serde_json::Value;

/// A product's stock-keeping unit.
pub type Sku = String;

/// Money in the smallest unit of its currency (cents).
pub type Cents = u64;

/// The currency of an order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Currency {
    /// Euro.
    Eur,
    /// US dollar.
    Usd,
    /// Pound sterling.
    Gbp,
}

/// One product in an order.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Line {
    /// The product.
    pub sku: Sku,
    /// How many, at least 1.
    pub quantity: u32,
    /// The price of one, from the catalogue at the time.
    pub unit_price: Cents,
}

/// A customer placed an order.
#[event(name = "OrderPlaced", version = 2, upcast_from = OrderPlacedV1)]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPlaced {
    /// Who ordered.
    pub customer_id: String,
    /// What was ordered.
    pub lines: Vec<Line>,
    /// The currency of every price of the order.
    pub currency: Currency,
}

/// A customer placed an order (before the shop sold in more than one currency).
#[event(name = "OrderPlaced", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPlacedV1 {
    /// Who ordered.
    pub customer_id: String,
    /// What was ordered.
    pub lines: Vec<Line>,
}

impl From<OrderPlacedV1> for OrderPlaced {
    /// Every order of version 1 was in euros.
    fn from(old: OrderPlacedV1) -> Self {
        Self {
            customer_id: old.customer_id,
            lines: old.lines,
            currency: Currency::Eur,
        }
    }
}

/// A product was added to an open order.
#[event(name = "ItemAdded", version = 2, upcast_json(from = 1, with = item_added_v1_to_v2))]
#[derive(Debug, Clone, PartialEq)]
pub struct ItemAdded {
    /// The added line.
    pub sku: Sku,
    /// How many were added.
    pub quantity: u32,
    /// The price of one.
    pub unit_price: Cents,
}

/// Version 1 of `ItemAdded` called the quantity `qty`; its type was removed.
fn item_added_v1_to_v2(mut payload: Value) -> Result<Value, UpcastFailed> {
    let object = payload
        .as_object_mut()
        .ok_or(UpcastFailed("not an object"))?;
    let quantity = object.remove("qty").ok_or(UpcastFailed("no field `qty`"))?;
    object.insert("quantity".to_owned(), quantity);
    Ok(payload)
}

/// An old payload that an upcast could not read.
#[derive(Debug, thiserror::Error)]
#[error("cannot upcast: {0}")]
pub struct UpcastFailed(&'static str);

/// A product was removed from an open order.
#[event(name = "ItemRemoved")]
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRemoved {
    /// The removed product.
    pub sku: Sku,
}

/// The customer confirmed the order; its lines are final.
#[event(name = "OrderConfirmed")]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderConfirmed {
    /// The total to pay.
    pub total: Cents,
}

/// The order left the warehouse.
#[event(name = "OrderShipped")]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderShipped {
    /// Who carries it.
    pub carrier: String,
    /// The carrier's tracking code.
    pub tracking_code: String,
}

/// The order reached the customer.
#[event(name = "OrderDelivered")]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDelivered {}

/// The order was cancelled before it shipped.
#[event(name = "OrderCancelled")]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCancelled {
    /// Why.
    pub reason: String,
}

/// A support agent noted something on the order; it changes nothing the order decides on.
#[event(name = "OrderNoteAdded")]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderNoteAdded {
    /// The note.
    pub text: String,
}

/// Every event of an order.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum OrderEvent {
    /// See [`OrderPlaced`].
    Placed(OrderPlaced),
    /// See [`ItemAdded`].
    ItemAdded(ItemAdded),
    /// See [`ItemRemoved`].
    ItemRemoved(ItemRemoved),
    /// See [`OrderConfirmed`].
    Confirmed(OrderConfirmed),
    /// See [`OrderShipped`].
    Shipped(OrderShipped),
    /// See [`OrderDelivered`].
    Delivered(OrderDelivered),
    /// See [`OrderCancelled`].
    Cancelled(OrderCancelled),
    /// See [`OrderNoteAdded`].
    NoteAdded(OrderNoteAdded),
}

/// A line as a customer asks for it; the price comes from the catalogue.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct RequestedLine {
    /// The product.
    pub sku: Sku,
    /// How many.
    pub quantity: u32,
}

/// Place a new order.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    /// The new order's id.
    #[aggregate_id]
    pub order_id: String,
    /// Who orders.
    pub customer_id: String,
    /// What is ordered.
    pub lines: Vec<RequestedLine>,
    /// The currency to pay in.
    pub currency: Currency,
}

/// Add a product to an open order.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct AddItem {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// The product and how many.
    pub line: RequestedLine,
}

/// Remove a product from an open order.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveItem {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// The product.
    pub sku: Sku,
}

/// Confirm an open order; its lines become final.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// Hand a confirmed order to a carrier.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ShipOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// Who carries it.
    pub carrier: String,
    /// The carrier's tracking code.
    pub tracking_code: String,
}

/// Record that a shipped order arrived.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// Cancel an order that has not shipped.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// Why.
    pub reason: String,
}

/// Note something on an order, whatever its state.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct AddNote {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// The note.
    pub text: String,
}

/// Every command of an order.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum OrderCommand {
    /// See [`PlaceOrder`].
    Place(PlaceOrder),
    /// See [`AddItem`].
    AddItem(AddItem),
    /// See [`RemoveItem`].
    RemoveItem(RemoveItem),
    /// See [`ConfirmOrder`].
    Confirm(ConfirmOrder),
    /// See [`ShipOrder`].
    Ship(ShipOrder),
    /// See [`DeliverOrder`].
    Deliver(DeliverOrder),
    /// See [`CancelOrder`].
    Cancel(CancelOrder),
    /// See [`AddNote`].
    AddNote(AddNote),
}

/// Why an order refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order was already placed.
    #[error("the order was already placed")]
    AlreadyPlaced,
    /// The order was never placed.
    #[error("no such order")]
    NotPlaced,
    /// An order needs at least one line.
    #[error("an order needs at least one line")]
    NoLines,
    /// Quantities start at 1.
    #[error("the quantity of `{0}` must be at least 1")]
    ZeroQuantity(Sku),
    /// The catalogue has no such product.
    #[error("the catalogue has no product `{0}`")]
    UnknownProduct(Sku),
    /// The order has no line of that product.
    #[error("the order has no line `{0}`")]
    NoSuchLine(Sku),
    /// The order's lines are final (confirmed, shipped, delivered or cancelled).
    #[error("the order is {0} and can no longer change its lines")]
    NotOpen(Status),
    /// The command does not fit the order's status.
    #[error("cannot {action} an order that is {status}")]
    WrongStatus {
        /// What was asked.
        action: &'static str,
        /// Where the order stands.
        status: Status,
    },
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Not placed yet.
    #[default]
    New,
    /// Placed, lines may change.
    Open,
    /// Lines are final, awaiting shipment.
    Confirmed,
    /// With the carrier.
    Shipped,
    /// Arrived.
    Delivered,
    /// Cancelled.
    Cancelled,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::New => "not placed",
            Self::Open => "open",
            Self::Confirmed => "confirmed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        })
    }
}

/// The prices the shop sells at: the outside lookup the order's handlers use.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    prices: BTreeMap<Sku, Cents>,
}

impl Catalog {
    /// A catalogue of `(sku, unit price)` pairs.
    pub fn new<S: Into<Sku>>(prices: impl IntoIterator<Item = (S, Cents)>) -> Self {
        Self {
            prices: prices
                .into_iter()
                .map(|(sku, price)| (sku.into(), price))
                .collect(),
        }
    }

    fn price(&self, line: &RequestedLine) -> Result<Line, OrderError> {
        if line.quantity == 0 {
            return Err(OrderError::ZeroQuantity(line.sku.clone()));
        }
        let unit_price = *self
            .prices
            .get(&line.sku)
            .ok_or_else(|| OrderError::UnknownProduct(line.sku.clone()))?;
        Ok(Line {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price,
        })
    }
}

/// An order's state: only what its decisions need. Snapshots of it have schema version 1.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// Where the order stands.
    pub status: Status,
    /// Who ordered.
    pub customer_id: String,
    /// The currency of its prices.
    pub currency: Option<Currency>,
    /// Its lines, one per product.
    pub lines: BTreeMap<Sku, Line>,
}

impl Order {
    /// The sum of all lines.
    pub fn total(&self) -> Cents {
        self.lines
            .values()
            .map(|line| line.unit_price * u64::from(line.quantity))
            .sum()
    }

    fn require_open(&self) -> Result<(), OrderError> {
        match self.status {
            Status::Open => Ok(()),
            Status::New => Err(OrderError::NotPlaced),
            status => Err(OrderError::NotOpen(status)),
        }
    }

    fn require(&self, expected: Status, action: &'static str) -> Result<(), OrderError> {
        match self.status {
            Status::New => Err(OrderError::NotPlaced),
            status if status == expected => Ok(()),
            status => Err(OrderError::WrongStatus { action, status }),
        }
    }
}

#[aggregate(
    name = "Order",
    events = OrderEvent,
    commands = OrderCommand,
    error = OrderError,
    services = Catalog,
    ignore_events = [OrderNoteAdded],
    snapshot = 1
)]
impl Order {
    #[handle]
    fn place(&self, command: PlaceOrder, catalog: &Catalog) -> Result<OrderPlaced, OrderError> {
        if self.status != Status::New {
            return Err(OrderError::AlreadyPlaced);
        }
        if command.lines.is_empty() {
            return Err(OrderError::NoLines);
        }
        let mut lines: Vec<Line> = Vec::with_capacity(command.lines.len());
        for requested in &command.lines {
            let priced = catalog.price(requested)?;
            // Two requests for one product are one line.
            match lines.iter_mut().find(|line| line.sku == priced.sku) {
                Some(line) => line.quantity += priced.quantity,
                None => lines.push(priced),
            }
        }
        Ok(OrderPlaced {
            customer_id: command.customer_id,
            lines,
            currency: command.currency,
        })
    }

    #[handle]
    fn add_item(&self, command: AddItem, catalog: &Catalog) -> Result<ItemAdded, OrderError> {
        self.require_open()?;
        let line = catalog.price(&command.line)?;
        Ok(ItemAdded {
            sku: line.sku,
            quantity: line.quantity,
            unit_price: line.unit_price,
        })
    }

    #[handle]
    fn remove_item(&self, command: RemoveItem) -> Result<ItemRemoved, OrderError> {
        self.require_open()?;
        if !self.lines.contains_key(&command.sku) {
            return Err(OrderError::NoSuchLine(command.sku));
        }
        Ok(ItemRemoved { sku: command.sku })
    }

    #[handle]
    fn confirm(&self, _: ConfirmOrder) -> Result<OrderConfirmed, OrderError> {
        self.require_open()?;
        if self.lines.is_empty() {
            return Err(OrderError::NoLines);
        }
        Ok(OrderConfirmed {
            total: self.total(),
        })
    }

    #[handle]
    fn ship(&self, command: ShipOrder) -> Result<OrderShipped, OrderError> {
        self.require(Status::Confirmed, "ship")?;
        Ok(OrderShipped {
            carrier: command.carrier,
            tracking_code: command.tracking_code,
        })
    }

    #[handle]
    fn deliver(&self, _: DeliverOrder) -> Result<OrderDelivered, OrderError> {
        self.require(Status::Shipped, "deliver")?;
        Ok(OrderDelivered {})
    }

    #[handle]
    fn cancel(&self, command: CancelOrder) -> Result<Option<OrderCancelled>, OrderError> {
        match self.status {
            Status::New => Err(OrderError::NotPlaced),
            // Cancelling twice changes nothing: no second event.
            Status::Cancelled => Ok(None),
            Status::Open | Status::Confirmed => Ok(Some(OrderCancelled {
                reason: command.reason,
            })),
            status @ (Status::Shipped | Status::Delivered) => Err(OrderError::WrongStatus {
                action: "cancel",
                status,
            }),
        }
    }

    #[handle]
    fn add_note(&self, command: AddNote) -> Result<OrderNoteAdded, OrderError> {
        if self.status == Status::New {
            return Err(OrderError::NotPlaced);
        }
        Ok(OrderNoteAdded { text: command.text })
    }

    #[apply]
    fn placed(&mut self, event: &OrderPlaced) {
        self.status = Status::Open;
        self.customer_id.clone_from(&event.customer_id);
        self.currency = Some(event.currency);
        self.lines = event
            .lines
            .iter()
            .map(|line| (line.sku.clone(), line.clone()))
            .collect();
    }

    #[apply]
    fn item_added(&mut self, event: &ItemAdded) {
        self.lines
            .entry(event.sku.clone())
            .and_modify(|line| line.quantity += event.quantity)
            .or_insert_with(|| Line {
                sku: event.sku.clone(),
                quantity: event.quantity,
                unit_price: event.unit_price,
            });
    }

    #[apply]
    fn item_removed(&mut self, event: &ItemRemoved) {
        self.lines.remove(&event.sku);
    }

    #[apply]
    fn confirmed(&mut self, _: &OrderConfirmed) {
        self.status = Status::Confirmed;
    }

    #[apply]
    fn shipped(&mut self, _: &OrderShipped) {
        self.status = Status::Shipped;
    }

    #[apply]
    fn delivered(&mut self, _: &OrderDelivered) {
        self.status = Status::Delivered;
    }

    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.status = Status::Cancelled;
    }
}
