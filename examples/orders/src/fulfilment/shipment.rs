//! Handing an order's parcel to a carrier, and calling it back.

use std::collections::BTreeSet;

use factum::prelude::*;

use crate::RequestedLine;

/// A carrier accepted an order's parcel.
#[event(name = "ShipmentCreated")]
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentCreated {
    /// The order.
    pub order_id: String,
    /// Who carries it.
    pub carrier: String,
    /// The carrier's tracking code.
    pub tracking_code: String,
}

/// An order's shipment was called off before it left.
#[event(name = "ShipmentCancelled")]
#[derive(Debug, Clone, PartialEq)]
pub struct ShipmentCancelled {
    /// The order.
    pub order_id: String,
}

/// Every event of an order's shipment.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum ShipmentEvent {
    /// See [`ShipmentCreated`].
    Created(ShipmentCreated),
    /// See [`ShipmentCancelled`].
    Cancelled(ShipmentCancelled),
}

/// Book a carrier for an order's parcel. Booking again changes nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct CreateShipment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// Whom it goes to.
    pub customer_id: String,
    /// What the parcel holds.
    pub lines: Vec<RequestedLine>,
}

/// Call off an order's shipment. Without a booked shipment it changes nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct CancelShipment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// Every command of an order's shipment.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum ShipmentCommand {
    /// See [`CreateShipment`].
    Create(CreateShipment),
    /// See [`CancelShipment`].
    Cancel(CancelShipment),
}

/// Why a shipment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    /// The carrier does not deliver to the customer's address.
    #[error("carrier `{carrier}` cannot deliver to the address of customer `{customer_id}`")]
    Unshippable {
        /// The carrier.
        carrier: String,
        /// Whose address.
        customer_id: String,
    },
}

/// The carrier, as the shipment's handlers see it: it refuses the addresses of the
/// customers it was told to (deterministically, for the example and its tests).
#[derive(Debug, Clone)]
pub struct Carrier {
    name: String,
    refused: BTreeSet<String>,
}

impl Default for Carrier {
    fn default() -> Self {
        Self::new("ParcelCo")
    }
}

impl Carrier {
    /// A carrier named `name` that delivers everywhere.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            refused: BTreeSet::new(),
        }
    }

    /// Refuses the address of `customer_id` from now on.
    pub fn refuse(mut self, customer_id: impl Into<String>) -> Self {
        self.refused.insert(customer_id.into());
        self
    }

    /// The carrier's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where an order's shipment stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Shipment {
    /// Not booked.
    #[default]
    None,
    /// Booked with a carrier.
    Created,
    /// Called off.
    Cancelled,
}

#[aggregate(
    name = "Shipment",
    events = ShipmentEvent,
    commands = ShipmentCommand,
    error = ShipmentError,
    services = Carrier
)]
impl Shipment {
    #[handle]
    fn create(
        &self,
        command: CreateShipment,
        carrier: &Carrier,
    ) -> Result<Option<ShipmentCreated>, ShipmentError> {
        // A repeat (a redelivered command) changes nothing.
        if *self != Shipment::None {
            return Ok(None);
        }
        if carrier.refused.contains(&command.customer_id) {
            return Err(ShipmentError::Unshippable {
                carrier: carrier.name.clone(),
                customer_id: command.customer_id,
            });
        }
        Ok(Some(ShipmentCreated {
            tracking_code: format!("{}-{}", carrier.name.to_uppercase(), command.order_id),
            order_id: command.order_id,
            carrier: carrier.name.clone(),
        }))
    }

    #[handle]
    fn cancel(&self, command: CancelShipment) -> Result<Option<ShipmentCancelled>, ShipmentError> {
        match self {
            Shipment::Created => Ok(Some(ShipmentCancelled {
                order_id: command.order_id,
            })),
            Shipment::None | Shipment::Cancelled => Ok(None),
        }
    }

    #[apply]
    fn created(&mut self, _: &ShipmentCreated) {
        *self = Shipment::Created;
    }

    #[apply]
    fn cancelled(&mut self, _: &ShipmentCancelled) {
        *self = Shipment::Cancelled;
    }
}
