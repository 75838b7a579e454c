//! The order fulfilment process manager.

use factum::process::HandlerError;
use factum::process::{DispatchContext, DispatchError, ProcessManager, Reaction, Route};
use factum::process::{aggregate_id_of, execute_once};
use factum::repository::{Repository, decode_record};
use factum::store::EventStore;
use serde::{Deserialize, Serialize};

use super::inventory::{Inventory, InventoryEvent, ReleaseInventory, ReserveInventory};
use super::payment::{Bank, Payment, PaymentEvent, RefundPayment, TakePayment};
use super::shipment::{CancelShipment, Carrier, CreateShipment, Shipment, ShipmentEvent};
use crate::{CancelOrder, Catalog, Cents, Currency, Order, OrderEvent, RequestedLine, ShipOrder};

/// Every command the fulfilment dispatches, steps and compensations alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FulfilmentCommand {
    /// Step 1: set the order's stock aside.
    ReserveInventory(ReserveInventory),
    /// Undoes step 1.
    ReleaseInventory(ReleaseInventory),
    /// Step 2: take the payment.
    TakePayment(TakePayment),
    /// Undoes step 2.
    RefundPayment(RefundPayment),
    /// Step 3: book the carrier.
    CreateShipment(CreateShipment),
    /// Undoes step 3.
    CancelShipment(CancelShipment),
    /// Last step: the order is shipped.
    ShipOrder(ShipOrder),
    /// Undoes the confirmation that started the fulfilment.
    CancelOrder(CancelOrder),
}

/// How far an order's fulfilment got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Stage {
    /// Not started.
    #[default]
    New,
    /// Waiting for the stock to be reserved.
    Reserving,
    /// Waiting for the payment.
    Paying,
    /// Waiting for the carrier.
    Shipping,
    /// The order was handed to the carrier.
    Shipped,
    /// A step was refused; what was done is being undone.
    Failed,
}

/// One order's fulfilment, as persisted between events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FulfilmentState {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// What was ordered.
    pub lines: Vec<RequestedLine>,
    /// What to charge.
    pub total: Cents,
    /// In which currency.
    pub currency: Option<Currency>,
    /// How far it got.
    pub stage: Stage,
    /// The tracking code, once shipped.
    pub tracking_code: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// Fulfils confirmed orders: reserve the stock, take the payment, book the carrier, ship
/// the order. When a step is refused, the steps before it are undone in reverse: the
/// payment refunded, the stock released, and the order cancelled.
///
/// One instance per order, keyed by the order id; every command carries the correlation
/// id of the order's confirmation.
pub struct OrderFulfilment<S> {
    orders: Repository<Order, S>,
    inventory: Repository<Inventory, S>,
    payments: Repository<Payment, S>,
    shipments: Repository<Shipment, S>,
    warehouse_id: String,
}

impl<S: EventStore + Clone> OrderFulfilment<S> {
    /// A fulfilment writing to `store`, reserving in the warehouse `warehouse_id`, paying
    /// through `bank` and shipping with `carrier`.
    pub fn new(store: S, warehouse_id: impl Into<String>, bank: Bank, carrier: Carrier) -> Self {
        Self {
            // Shipping and cancelling price nothing: the catalogue is not consulted.
            orders: Repository::with_services(store.clone(), Catalog::default()),
            inventory: Repository::new(store.clone()),
            payments: Repository::with_services(store.clone(), bank),
            shipments: Repository::with_services(store, carrier),
            warehouse_id: warehouse_id.into(),
        }
    }
}

impl<S> std::fmt::Debug for OrderFulfilment<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderFulfilment")
            .field("warehouse_id", &self.warehouse_id)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + Clone + 'static> ProcessManager for OrderFulfilment<S> {
    const NAME: &'static str = "order_fulfilment";
    const EVENTS: &'static [&'static str] = &[
        "OrderConfirmed",
        "InventoryReserved",
        "PaymentTaken",
        "ShipmentCreated",
    ];

    type State = FulfilmentState;
    type Command = FulfilmentCommand;

    fn route(&self, event: &factum::envelope::RecordedEvent) -> Result<Route, HandlerError> {
        Ok(match event.name.as_str() {
            "OrderConfirmed" => match aggregate_id_of::<Order>(event) {
                Some(order_id) => Route::Start(order_id.to_owned()),
                None => Route::Ignore,
            },
            "InventoryReserved" => match decode_record::<InventoryEvent>(event)? {
                InventoryEvent::Reserved(reserved) => Route::Continue(reserved.order_id),
                _ => Route::Ignore,
            },
            "PaymentTaken" => match decode_record::<PaymentEvent>(event)? {
                PaymentEvent::Taken(taken) => Route::Continue(taken.order_id),
                _ => Route::Ignore,
            },
            "ShipmentCreated" => match decode_record::<ShipmentEvent>(event)? {
                ShipmentEvent::Created(created) => Route::Continue(created.order_id),
                _ => Route::Ignore,
            },
            _ => Route::Ignore,
        })
    }

    async fn handle(
        &self,
        state: &mut FulfilmentState,
        event: &factum::envelope::RecordedEvent,
    ) -> Result<Reaction<FulfilmentCommand>, HandlerError> {
        let warehouse_id = self.warehouse_id.clone();
        match event.name.as_str() {
            "OrderConfirmed" if state.stage == Stage::New => {
                let Some(order_id) = aggregate_id_of::<Order>(event) else {
                    return Ok(Reaction::none());
                };
                // The order as it was confirmed, whatever happened to it since.
                let order = self
                    .orders
                    .load_at_version(order_id, event.stream_version)
                    .await?
                    .state;
                if let OrderEvent::Confirmed(confirmed) = decode_record::<OrderEvent>(event)? {
                    state.total = confirmed.total;
                }
                state.order_id = order_id.to_owned();
                state.customer_id = order.customer_id.clone();
                state.currency = order.currency;
                state.lines = order
                    .lines
                    .values()
                    .map(|line| RequestedLine {
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                    })
                    .collect();
                state.stage = Stage::Reserving;
                Ok(Reaction::none()
                    .on_failure(FulfilmentCommand::CancelOrder(CancelOrder {
                        order_id: state.order_id.clone(),
                        reason: "fulfilment failed".into(),
                    }))
                    .step(
                        FulfilmentCommand::ReserveInventory(ReserveInventory {
                            warehouse_id: warehouse_id.clone(),
                            order_id: state.order_id.clone(),
                            lines: state.lines.clone(),
                        }),
                        FulfilmentCommand::ReleaseInventory(ReleaseInventory {
                            warehouse_id,
                            order_id: state.order_id.clone(),
                        }),
                    ))
            }
            "InventoryReserved" if state.stage == Stage::Reserving => {
                state.stage = Stage::Paying;
                Ok(Reaction::none().step(
                    FulfilmentCommand::TakePayment(TakePayment {
                        order_id: state.order_id.clone(),
                        customer_id: state.customer_id.clone(),
                        amount: state.total,
                        currency: state.currency.unwrap_or(Currency::Eur),
                    }),
                    FulfilmentCommand::RefundPayment(RefundPayment {
                        order_id: state.order_id.clone(),
                    }),
                ))
            }
            "PaymentTaken" if state.stage == Stage::Paying => {
                state.stage = Stage::Shipping;
                Ok(Reaction::none().step(
                    FulfilmentCommand::CreateShipment(CreateShipment {
                        order_id: state.order_id.clone(),
                        customer_id: state.customer_id.clone(),
                        lines: state.lines.clone(),
                    }),
                    FulfilmentCommand::CancelShipment(CancelShipment {
                        order_id: state.order_id.clone(),
                    }),
                ))
            }
            "ShipmentCreated" if state.stage == Stage::Shipping => {
                let ShipmentEvent::Created(created) = decode_record::<ShipmentEvent>(event)? else {
                    return Ok(Reaction::none());
                };
                state.stage = Stage::Shipped;
                state.tracking_code = Some(created.tracking_code.clone());
                Ok(Reaction::none()
                    .dispatch(FulfilmentCommand::ShipOrder(ShipOrder {
                        order_id: state.order_id.clone(),
                        carrier: created.carrier,
                        tracking_code: created.tracking_code,
                    }))
                    .complete())
            }
            // A repeated or late event (the stage moved on): nothing more to do.
            _ => Ok(Reaction::none()),
        }
    }

    async fn dispatch(
        &self,
        command: &FulfilmentCommand,
        context: &DispatchContext,
    ) -> Result<(), DispatchError> {
        match command.clone() {
            FulfilmentCommand::ReserveInventory(command) => {
                execute_once(&self.inventory, command, context).await
            }
            FulfilmentCommand::ReleaseInventory(command) => {
                execute_once(&self.inventory, command, context).await
            }
            FulfilmentCommand::TakePayment(command) => {
                execute_once(&self.payments, command, context).await
            }
            FulfilmentCommand::RefundPayment(command) => {
                execute_once(&self.payments, command, context).await
            }
            FulfilmentCommand::CreateShipment(command) => {
                execute_once(&self.shipments, command, context).await
            }
            FulfilmentCommand::CancelShipment(command) => {
                execute_once(&self.shipments, command, context).await
            }
            FulfilmentCommand::ShipOrder(command) => {
                execute_once(&self.orders, command, context).await
            }
            FulfilmentCommand::CancelOrder(command) => {
                execute_once(&self.orders, command, context).await
            }
        }
    }

    fn rejected(&self, state: &mut FulfilmentState, _: &FulfilmentCommand, reason: &str) {
        state.stage = Stage::Failed;
        state.failure = Some(reason.to_owned());
    }
}
