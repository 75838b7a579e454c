//! Order fulfilment: the warehouse's inventory, payments and shipments, and the
//! [`OrderFulfilment`] process manager (saga) that drives a confirmed order through them.
//!
//! ```text
//! OrderConfirmed ─▶ ReserveInventory ─▶ InventoryReserved ─▶ TakePayment ─▶ PaymentTaken
//!   ─▶ CreateShipment ─▶ ShipmentCreated ─▶ ShipOrder ─▶ OrderShipped      (completed)
//! ```
//!
//! When a step is refused — stock short ([`InventoryError::OutOfStock`]), card declined
//! ([`PaymentError::CardDeclined`]), address unshippable
//! ([`ShipmentError::Unshippable`]) — the completed steps are undone in reverse:
//! `CancelShipment`, `RefundPayment`, `ReleaseInventory`, then `CancelOrder`
//! (compensated). Every aggregate here treats a repeated command as a no-op, so a
//! command dispatched twice after a crash acts once.

mod inventory;
mod payment;
mod saga;
mod shipment;

pub use inventory::{
    Inventory, InventoryCommand, InventoryError, InventoryEvent, InventoryReleased,
    InventoryReserved, ReceiveStock, ReleaseInventory, ReserveInventory, StockReceived,
};
pub use payment::{
    Bank, Payment, PaymentCommand, PaymentError, PaymentEvent, PaymentRefunded, PaymentTaken,
    RefundPayment, TakePayment,
};
pub use saga::{FulfilmentCommand, FulfilmentState, OrderFulfilment, Stage};
pub use shipment::{
    CancelShipment, Carrier, CreateShipment, Shipment, ShipmentCancelled, ShipmentCommand,
    ShipmentCreated, ShipmentError, ShipmentEvent,
};
