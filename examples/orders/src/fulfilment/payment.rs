//! Taking an order's payment, and refunding it.

use std::collections::BTreeSet;

use factum::prelude::*;

use crate::{Cents, Currency};

/// The customer's payment for an order was taken.
#[event(name = "PaymentTaken")]
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentTaken {
    /// The order paid for.
    pub order_id: String,
    /// Who paid.
    pub customer_id: String,
    /// How much.
    pub amount: Cents,
    /// In which currency.
    pub currency: Currency,
}

/// An order's payment was paid back to the customer.
#[event(name = "PaymentRefunded")]
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// How much was paid back.
    pub amount: Cents,
    /// In which currency.
    pub currency: Currency,
}

/// Every event of an order's payment.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    /// See [`PaymentTaken`].
    Taken(PaymentTaken),
    /// See [`PaymentRefunded`].
    Refunded(PaymentRefunded),
}

/// Take the payment for an order. Taking it again changes nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct TakePayment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// How much.
    pub amount: Cents,
    /// In which currency.
    pub currency: Currency,
}

/// Pay an order's payment back. Without a payment taken it changes nothing.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct RefundPayment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// Every command of an order's payment.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    /// See [`TakePayment`].
    Take(TakePayment),
    /// See [`RefundPayment`].
    Refund(RefundPayment),
}

/// Why a payment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The customer's bank declined the card.
    #[error("the card of customer `{customer_id}` was declined")]
    CardDeclined {
        /// Who tried to pay.
        customer_id: String,
    },
}

/// The payment provider, as the payment's handlers see it: it declines the cards of the
/// customers it was told to (deterministically, for the example and its tests).
#[derive(Debug, Clone, Default)]
pub struct Bank {
    declined: BTreeSet<String>,
}

impl Bank {
    /// A bank that accepts every card.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declines the card of `customer_id` from now on.
    pub fn decline(mut self, customer_id: impl Into<String>) -> Self {
        self.declined.insert(customer_id.into());
        self
    }

    fn declines(&self, customer_id: &str) -> bool {
        self.declined.contains(customer_id)
    }
}

/// Where an order's payment stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Payment {
    /// Nothing taken yet.
    #[default]
    None,
    /// Taken.
    Taken {
        /// How much.
        amount: Cents,
        /// In which currency.
        currency: Currency,
    },
    /// Paid back.
    Refunded,
}

#[aggregate(
    name = "Payment",
    events = PaymentEvent,
    commands = PaymentCommand,
    error = PaymentError,
    services = Bank
)]
impl Payment {
    #[handle]
    fn take(
        &self,
        command: TakePayment,
        bank: &Bank,
    ) -> Result<Option<PaymentTaken>, PaymentError> {
        // A repeat (a redelivered command) changes nothing.
        if *self != Payment::None {
            return Ok(None);
        }
        if bank.declines(&command.customer_id) {
            return Err(PaymentError::CardDeclined {
                customer_id: command.customer_id,
            });
        }
        Ok(Some(PaymentTaken {
            order_id: command.order_id,
            customer_id: command.customer_id,
            amount: command.amount,
            currency: command.currency,
        }))
    }

    #[handle]
    fn refund(&self, command: RefundPayment) -> Result<Option<PaymentRefunded>, PaymentError> {
        match self {
            Payment::Taken { amount, currency } => Ok(Some(PaymentRefunded {
                order_id: command.order_id,
                amount: *amount,
                currency: *currency,
            })),
            Payment::None | Payment::Refunded => Ok(None),
        }
    }

    #[apply]
    fn taken(&mut self, event: &PaymentTaken) {
        *self = Payment::Taken {
            amount: event.amount,
            currency: event.currency,
        };
    }

    #[apply]
    fn refunded(&mut self, _: &PaymentRefunded) {
        *self = Payment::Refunded;
    }
}
