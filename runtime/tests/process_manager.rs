//! The process-manager building blocks that do not depend on a domain: the causation
//! chain of command metadata, `execute_once` on redelivery, and two drivers racing on
//! one instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::envelope::COMMAND_CAUSATION_KEY;
use factum::prelude::*;
use factum::process::sqlite::{OutboxState, ProcessDriver};
use factum::process::{
    CommandKind, DispatchContext, DispatchError, ProcessManager, ProcessStatus, Reaction, Route,
    execute_once,
};
use factum::projection::ProjectionError;
use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;

/// A counter was bumped.
#[event(name = "Bumped")]
#[derive(Debug, Clone, PartialEq)]
pub struct Bumped {}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum CounterEvent {
    Bumped(Bumped),
}

/// Bump a counter; every bump counts, so a repeat is not a no-op by itself.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Bump {
    #[aggregate_id]
    pub counter_id: String,
    pub refuse: bool,
}

#[derive(Commands, Debug, Clone, PartialEq)]
pub enum CounterCommand {
    Bump(Bump),
}

#[derive(Debug, thiserror::Error)]
#[error("the counter refuses")]
pub struct Refused;

#[derive(Default)]
pub struct Counter {
    bumps: u32,
}

#[aggregate(events = CounterEvent, commands = CounterCommand, error = Refused)]
impl Counter {
    #[handle]
    fn bump(&self, command: Bump) -> Result<Bumped, Refused> {
        if command.refuse {
            return Err(Refused);
        }
        Ok(Bumped {})
    }

    #[apply]
    fn bumped(&mut self, _: &Bumped) {
        self.bumps += 1;
    }
}

fn context(metadata: CommandMetadata, redelivery: bool) -> DispatchContext {
    DispatchContext {
        instance: "i-1".into(),
        metadata,
        redelivery,
        kind: CommandKind::Step,
    }
}

#[tokio::test]
async fn a_command_caused_by_an_event_carries_the_chain_into_its_events() {
    let store = MemoryStore::new();
    let counters = Repository::<Counter, _>::new(store.clone());
    let correlation_id = factum::uuid::Uuid::now_v7();
    counters
        .execute_with(
            Bump {
                counter_id: "a".into(),
                refuse: false,
            },
            CommandMetadata::new().correlation_id(correlation_id),
        )
        .await
        .unwrap();
    let trigger = store
        .read_stream("Counter-a", 1, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        trigger.metadata.extra.get(COMMAND_CAUSATION_KEY),
        None,
        "an outside command has no causation"
    );

    let metadata = CommandMetadata::caused_by(&trigger);
    assert_eq!(metadata.correlation_id, Some(correlation_id));
    assert_eq!(metadata.causation_id, Some(trigger.event_id));
    counters
        .execute_with(
            Bump {
                counter_id: "a".into(),
                refuse: false,
            },
            metadata.clone(),
        )
        .await
        .unwrap();
    let effect = store
        .read_stream("Counter-a", 2, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(effect.metadata.correlation_id, Some(correlation_id));
    assert_eq!(effect.metadata.causation_id, Some(metadata.command_id));
    assert_eq!(
        effect.metadata.extra.get(COMMAND_CAUSATION_KEY),
        Some(&serde_json::Value::String(trigger.event_id.to_string()))
    );
}

#[tokio::test]
async fn execute_once_does_not_run_a_redelivered_command_twice() {
    let store = MemoryStore::new();
    let counters = Repository::<Counter, _>::new(store.clone());
    let metadata = CommandMetadata::new();
    let bump = || Bump {
        counter_id: "b".into(),
        refuse: false,
    };

    execute_once(&counters, bump(), &context(metadata.clone(), false))
        .await
        .unwrap();
    // The same command id again, as after a crash before its outcome was recorded.
    execute_once(&counters, bump(), &context(metadata.clone(), true))
        .await
        .unwrap();
    assert_eq!(counters.load("b").await.unwrap().state.bumps, 1);

    // Another command id is another command.
    execute_once(&counters, bump(), &context(CommandMetadata::new(), true))
        .await
        .unwrap();
    assert_eq!(counters.load("b").await.unwrap().state.bumps, 2);

    let refused = execute_once(
        &counters,
        Bump {
            counter_id: "b".into(),
            refuse: true,
        },
        &context(CommandMetadata::new(), false),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, DispatchError::Rejected { command, reason } if command == "Bump" && reason == "the counter refuses"),
        "{refused:?}"
    );
}

/// What the payment saga dispatches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Payment {
    Charge,
    Refund,
    Ship,
}

/// Charges (undone by a refund), then ships, which the carrier always refuses. The charge
/// and the shipment each wait at a barrier until a second dispatch of them arrives, so
/// that two drivers both dispatch the charge before either records its outcome, and both
/// record the charge's outcome before the shipment's rejection starts compensating.
#[derive(Clone)]
struct PaymentSaga {
    charging: Arc<tokio::sync::Notify>,
    charge: Arc<tokio::sync::Barrier>,
    ship: Arc<tokio::sync::Barrier>,
    refunds: Arc<AtomicU32>,
}

impl ProcessManager for PaymentSaga {
    const NAME: &'static str = "payment_saga";
    const EVENTS: &'static [&'static str] = &["Ordered"];
    type State = ();
    type Command = Payment;

    fn route(&self, event: &RecordedEvent) -> Result<Route, ProjectionError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        _: &mut (),
        _: &RecordedEvent,
    ) -> Result<Reaction<Payment>, ProjectionError> {
        Ok(Reaction::none()
            .step(Payment::Charge, Payment::Refund)
            .dispatch(Payment::Ship)
            .complete())
    }

    async fn dispatch(&self, command: &Payment, _: &DispatchContext) -> Result<(), DispatchError> {
        match command {
            Payment::Charge => {
                self.charging.notify_one();
                self.charge.wait().await;
                Ok(())
            }
            Payment::Ship => {
                self.ship.wait().await;
                Err(DispatchError::Rejected {
                    command: "Ship".into(),
                    reason: "no carrier delivers there".into(),
                })
            }
            Payment::Refund => {
                self.refunds.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_drivers_dispatching_one_command_record_its_outcome_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    store
        .append(
            "Order-1",
            "Order",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "Ordered",
                1,
                serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
                Metadata::default(),
            )],
        )
        .await
        .unwrap();
    let events = store.read_all(0, 10).await.unwrap();
    let head = events.last().unwrap().position;

    let saga = PaymentSaga {
        charging: Arc::new(tokio::sync::Notify::new()),
        charge: Arc::new(tokio::sync::Barrier::new(2)),
        ship: Arc::new(tokio::sync::Barrier::new(2)),
        refunds: Arc::new(AtomicU32::new(0)),
    };
    let mut first = ProcessDriver::new(saga.clone(), read_models.clone());
    let mut second = ProcessDriver::new(saga.clone(), read_models.clone());
    let states = first.states();

    // The first driver decides and dispatches the charge...
    let first_events = events.clone();
    let first = tokio::spawn(async move { first.apply(&first_events, head).await });
    saga.charging.notified().await;
    // ...and a second one (recovering what is pending) dispatches it too: both are
    // accepted, and both drivers record the outcome.
    let second = tokio::time::timeout(Duration::from_secs(10), second.apply(&events, head))
        .await
        .expect("the second driver finished");
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("the first driver finished")
        .unwrap();
    assert_eq!(first.unwrap(), head);
    assert_eq!(second.unwrap(), head);

    let history: Vec<_> = states
        .history("Order-1")
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.kind, entry.command, entry.state))
        .collect();
    assert_eq!(
        history,
        [
            (CommandKind::Step, Payment::Charge, OutboxState::Done),
            (CommandKind::Step, Payment::Ship, OutboxState::Rejected),
            // One charge, so one refund to undo it: the second record of the charge's
            // outcome did not push its compensation again.
            (
                CommandKind::Compensation,
                Payment::Refund,
                OutboxState::Done
            ),
        ]
    );
    let instance = states.get("Order-1").await.unwrap().unwrap();
    assert_eq!(instance.status, ProcessStatus::Compensated);
    assert!(
        instance
            .failure
            .as_deref()
            .is_some_and(|failure| failure.contains("no carrier delivers there")),
        "{:?}",
        instance.failure
    );
    // Both drivers may send the one refund (at least once), never a second refund row.
    assert!((1..=2).contains(&saga.refunds.load(Ordering::SeqCst)));
}

/// Remembers the last amount an event carried; a float that is not finite is written by
/// serde_json as `null` and would not read back.
#[derive(Clone)]
struct AmountTracker;

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Amounts {
    last: f64,
    seen: u32,
}

impl ProcessManager for AmountTracker {
    const NAME: &'static str = "amount_tracker";
    const EVENTS: &'static [&'static str] = &["Amounted"];
    type State = Amounts;
    type Command = Payment;

    fn route(&self, event: &RecordedEvent) -> Result<Route, ProjectionError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        state: &mut Amounts,
        event: &RecordedEvent,
    ) -> Result<Reaction<Payment>, ProjectionError> {
        let amount: serde_json::Value = serde_json::from_str(event.payload.get())?;
        state.last = match amount["amount"].as_str() {
            Some("infinite") => f64::INFINITY,
            _ => amount["amount"].as_f64().unwrap_or_default(),
        };
        state.seen += 1;
        Ok(Reaction::none())
    }

    async fn dispatch(&self, _: &Payment, _: &DispatchContext) -> Result<(), DispatchError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_process_state_that_would_not_read_back_is_refused_and_the_last_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    for amount in [serde_json::json!(2.5), serde_json::json!("infinite")] {
        store
            .append(
                "Account-1",
                "Account",
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    "Amounted",
                    1,
                    serde_json::value::to_raw_value(&serde_json::json!({ "amount": amount }))
                        .unwrap(),
                    Metadata::default(),
                )],
            )
            .await
            .unwrap();
    }
    let events = store.read_all(0, 10).await.unwrap();
    let mut driver = ProcessDriver::new(AmountTracker, read_models.clone());
    let states = driver.states();
    assert_eq!(
        driver
            .apply(&events[..1], events[0].position)
            .await
            .unwrap(),
        events[0].position
    );
    let refused = driver.apply(&events[1..], events[1].position).await;
    assert!(
        matches!(
            &refused,
            Err(factum::process::sqlite::ProcessError::Unreadable { what: "state", instance, .. })
                if instance == "Account-1"
        ),
        "an infinite amount is written as null and would not read back: {refused:?}"
    );
    let kept = states.get("Account-1").await.unwrap().unwrap();
    assert_eq!(
        kept.state,
        Amounts { last: 2.5, seen: 1 },
        "the state before the refused event is kept and still reads"
    );
}
