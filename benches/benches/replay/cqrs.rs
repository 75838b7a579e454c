//! The order domain written for cqrs-es 0.5, and an in-memory `PersistedEventRepository`
//! holding `SerializedEvent`s, so that `PersistedEventStore::load_aggregate` runs its real
//! decode path (`serde_json::from_value` of every payload and metadata map).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
use factum::envelope::RecordedEvent;
use factum_example_orders::{
    Cents, Currency, ItemAdded, ItemRemoved, Line, OrderCancelled, OrderCommand, OrderConfirmed,
    OrderDelivered, OrderError, OrderEvent, OrderNoteAdded, OrderPlaced, OrderShipped,
    RequestedLine, Sku, Status,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every event of an order, the cqrs-es way: one enum, serialised by serde with its
/// variant as the outer key, around the very same payload structs the factum example uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CqrsOrderEvent {
    OrderPlaced(OrderPlaced),
    ItemAdded(ItemAdded),
    ItemRemoved(ItemRemoved),
    OrderConfirmed(OrderConfirmed),
    OrderShipped(OrderShipped),
    OrderDelivered(OrderDelivered),
    OrderCancelled(OrderCancelled),
    OrderNoteAdded(OrderNoteAdded),
}

impl DomainEvent for CqrsOrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::ItemAdded(_) => "ItemAdded",
            Self::ItemRemoved(_) => "ItemRemoved",
            Self::OrderConfirmed(_) => "OrderConfirmed",
            Self::OrderShipped(_) => "OrderShipped",
            Self::OrderDelivered(_) => "OrderDelivered",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::OrderNoteAdded(_) => "OrderNoteAdded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::OrderPlaced(_) | Self::ItemAdded(_) => "2.0",
            _ => "1.0",
        }
        .to_owned()
    }
}

impl From<OrderEvent> for CqrsOrderEvent {
    fn from(event: OrderEvent) -> Self {
        match event {
            OrderEvent::Placed(event) => Self::OrderPlaced(event),
            OrderEvent::ItemAdded(event) => Self::ItemAdded(event),
            OrderEvent::ItemRemoved(event) => Self::ItemRemoved(event),
            OrderEvent::Confirmed(event) => Self::OrderConfirmed(event),
            OrderEvent::Shipped(event) => Self::OrderShipped(event),
            OrderEvent::Delivered(event) => Self::OrderDelivered(event),
            OrderEvent::Cancelled(event) => Self::OrderCancelled(event),
            OrderEvent::NoteAdded(event) => Self::OrderNoteAdded(event),
        }
    }
}

/// Where an order stands (cqrs-es aggregates must be serde types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CqrsStatus {
    #[default]
    New,
    Open,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl From<CqrsStatus> for Status {
    fn from(status: CqrsStatus) -> Self {
        match status {
            CqrsStatus::New => Self::New,
            CqrsStatus::Open => Self::Open,
            CqrsStatus::Confirmed => Self::Confirmed,
            CqrsStatus::Shipped => Self::Shipped,
            CqrsStatus::Delivered => Self::Delivered,
            CqrsStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// The catalogue (the example's `Catalog` keeps its prices private).
pub struct CqrsCatalog(pub BTreeMap<Sku, Cents>);

impl CqrsCatalog {
    fn price(&self, line: &RequestedLine) -> Result<Line, OrderError> {
        if line.quantity == 0 {
            return Err(OrderError::ZeroQuantity(line.sku.clone()));
        }
        let unit_price = *self
            .0
            .get(&line.sku)
            .ok_or_else(|| OrderError::UnknownProduct(line.sku.clone()))?;
        Ok(Line {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price,
        })
    }
}

/// An order's state, mirroring the example's `Order`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CqrsOrder {
    pub status: CqrsStatus,
    pub customer_id: String,
    pub currency: Option<Currency>,
    pub lines: BTreeMap<Sku, Line>,
}

impl CqrsOrder {
    fn total(&self) -> Cents {
        self.lines
            .values()
            .map(|line| line.unit_price * u64::from(line.quantity))
            .sum()
    }

    fn require_open(&self) -> Result<(), OrderError> {
        match self.status {
            CqrsStatus::Open => Ok(()),
            CqrsStatus::New => Err(OrderError::NotPlaced),
            status => Err(OrderError::NotOpen(status.into())),
        }
    }

    fn require(&self, expected: CqrsStatus, action: &'static str) -> Result<(), OrderError> {
        match self.status {
            CqrsStatus::New => Err(OrderError::NotPlaced),
            status if status == expected => Ok(()),
            status => Err(OrderError::WrongStatus {
                action,
                status: status.into(),
            }),
        }
    }

    /// The decision logic of the example's `#[handle]` methods.
    fn decide(
        &self,
        command: OrderCommand,
        catalog: &CqrsCatalog,
    ) -> Result<Option<CqrsOrderEvent>, OrderError> {
        Ok(Some(match command {
            OrderCommand::Place(command) => {
                if self.status != CqrsStatus::New {
                    return Err(OrderError::AlreadyPlaced);
                }
                if command.lines.is_empty() {
                    return Err(OrderError::NoLines);
                }
                let mut lines: Vec<Line> = Vec::with_capacity(command.lines.len());
                for requested in &command.lines {
                    let priced = catalog.price(requested)?;
                    match lines.iter_mut().find(|line| line.sku == priced.sku) {
                        Some(line) => line.quantity += priced.quantity,
                        None => lines.push(priced),
                    }
                }
                CqrsOrderEvent::OrderPlaced(OrderPlaced {
                    customer_id: command.customer_id,
                    lines,
                    currency: command.currency,
                })
            }
            OrderCommand::AddItem(command) => {
                self.require_open()?;
                let line = catalog.price(&command.line)?;
                CqrsOrderEvent::ItemAdded(ItemAdded {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })
            }
            OrderCommand::RemoveItem(command) => {
                self.require_open()?;
                if !self.lines.contains_key(&command.sku) {
                    return Err(OrderError::NoSuchLine(command.sku));
                }
                CqrsOrderEvent::ItemRemoved(ItemRemoved { sku: command.sku })
            }
            OrderCommand::Confirm(_) => {
                self.require_open()?;
                if self.lines.is_empty() {
                    return Err(OrderError::NoLines);
                }
                CqrsOrderEvent::OrderConfirmed(OrderConfirmed {
                    total: self.total(),
                })
            }
            OrderCommand::Ship(command) => {
                self.require(CqrsStatus::Confirmed, "ship")?;
                CqrsOrderEvent::OrderShipped(OrderShipped {
                    carrier: command.carrier,
                    tracking_code: command.tracking_code,
                })
            }
            OrderCommand::Deliver(_) => {
                self.require(CqrsStatus::Shipped, "deliver")?;
                CqrsOrderEvent::OrderDelivered(OrderDelivered {})
            }
            OrderCommand::Cancel(command) => match self.status {
                CqrsStatus::New => return Err(OrderError::NotPlaced),
                CqrsStatus::Cancelled => return Ok(None),
                CqrsStatus::Open | CqrsStatus::Confirmed => {
                    CqrsOrderEvent::OrderCancelled(OrderCancelled {
                        reason: command.reason,
                    })
                }
                status @ (CqrsStatus::Shipped | CqrsStatus::Delivered) => {
                    return Err(OrderError::WrongStatus {
                        action: "cancel",
                        status: status.into(),
                    });
                }
            },
            OrderCommand::AddNote(command) => {
                if self.status == CqrsStatus::New {
                    return Err(OrderError::NotPlaced);
                }
                CqrsOrderEvent::OrderNoteAdded(OrderNoteAdded { text: command.text })
            }
        }))
    }
}

impl Aggregate for CqrsOrder {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = CqrsOrderEvent;
    type Error = OrderError;
    type Services = CqrsCatalog;

    async fn handle(
        &mut self,
        command: Self::Command,
        catalog: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if let Some(event) = self.decide(command, catalog)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    /// The same code as the example's `#[apply]` methods (which take the event by
    /// reference), so that every path runs identical domain code.
    fn apply(&mut self, event: Self::Event) {
        match &event {
            CqrsOrderEvent::OrderPlaced(event) => {
                self.status = CqrsStatus::Open;
                self.customer_id.clone_from(&event.customer_id);
                self.currency = Some(event.currency);
                self.lines = event
                    .lines
                    .iter()
                    .map(|line| (line.sku.clone(), line.clone()))
                    .collect();
            }
            CqrsOrderEvent::ItemAdded(event) => {
                self.lines
                    .entry(event.sku.clone())
                    .and_modify(|line| line.quantity += event.quantity)
                    .or_insert_with(|| Line {
                        sku: event.sku.clone(),
                        quantity: event.quantity,
                        unit_price: event.unit_price,
                    });
            }
            CqrsOrderEvent::ItemRemoved(event) => {
                self.lines.remove(&event.sku);
            }
            CqrsOrderEvent::OrderConfirmed(_) => self.status = CqrsStatus::Confirmed,
            CqrsOrderEvent::OrderShipped(_) => self.status = CqrsStatus::Shipped,
            CqrsOrderEvent::OrderDelivered(_) => self.status = CqrsStatus::Delivered,
            CqrsOrderEvent::OrderCancelled(_) => self.status = CqrsStatus::Cancelled,
            CqrsOrderEvent::OrderNoteAdded(_) => {}
        }
    }
}

/// The metadata cqrs-es stores with an event: the same entries factum recorded.
fn metadata_of(record: &RecordedEvent) -> HashMap<String, String> {
    let metadata = &record.metadata;
    let mut map = HashMap::new();
    if let Some(id) = metadata.correlation_id {
        map.insert("correlation_id".to_owned(), id.to_string());
    }
    if let Some(id) = metadata.causation_id {
        map.insert("causation_id".to_owned(), id.to_string());
    }
    if let Some(actor) = &metadata.actor {
        map.insert("actor".to_owned(), actor.clone());
    }
    map
}

/// The stream as cqrs-es would persist it: each event wrapped in an `EventEnvelope` and
/// serialised by cqrs-es's own `SerializedEvent::try_from`. With `with_metadata`, each
/// carries the metadata factum recorded (correlation id, causation id, actor); without,
/// an empty map.
pub fn serialized(
    aggregate_id: &str,
    events: &[OrderEvent],
    records: &[RecordedEvent],
    with_metadata: bool,
) -> Vec<SerializedEvent> {
    events
        .iter()
        .zip(records)
        .enumerate()
        .map(|(index, (event, record))| {
            let envelope = EventEnvelope::<CqrsOrder> {
                aggregate_id: aggregate_id.to_owned(),
                sequence: index + 1,
                payload: event.clone().into(),
                metadata: if with_metadata {
                    metadata_of(record)
                } else {
                    HashMap::new()
                },
            };
            SerializedEvent::try_from(&envelope).expect("the event serialises")
        })
        .collect()
}

/// An in-memory `PersistedEventRepository` holding `SerializedEvent`s per aggregate id.
#[derive(Debug, Clone, Default)]
pub struct MemoryRepository {
    events: Arc<RwLock<HashMap<String, Vec<SerializedEvent>>>>,
}

impl MemoryRepository {
    /// A repository holding `events` (of one or more aggregates).
    pub fn with_events(events: Vec<SerializedEvent>) -> Self {
        let mut map: HashMap<String, Vec<SerializedEvent>> = HashMap::new();
        for event in events {
            map.entry(event.aggregate_id.clone())
                .or_default()
                .push(event);
        }
        Self {
            events: Arc::new(RwLock::new(map)),
        }
    }

    fn read(&self, aggregate_id: &str, after: usize) -> Vec<SerializedEvent> {
        let events = self.events.read().unwrap_or_else(PoisonError::into_inner);
        events
            .get(aggregate_id)
            .map(|events| {
                events
                    .iter()
                    .filter(|event| event.sequence > after)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn stream(events: Vec<SerializedEvent>) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for event in events {
            feed.push(Ok(event)).await?;
        }
        Ok(stream)
    }
}

impl PersistedEventRepository for MemoryRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        Ok(self.read(aggregate_id, 0))
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        Ok(self.read(aggregate_id, last_sequence))
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let mut map = self.events.write().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            let stream = map.entry(event.aggregate_id.clone()).or_default();
            if event.sequence != stream.len() + 1 {
                return Err(PersistenceError::OptimisticLockError);
            }
            stream.push(event.clone());
        }
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Self::stream(self.read(aggregate_id, 0)).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let all = {
            let map = self.events.read().unwrap_or_else(PoisonError::into_inner);
            map.values().flatten().cloned().collect()
        };
        Self::stream(all).await
    }
}
