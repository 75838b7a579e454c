//! The shop the process-store checks run: orders, a warehouse, payments and a carrier,
//! and the fulfilment saga between them (reserve the stock, take the payment, book the
//! carrier, ship), each step with the command that undoes it.
//!
//! Every aggregate treats a repeated command as a no-op (reserving again for an order
//! that holds a reservation records nothing, ...), as the process module asks of the
//! targets of a saga, so "each step taken once" is read off the events: one
//! `StockReserved` per order, never two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::envelope::RecordedEvent;
use crate::process::{
    DispatchContext, DispatchError, HandlerError, ProcessManager, Reaction, Route, aggregate_id_of,
    execute_once,
};
use crate::repository::{Repository, decode_record};
use crate::store::EventStore;

/// The card number a payment is declined for.
pub const DECLINED_CARD: &str = "declined";
/// No carrier delivers to an address starting with this.
pub const NOWHERE: &str = "nowhere";

/// An order was confirmed: the fulfilment starts.
#[crate::event(name = "ConformanceOrderConfirmed", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderConfirmed {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The card to charge.
    pub card: String,
    /// Where to ship.
    pub address: String,
}

/// The order was shipped.
#[crate::event(name = "ConformanceOrderShipped", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderShipped {}

/// The order was cancelled.
#[crate::event(name = "ConformanceOrderCancelled", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCancelled {}

/// The events of a [`ShopOrder`].
#[derive(crate::Events, Debug, Clone, PartialEq)]
pub enum ShopOrderEvent {
    /// See [`OrderConfirmed`].
    Confirmed(OrderConfirmed),
    /// See [`OrderShipped`].
    Shipped(OrderShipped),
    /// See [`OrderCancelled`].
    Cancelled(OrderCancelled),
}

/// Confirms an order.
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The card to charge.
    pub card: String,
    /// Where to ship.
    pub address: String,
}

/// Ships an order (again: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct ShipOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// Cancels an order (again: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOrder {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// The commands of a [`ShopOrder`].
#[derive(crate::Commands, Debug, Clone, PartialEq)]
pub enum ShopOrderCommand {
    /// See [`ConfirmOrder`].
    Confirm(ConfirmOrder),
    /// See [`ShipOrder`].
    Ship(ShipOrder),
    /// See [`CancelOrder`].
    Cancel(CancelOrder),
}

/// Why the shop refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    /// The order was confirmed already.
    #[error("the order was confirmed already")]
    AlreadyConfirmed,
    /// A cancelled order cannot ship, a shipped one cannot be cancelled.
    #[error("the order is {0}")]
    Closed(&'static str),
    /// Not enough stock.
    #[error("out of stock: {available} available, {requested} requested")]
    OutOfStock {
        /// Asked for.
        requested: u32,
        /// Left.
        available: u32,
    },
    /// The card was declined.
    #[error("the card was declined")]
    Declined,
    /// No carrier goes there.
    #[error("no carrier delivers to `{0}`")]
    Undeliverable(String),
}

/// An order: confirmed, then shipped or cancelled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShopOrder {
    /// Confirmed.
    pub confirmed: bool,
    /// Shipped.
    pub shipped: bool,
    /// Cancelled.
    pub cancelled: bool,
}

#[crate::aggregate(name = "ConformanceOrder", events = ShopOrderEvent, commands = ShopOrderCommand, error = ShopError)]
impl ShopOrder {
    #[handle]
    fn confirm(&self, command: ConfirmOrder) -> Result<OrderConfirmed, ShopError> {
        if self.confirmed {
            return Err(ShopError::AlreadyConfirmed);
        }
        Ok(OrderConfirmed {
            sku: command.sku,
            quantity: command.quantity,
            card: command.card,
            address: command.address,
        })
    }

    #[handle]
    fn ship(&self, _: ShipOrder) -> Result<Option<OrderShipped>, ShopError> {
        if self.cancelled {
            return Err(ShopError::Closed("cancelled"));
        }
        Ok((!self.shipped).then_some(OrderShipped {}))
    }

    #[handle]
    fn cancel(&self, _: CancelOrder) -> Result<Option<OrderCancelled>, ShopError> {
        if self.shipped {
            return Err(ShopError::Closed("shipped"));
        }
        Ok((!self.cancelled).then_some(OrderCancelled {}))
    }

    #[apply]
    fn confirmed(&mut self, _: &OrderConfirmed) {
        self.confirmed = true;
    }

    #[apply]
    fn shipped(&mut self, _: &OrderShipped) {
        self.shipped = true;
    }

    #[apply]
    fn cancelled(&mut self, _: &OrderCancelled) {
        self.cancelled = true;
    }
}

/// Stock arrived.
#[crate::event(name = "ConformanceStockReceived", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct StockReceived {
    /// How many.
    pub quantity: u32,
}

/// Stock was set aside for an order.
#[crate::event(name = "ConformanceStockReserved", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct StockReserved {
    /// The order.
    pub order_id: String,
    /// How many.
    pub quantity: u32,
}

/// An order's reservation went back to the stock.
#[crate::event(name = "ConformanceStockReleased", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct StockReleased {
    /// The order.
    pub order_id: String,
    /// How many.
    pub quantity: u32,
}

/// The events of a [`Warehouse`].
#[derive(crate::Events, Debug, Clone, PartialEq)]
pub enum WarehouseEvent {
    /// See [`StockReceived`].
    Received(StockReceived),
    /// See [`StockReserved`].
    Reserved(StockReserved),
    /// See [`StockReleased`].
    Released(StockReleased),
}

/// Receives stock of a product.
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveStock {
    /// The product.
    #[aggregate_id]
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// Sets stock aside for an order (again: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveStock {
    /// The product.
    #[aggregate_id]
    pub sku: String,
    /// The order.
    pub order_id: String,
    /// How many.
    pub quantity: u32,
}

/// Gives an order's reservation back (without one: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseStock {
    /// The product.
    #[aggregate_id]
    pub sku: String,
    /// The order.
    pub order_id: String,
}

/// The commands of a [`Warehouse`].
#[derive(crate::Commands, Debug, Clone, PartialEq)]
pub enum WarehouseCommand {
    /// See [`ReceiveStock`].
    Receive(ReceiveStock),
    /// See [`ReserveStock`].
    Reserve(ReserveStock),
    /// See [`ReleaseStock`].
    Release(ReleaseStock),
}

/// One product's stock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Warehouse {
    /// Not reserved.
    pub available: u32,
    /// Held per order (0 once released).
    pub reservations: BTreeMap<String, u32>,
}

#[crate::aggregate(name = "ConformanceWarehouse", events = WarehouseEvent, commands = WarehouseCommand, error = ShopError)]
impl Warehouse {
    #[handle]
    fn receive(&self, command: ReceiveStock) -> Result<StockReceived, ShopError> {
        Ok(StockReceived {
            quantity: command.quantity,
        })
    }

    #[handle]
    fn reserve(&self, command: ReserveStock) -> Result<Option<StockReserved>, ShopError> {
        if self.reservations.contains_key(&command.order_id) {
            return Ok(None);
        }
        if command.quantity > self.available {
            return Err(ShopError::OutOfStock {
                requested: command.quantity,
                available: self.available,
            });
        }
        Ok(Some(StockReserved {
            order_id: command.order_id,
            quantity: command.quantity,
        }))
    }

    #[handle]
    fn release(&self, command: ReleaseStock) -> Result<Option<StockReleased>, ShopError> {
        Ok(match self.reservations.get(&command.order_id) {
            Some(&quantity) if quantity > 0 => Some(StockReleased {
                order_id: command.order_id,
                quantity,
            }),
            _ => None,
        })
    }

    #[apply]
    fn received(&mut self, event: &StockReceived) {
        self.available += event.quantity;
    }

    #[apply]
    fn reserved(&mut self, event: &StockReserved) {
        self.available -= event.quantity;
        self.reservations
            .insert(event.order_id.clone(), event.quantity);
    }

    #[apply]
    fn released(&mut self, event: &StockReleased) {
        self.available += event.quantity;
        self.reservations.insert(event.order_id.clone(), 0);
    }
}

/// A payment was taken.
#[crate::event(name = "ConformancePaymentTaken", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentTaken {
    /// The order.
    pub order_id: String,
}

/// A payment was refunded.
#[crate::event(name = "ConformancePaymentRefunded", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
}

/// The events of a [`Payment`].
#[derive(crate::Events, Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    /// See [`PaymentTaken`].
    Taken(PaymentTaken),
    /// See [`PaymentRefunded`].
    Refunded(PaymentRefunded),
}

/// Charges an order's card (again: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct TakePayment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// The card.
    pub card: String,
}

/// Refunds an order's payment (without one: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct RefundPayment {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// The commands of a [`Payment`].
#[derive(crate::Commands, Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    /// See [`TakePayment`].
    Take(TakePayment),
    /// See [`RefundPayment`].
    Refund(RefundPayment),
}

/// One order's payment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payment {
    /// Taken.
    pub taken: bool,
    /// Refunded.
    pub refunded: bool,
}

#[crate::aggregate(name = "ConformancePayment", events = PaymentEvent, commands = PaymentCommand, error = ShopError)]
impl Payment {
    #[handle]
    fn take(&self, command: TakePayment) -> Result<Option<PaymentTaken>, ShopError> {
        if self.taken {
            return Ok(None);
        }
        if command.card == DECLINED_CARD {
            return Err(ShopError::Declined);
        }
        Ok(Some(PaymentTaken {
            order_id: command.order_id,
        }))
    }

    #[handle]
    fn refund(&self, command: RefundPayment) -> Result<Option<PaymentRefunded>, ShopError> {
        Ok((self.taken && !self.refunded).then_some(PaymentRefunded {
            order_id: command.order_id,
        }))
    }

    #[apply]
    fn taken(&mut self, _: &PaymentTaken) {
        self.taken = true;
    }

    #[apply]
    fn refunded(&mut self, _: &PaymentRefunded) {
        self.refunded = true;
    }
}

/// A carrier was booked.
#[crate::event(name = "ConformanceCarrierBooked", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierBooked {
    /// The order.
    pub order_id: String,
}

/// A carrier's booking was cancelled.
#[crate::event(name = "ConformanceBookingCancelled", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct BookingCancelled {
    /// The order.
    pub order_id: String,
}

/// The events of a [`Shipment`].
#[derive(crate::Events, Debug, Clone, PartialEq)]
pub enum ShipmentEvent {
    /// See [`CarrierBooked`].
    Booked(CarrierBooked),
    /// See [`BookingCancelled`].
    Cancelled(BookingCancelled),
}

/// Books a carrier for an order (again: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct BookCarrier {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
    /// Where to.
    pub address: String,
}

/// Cancels an order's booking (without one: a no-op).
#[crate::command]
#[derive(Debug, Clone, PartialEq)]
pub struct CancelBooking {
    /// The order.
    #[aggregate_id]
    pub order_id: String,
}

/// The commands of a [`Shipment`].
#[derive(crate::Commands, Debug, Clone, PartialEq)]
pub enum ShipmentCommand {
    /// See [`BookCarrier`].
    Book(BookCarrier),
    /// See [`CancelBooking`].
    Cancel(CancelBooking),
}

/// One order's shipment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shipment {
    /// Booked.
    pub booked: bool,
    /// Cancelled.
    pub cancelled: bool,
}

#[crate::aggregate(name = "ConformanceShipment", events = ShipmentEvent, commands = ShipmentCommand, error = ShopError)]
impl Shipment {
    #[handle]
    fn book(&self, command: BookCarrier) -> Result<Option<CarrierBooked>, ShopError> {
        if self.booked {
            return Ok(None);
        }
        if command.address.starts_with(NOWHERE) {
            return Err(ShopError::Undeliverable(command.address));
        }
        Ok(Some(CarrierBooked {
            order_id: command.order_id,
        }))
    }

    #[handle]
    fn cancel(&self, command: CancelBooking) -> Result<Option<BookingCancelled>, ShopError> {
        Ok(
            (self.booked && !self.cancelled).then_some(BookingCancelled {
                order_id: command.order_id,
            }),
        )
    }

    #[apply]
    fn booked(&mut self, _: &CarrierBooked) {
        self.booked = true;
    }

    #[apply]
    fn cancelled(&mut self, _: &BookingCancelled) {
        self.cancelled = true;
    }
}

/// What the fulfilment dispatches, steps and compensations alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShopCommand {
    /// Step 1.
    Reserve(ReserveStock),
    /// Undoes step 1.
    Release(ReleaseStock),
    /// Step 2.
    Pay(TakePayment),
    /// Undoes step 2.
    Refund(RefundPayment),
    /// Step 3.
    Book(BookCarrier),
    /// Undoes step 3.
    CancelBooking(CancelBooking),
    /// The last step.
    Ship(ShipOrder),
    /// Undoes the confirmation.
    Cancel(CancelOrder),
}

/// One order's fulfilment between events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FulfilmentState {
    /// The order.
    pub order_id: String,
    /// Where to ship.
    pub address: String,
    /// Why a step was refused, as the manager was told.
    pub refused: Option<String>,
}

/// Names a fulfilment manager: each check runs its own, so checks sharing a read model
/// (a PostgreSQL catalog) never see each other's instances.
pub trait Lane: Send + Sync + 'static {
    /// The manager's name.
    const NAME: &'static str;
}

/// The fulfilment saga: on a confirmation, reserve the stock and take the payment (the
/// order cancelled if either is refused); once paid, book the carrier; once booked,
/// ship and complete. A refused step undoes the steps before it in reverse.
///
/// `pause` is slept after each accepted command, before its outcome is recorded: a kill
/// then lands between the two (see `restart_after_kill`).
pub struct Fulfilment<L, S> {
    orders: Repository<ShopOrder, S>,
    warehouse: Repository<Warehouse, S>,
    payments: Repository<Payment, S>,
    shipments: Repository<Shipment, S>,
    pause: std::time::Duration,
    lane: std::marker::PhantomData<fn() -> L>,
}

impl<L, S: EventStore + Clone> Fulfilment<L, S> {
    /// A fulfilment writing to `store`.
    pub fn new(store: S) -> Self {
        Self {
            orders: Repository::new(store.clone()),
            warehouse: Repository::new(store.clone()),
            payments: Repository::new(store.clone()),
            shipments: Repository::new(store),
            pause: std::time::Duration::ZERO,
            lane: std::marker::PhantomData,
        }
    }

    /// Sleeps `pause` after each accepted command, before its outcome is recorded.
    pub fn pausing(mut self, pause: std::time::Duration) -> Self {
        self.pause = pause;
        self
    }
}

impl<L: Lane, S: EventStore + Clone + 'static> ProcessManager for Fulfilment<L, S> {
    const NAME: &'static str = L::NAME;
    const EVENTS: &'static [&'static str] = &[
        "ConformanceOrderConfirmed",
        "ConformancePaymentTaken",
        "ConformanceCarrierBooked",
    ];

    type State = FulfilmentState;
    type Command = ShopCommand;

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        Ok(match event.name.as_str() {
            "ConformanceOrderConfirmed" => match aggregate_id_of::<ShopOrder>(event) {
                Some(order_id) => Route::Start(order_id.to_owned()),
                None => Route::Ignore,
            },
            "ConformancePaymentTaken" => match decode_record::<PaymentEvent>(event)? {
                PaymentEvent::Taken(taken) => Route::Continue(taken.order_id),
                PaymentEvent::Refunded(_) => Route::Ignore,
            },
            "ConformanceCarrierBooked" => match decode_record::<ShipmentEvent>(event)? {
                ShipmentEvent::Booked(booked) => Route::Continue(booked.order_id),
                ShipmentEvent::Cancelled(_) => Route::Ignore,
            },
            _ => Route::Ignore,
        })
    }

    async fn handle(
        &self,
        state: &mut FulfilmentState,
        event: &RecordedEvent,
    ) -> Result<Reaction<ShopCommand>, HandlerError> {
        Ok(match event.name.as_str() {
            "ConformanceOrderConfirmed" => {
                let Some(order_id) = aggregate_id_of::<ShopOrder>(event) else {
                    return Ok(Reaction::none());
                };
                let ShopOrderEvent::Confirmed(confirmed) = decode_record::<ShopOrderEvent>(event)?
                else {
                    return Ok(Reaction::none());
                };
                state.order_id = order_id.to_owned();
                state.address = confirmed.address;
                let order_id = state.order_id.clone();
                Reaction::none()
                    .on_failure(ShopCommand::Cancel(CancelOrder {
                        order_id: order_id.clone(),
                    }))
                    .step(
                        ShopCommand::Reserve(ReserveStock {
                            sku: confirmed.sku.clone(),
                            order_id: order_id.clone(),
                            quantity: confirmed.quantity,
                        }),
                        ShopCommand::Release(ReleaseStock {
                            sku: confirmed.sku,
                            order_id: order_id.clone(),
                        }),
                    )
                    .step(
                        ShopCommand::Pay(TakePayment {
                            order_id: order_id.clone(),
                            card: confirmed.card,
                        }),
                        ShopCommand::Refund(RefundPayment { order_id }),
                    )
            }
            "ConformancePaymentTaken" => Reaction::none().step(
                ShopCommand::Book(BookCarrier {
                    order_id: state.order_id.clone(),
                    address: state.address.clone(),
                }),
                ShopCommand::CancelBooking(CancelBooking {
                    order_id: state.order_id.clone(),
                }),
            ),
            "ConformanceCarrierBooked" => Reaction::none()
                .dispatch(ShopCommand::Ship(ShipOrder {
                    order_id: state.order_id.clone(),
                }))
                .complete(),
            _ => Reaction::none(),
        })
    }

    async fn dispatch(
        &self,
        command: &ShopCommand,
        context: &DispatchContext,
    ) -> Result<(), DispatchError> {
        match command.clone() {
            ShopCommand::Reserve(command) => execute_once(&self.warehouse, command, context).await,
            ShopCommand::Release(command) => execute_once(&self.warehouse, command, context).await,
            ShopCommand::Pay(command) => execute_once(&self.payments, command, context).await,
            ShopCommand::Refund(command) => execute_once(&self.payments, command, context).await,
            ShopCommand::Book(command) => execute_once(&self.shipments, command, context).await,
            ShopCommand::CancelBooking(command) => {
                execute_once(&self.shipments, command, context).await
            }
            ShopCommand::Ship(command) => execute_once(&self.orders, command, context).await,
            ShopCommand::Cancel(command) => execute_once(&self.orders, command, context).await,
        }?;
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        Ok(())
    }

    fn rejected(&self, state: &mut FulfilmentState, _: &ShopCommand, reason: &str) {
        state.refused = Some(reason.to_owned());
    }
}
