//! The raw baseline: no framework. The stored `(name, version, payload bytes)` triples are
//! decoded with `serde_json::from_slice` into the example's event structs by a
//! hand-written `match`, and applied by hand-written code mirroring `Order`'s `#[apply]`
//! methods, on a state struct of its own.

use std::collections::BTreeMap;

use factum::envelope::RecordedEvent;
use factum_example_orders::{
    Currency, ItemAdded, ItemRemoved, Line, Order, OrderCancelled, OrderConfirmed, OrderDelivered,
    OrderNoteAdded, OrderPlaced, OrderShipped, Sku, Status,
};
use serde::de::DeserializeOwned;

/// One stored event: its name, schema version and JSON payload (UTF-8 bytes, kept as a
/// `str` so that the `from_str` variant can read them without a check).
pub struct Stored {
    /// The event name.
    pub name: String,
    /// The payload's schema version.
    pub version: u32,
    /// The JSON payload.
    pub payload: Box<str>,
}

/// The same triples the factum records hold.
pub fn stored(records: &[RecordedEvent]) -> Vec<Stored> {
    records
        .iter()
        .map(|record| Stored {
            name: record.name.clone(),
            version: record.schema_version,
            payload: record.payload.get().into(),
        })
        .collect()
}

/// An order's state, written by hand.
#[derive(Debug, Default)]
pub struct RawOrder {
    pub status: Status,
    pub customer_id: String,
    pub currency: Option<Currency>,
    pub lines: BTreeMap<Sku, Line>,
}

/// What every path must agree on: the whole state of the order.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub customer_id: String,
    pub currency: Option<Currency>,
    pub lines: Vec<Line>,
}

impl From<&Order> for Outcome {
    fn from(order: &Order) -> Self {
        Self {
            status: order.status,
            customer_id: order.customer_id.clone(),
            currency: order.currency,
            lines: order.lines.values().cloned().collect(),
        }
    }
}

impl From<&RawOrder> for Outcome {
    fn from(order: &RawOrder) -> Self {
        Self {
            status: order.status,
            customer_id: order.customer_id.clone(),
            currency: order.currency,
            lines: order.lines.values().cloned().collect(),
        }
    }
}

/// Why a stored event could not be replayed.
#[derive(Debug)]
pub enum RawError {
    /// No event has this name and version.
    Unknown,
    /// The payload does not match.
    Json,
}

impl From<serde_json::Error> for RawError {
    fn from(_: serde_json::Error) -> Self {
        Self::Json
    }
}

/// How a payload is decoded.
pub trait Decode {
    fn decode<T: DeserializeOwned>(payload: &str) -> Result<T, serde_json::Error>;
}

/// `serde_json::from_slice` on the payload's bytes (the baseline: decoding from bytes,
/// which validates UTF-8 inside strings as it goes).
pub struct FromSlice;

impl Decode for FromSlice {
    #[inline]
    fn decode<T: DeserializeOwned>(payload: &str) -> Result<T, serde_json::Error> {
        serde_json::from_slice(payload.as_bytes())
    }
}

/// `serde_json::from_str` on the payload (what factum does with its `RawValue`s).
pub struct FromStr;

impl Decode for FromStr {
    #[inline]
    fn decode<T: DeserializeOwned>(payload: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// Decodes and applies every stored event, in order.
pub fn replay<D: Decode>(state: &mut RawOrder, stored: &[Stored]) -> Result<(), RawError> {
    for event in stored {
        apply::<D>(state, &event.name, event.version, &event.payload)?;
    }
    Ok(())
}

/// Decodes and applies one stored event.
#[inline]
pub fn apply<D: Decode>(
    state: &mut RawOrder,
    name: &str,
    version: u32,
    payload: &str,
) -> Result<(), RawError> {
    match (name, version) {
        ("OrderPlaced", 2) => {
            let event: OrderPlaced = D::decode(payload)?;
            state.status = Status::Open;
            state.customer_id.clone_from(&event.customer_id);
            state.currency = Some(event.currency);
            state.lines = event
                .lines
                .iter()
                .map(|line| (line.sku.clone(), line.clone()))
                .collect();
        }
        ("ItemAdded", 2) => {
            let event: ItemAdded = D::decode(payload)?;
            state
                .lines
                .entry(event.sku.clone())
                .and_modify(|line| line.quantity += event.quantity)
                .or_insert_with(|| Line {
                    sku: event.sku.clone(),
                    quantity: event.quantity,
                    unit_price: event.unit_price,
                });
        }
        ("ItemRemoved", 1) => {
            let event: ItemRemoved = D::decode(payload)?;
            state.lines.remove(&event.sku);
        }
        ("OrderConfirmed", 1) => {
            let _: OrderConfirmed = D::decode(payload)?;
            state.status = Status::Confirmed;
        }
        ("OrderShipped", 1) => {
            let _: OrderShipped = D::decode(payload)?;
            state.status = Status::Shipped;
        }
        ("OrderDelivered", 1) => {
            let _: OrderDelivered = D::decode(payload)?;
            state.status = Status::Delivered;
        }
        ("OrderCancelled", 1) => {
            let _: OrderCancelled = D::decode(payload)?;
            state.status = Status::Cancelled;
        }
        // A note changes no state, but is decoded (validated) like every event.
        ("OrderNoteAdded", 1) => {
            let _: OrderNoteAdded = D::decode(payload)?;
        }
        _ => return Err(RawError::Unknown),
    }
    Ok(())
}
