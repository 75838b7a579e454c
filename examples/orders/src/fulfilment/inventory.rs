//! The warehouse's stock: received, reserved for orders, released again.

use std::collections::BTreeMap;

use factum::prelude::*;

use crate::{RequestedLine, Sku};

/// Stock arrived at the warehouse.
#[event(name = "StockReceived")]
#[derive(Debug, Clone, PartialEq)]
pub struct StockReceived {
    /// The product.
    pub sku: Sku,
    /// How many arrived.
    pub quantity: u32,
}

/// Stock was set aside for an order.
#[event(name = "InventoryReserved")]
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryReserved {
    /// The order it is set aside for.
    pub order_id: String,
    /// What was set aside.
    pub lines: Vec<RequestedLine>,
}

/// An order's reservation was given back to the stock.
#[event(name = "InventoryReleased")]
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryReleased {
    /// The order whose reservation was released.
    pub order_id: String,
    /// What went back to the stock.
    pub lines: Vec<RequestedLine>,
}

/// Every event of a warehouse's inventory.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum InventoryEvent {
    /// See [`StockReceived`].
    Received(StockReceived),
    /// See [`InventoryReserved`].
    Reserved(InventoryReserved),
    /// See [`InventoryReleased`].
    Released(InventoryReleased),
}

/// Record stock arriving at a warehouse.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveStock {
    /// The warehouse.
    #[aggregate_id]
    pub warehouse_id: String,
    /// The product.
    pub sku: Sku,
    /// How many arrived, at least 1.
    pub quantity: u32,
}

/// Set stock aside for an order. Reserving again for the same order changes nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveInventory {
    /// The warehouse.
    #[aggregate_id]
    pub warehouse_id: String,
    /// The order.
    pub order_id: String,
    /// What to set aside.
    pub lines: Vec<RequestedLine>,
}

/// Give an order's reservation back to the stock. Without a held reservation it changes
/// nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseInventory {
    /// The warehouse.
    #[aggregate_id]
    pub warehouse_id: String,
    /// The order.
    pub order_id: String,
}

/// Every command of a warehouse's inventory.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum InventoryCommand {
    /// See [`ReceiveStock`].
    Receive(ReceiveStock),
    /// See [`ReserveInventory`].
    Reserve(ReserveInventory),
    /// See [`ReleaseInventory`].
    Release(ReleaseInventory),
}

/// Why the inventory refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Not enough of a product is available.
    #[error("out of stock: `{sku}` has {available} available, {requested} requested")]
    OutOfStock {
        /// The product.
        sku: Sku,
        /// How many were asked for.
        requested: u32,
        /// How many are available.
        available: u32,
    },
    /// Quantities start at 1.
    #[error("the quantity of `{0}` must be at least 1")]
    ZeroQuantity(Sku),
}

/// What became of an order's reservation.
#[derive(Debug, Clone, PartialEq)]
enum Reservation {
    Held(Vec<RequestedLine>),
    Released,
}

/// A warehouse's stock: what is available and what is reserved for which order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    available: BTreeMap<Sku, u32>,
    reservations: BTreeMap<String, Reservation>,
}

impl Inventory {
    /// How many of `sku` are available (not reserved).
    pub fn available(&self, sku: &str) -> u32 {
        self.available.get(sku).copied().unwrap_or(0)
    }

    /// Whether the order holds a reservation.
    pub fn holds_reservation_for(&self, order_id: &str) -> bool {
        matches!(self.reservations.get(order_id), Some(Reservation::Held(_)))
    }
}

#[aggregate(
    name = "Inventory",
    events = InventoryEvent,
    commands = InventoryCommand,
    error = InventoryError
)]
impl Inventory {
    #[handle]
    fn receive(&self, command: ReceiveStock) -> Result<StockReceived, InventoryError> {
        if command.quantity == 0 {
            return Err(InventoryError::ZeroQuantity(command.sku));
        }
        Ok(StockReceived {
            sku: command.sku,
            quantity: command.quantity,
        })
    }

    #[handle]
    fn reserve(
        &self,
        command: ReserveInventory,
    ) -> Result<Option<InventoryReserved>, InventoryError> {
        // A repeat (a redelivered command) changes nothing, whatever became of the first.
        if self.reservations.contains_key(&command.order_id) {
            return Ok(None);
        }
        let mut requested: BTreeMap<&str, u32> = BTreeMap::new();
        for line in &command.lines {
            if line.quantity == 0 {
                return Err(InventoryError::ZeroQuantity(line.sku.clone()));
            }
            *requested.entry(&line.sku).or_default() += line.quantity;
        }
        for (sku, requested) in requested {
            let available = self.available(sku);
            if available < requested {
                return Err(InventoryError::OutOfStock {
                    sku: sku.to_owned(),
                    requested,
                    available,
                });
            }
        }
        Ok(Some(InventoryReserved {
            order_id: command.order_id,
            lines: command.lines,
        }))
    }

    #[handle]
    fn release(
        &self,
        command: ReleaseInventory,
    ) -> Result<Option<InventoryReleased>, InventoryError> {
        match self.reservations.get(&command.order_id) {
            Some(Reservation::Held(lines)) => Ok(Some(InventoryReleased {
                order_id: command.order_id,
                lines: lines.clone(),
            })),
            // Nothing held (never reserved, or released already): nothing to give back.
            _ => Ok(None),
        }
    }

    #[apply]
    fn received(&mut self, event: &StockReceived) {
        *self.available.entry(event.sku.clone()).or_default() += event.quantity;
    }

    #[apply]
    fn reserved(&mut self, event: &InventoryReserved) {
        for line in &event.lines {
            let available = self.available.entry(line.sku.clone()).or_default();
            *available = available.saturating_sub(line.quantity);
        }
        self.reservations.insert(
            event.order_id.clone(),
            Reservation::Held(event.lines.clone()),
        );
    }

    #[apply]
    fn released(&mut self, event: &InventoryReleased) {
        for line in &event.lines {
            *self.available.entry(line.sku.clone()).or_default() += line.quantity;
        }
        self.reservations
            .insert(event.order_id.clone(), Reservation::Released);
    }
}
