//! The process-manager building blocks that do not depend on a domain: the causation
//! chain of command metadata, `execute_once` on redelivery, and two drivers racing on
//! one instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::envelope::COMMAND_CAUSATION_KEY;
use factum::prelude::*;
use factum::process::HandlerError;
use factum::process::sqlite::{OutboxState, ProcessDriver};
use factum::process::{
    CommandKind, DispatchContext, DispatchError, ProcessManager, ProcessStatus, Reaction, Route,
    execute_once,
};
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

fn context(metadata: CommandContext, redelivery: bool) -> DispatchContext {
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
            CommandContext::new().correlation_id(correlation_id),
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

    let metadata = CommandContext::caused_by(&trigger);
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
    let metadata = CommandContext::new();
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
    execute_once(&counters, bump(), &context(CommandContext::new(), true))
        .await
        .unwrap();
    assert_eq!(counters.load("b").await.unwrap().state.bumps, 2);

    let refused = execute_once(
        &counters,
        Bump {
            counter_id: "b".into(),
            refuse: true,
        },
        &context(CommandContext::new(), false),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, DispatchError::Rejected { command, source } if command == "Bump" && source.to_string() == "the counter refuses"),
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

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        _: &mut (),
        _: &RecordedEvent,
    ) -> Result<Reaction<Payment>, HandlerError> {
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
                    source: "no carrier delivers there".into(),
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

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        state: &mut Amounts,
        event: &RecordedEvent,
    ) -> Result<Reaction<Payment>, HandlerError> {
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

/// Follows every `Counted` event, one instance per stream: counts them in its state and
/// dispatches one command per event, naming its position.
#[derive(Clone, Default)]
struct Tally {
    decided: Arc<std::sync::Mutex<Vec<u64>>>,
    dispatched: Arc<std::sync::Mutex<Vec<u64>>>,
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Tallied {
    seen: u32,
}

impl ProcessManager for Tally {
    const NAME: &'static str = "tally";
    const EVENTS: &'static [&'static str] = &["Counted"];
    type State = Tallied;
    type Command = u64;

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        state: &mut Tallied,
        event: &RecordedEvent,
    ) -> Result<Reaction<u64>, HandlerError> {
        state.seen += 1;
        self.decided.lock().unwrap().push(event.position);
        Ok(Reaction::none().dispatch(event.position))
    }

    async fn dispatch(&self, position: &u64, _: &DispatchContext) -> Result<(), DispatchError> {
        self.dispatched.lock().unwrap().push(*position);
        Ok(())
    }
}

fn assert_stopped_at_165(error: &factum::process::sqlite::ProcessError) {
    match error {
        factum::process::sqlite::ProcessError::Store {
            manager: "tally",
            source:
                StoreError::CorruptRow {
                    position: Some(165),
                    reason,
                    ..
                },
        } => assert!(reason.contains("key 999"), "{error:?}"),
        other => panic!("expected the store's corrupt row at 165, got {other:?}"),
    }
}

fn sorted(positions: &std::sync::Mutex<Vec<u64>>) -> Vec<u64> {
    let mut positions = positions.lock().unwrap().clone();
    positions.sort_unstable();
    positions
}

#[tokio::test]
async fn an_operator_parks_an_unreadable_row_and_the_process_manager_goes_on() {
    use factum::process::sqlite::{ProcessError, ProcessRunner};

    // The scenario: a few hundred events appended through the store, 3 streams
    // of 100, then the event at position 165 pointed at a stream key that has no row,
    // with raw SQL on the file.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    for stream in 0..3 {
        let events = (0..100)
            .map(|_| {
                NewEvent::new(
                    "Counted",
                    1,
                    serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
                    Metadata::default(),
                )
            })
            .collect();
        store
            .append(
                &format!("s{stream}"),
                "Counter",
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .unwrap();
    }
    let raw = rusqlite::Connection::open(dir.path().join("events.sqlite3")).unwrap();
    raw.busy_timeout(Duration::from_secs(5)).unwrap();
    raw.execute_batch(
        "PRAGMA foreign_keys=OFF; UPDATE events SET stream_key=999 WHERE position=165",
    )
    .unwrap();

    let tally = Tally::default();
    let runner = ProcessRunner::new(store.clone()).batch_size(50);
    let mut driver = runner.driver(tally.clone(), read_models.clone());
    let states = driver.states();

    // It stops before the row, every run, its checkpoint below it: a catch-up...
    for _ in 0..2 {
        assert_stopped_at_165(&runner.catch_up(&mut driver).await.unwrap_err());
        assert!(driver.checkpoint().await.unwrap() < 165);
        assert!(driver.parked().await.unwrap().is_empty());
    }
    // ...and a spawned manager, whose task ends with the error.
    let mut handle = runner.spawn(tally.clone(), read_models.clone());
    assert_stopped_at_165(&handle.wait_for(300).await.unwrap_err());
    assert!(
        handle
            .checkpoint()
            .is_none_or(|checkpoint| checkpoint < 165)
    );
    let checkpoint = driver.checkpoint().await.unwrap();
    assert!(checkpoint < 165);
    let decided = sorted(&tally.decided);
    assert_eq!(decided, (1..=checkpoint).collect::<Vec<_>>());

    // Only the position where reading fails is parked; anything else is refused, and
    // nothing is written.
    for (position, next) in [(164, Some(165)), (166, Some(165)), (300, Some(165))] {
        match runner.park_unreadable(&mut driver, position, "ops").await {
            Err(ProcessError::NotUnreadable {
                manager: "tally",
                next_unreadable,
                ..
            }) => assert_eq!(next_unreadable, next, "{position}"),
            other => panic!("{position}: expected a refusal, got {other:?}"),
        }
    }
    let refusal = runner
        .park_unreadable(&mut driver, 164, "ops")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        refusal,
        "process manager `tally`: refusing to park position 164: position 164 is readable; the next unreadable row is at 165"
    );
    assert_eq!(driver.checkpoint().await.unwrap(), checkpoint);
    assert!(driver.parked().await.unwrap().is_empty());
    assert_eq!(sorted(&tally.decided), decided);

    // Parked: it decides on the readable events before it, the row is a dead letter, the
    // checkpoint is at it.
    assert_eq!(
        runner
            .park_unreadable(&mut driver, 165, "alice: row lost, ticket 9")
            .await
            .unwrap(),
        165
    );
    assert_eq!(sorted(&tally.decided), (1..=164).collect::<Vec<_>>());
    let dead_letters = driver.parked().await.unwrap();
    assert_eq!(dead_letters.len(), 1);
    let dead = &dead_letters[0];
    assert!(dead.is_unreadable());
    assert_eq!((dead.event.position, dead.attempts), (165, 0));
    for part in ["alice: row lost, ticket 9", "position 165", "key 999"] {
        assert!(dead.error.contains(part), "{part}: {}", dead.error);
    }

    // The rest of the log follows.
    assert_eq!(runner.catch_up(&mut driver).await.unwrap(), 300);

    // Parking again, or a readable position, is refused.
    for position in [165, 300] {
        assert!(
            matches!(
                runner.park_unreadable(&mut driver, position, "ops").await,
                Err(ProcessError::NotUnreadable {
                    checkpoint: 300,
                    next_unreadable: None,
                    ..
                })
            ),
            "{position}"
        );
    }
    assert_eq!(driver.parked().await.unwrap().len(), 1);

    // Each readable event was decided on and its command dispatched exactly once; the
    // unreadable one never. Its stream's instance saw one event fewer.
    let expected: Vec<u64> = (1..=300).filter(|position| *position != 165).collect();
    assert_eq!(sorted(&tally.decided), expected);
    assert_eq!(sorted(&tally.dispatched), expected);
    for (stream, seen) in [("s0", 100), ("s1", 99), ("s2", 100)] {
        let instance = states.get(stream).await.unwrap().unwrap();
        assert_eq!(instance.state, Tallied { seen }, "{stream}");
        assert_eq!(instance.status, ProcessStatus::Running);
    }
}

/// Dispatches each `Noted` event's position; refuses to, with a failure worth retrying,
/// while `down` holds. Keeps the trace context each dispatch was given.
#[derive(Clone, Default)]
struct Relay {
    down: Arc<std::sync::atomic::AtomicBool>,
    traces: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl ProcessManager for Relay {
    const NAME: &'static str = "relay";
    const EVENTS: &'static [&'static str] = &["Noted"];
    type State = ();
    type Command = u64;

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        Ok(Route::Start(event.stream_id.clone()))
    }

    async fn handle(
        &self,
        _: &mut (),
        event: &RecordedEvent,
    ) -> Result<Reaction<u64>, HandlerError> {
        Ok(Reaction::none().dispatch(event.position).complete())
    }

    async fn dispatch(&self, _: &u64, context: &DispatchContext) -> Result<(), DispatchError> {
        self.traces
            .lock()
            .unwrap()
            .push(context.metadata.traceparent.clone());
        if self.down.load(Ordering::SeqCst) {
            return Err(DispatchError::Failed {
                command: "Relay".into(),
                source: "the downstream service is down".into(),
            });
        }
        Ok(())
    }
}

/// A command decided on an event that carried a W3C trace context is dispatched in that
/// trace — also when the dispatch failed and a driver started after a crash recovers it
/// from the outbox.
#[tokio::test]
async fn a_command_recovered_from_the_outbox_continues_the_trace_of_its_event() {
    use factum::process::sqlite::ProcessRunner;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    store
        .append(
            "Note-1",
            "Note",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "Noted",
                1,
                serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
                Metadata {
                    traceparent: Some(traceparent.to_owned()),
                    ..Metadata::default()
                },
            )],
        )
        .await
        .unwrap();
    let relay = Relay::default();
    relay.down.store(true, Ordering::SeqCst);
    let runner = ProcessRunner::new(store.clone()).retry(factum::projection::Retry::immediately(1));
    let mut driver = runner.driver(relay.clone(), read_models.clone());
    runner
        .catch_up(&mut driver)
        .await
        .expect_err("the dispatch fails");
    drop(driver);

    // A new process: the command waits in the outbox, and goes out in its trace.
    relay.down.store(false, Ordering::SeqCst);
    let mut driver = runner.driver(relay.clone(), read_models);
    runner.catch_up(&mut driver).await.expect("recovers");
    assert_eq!(
        *relay.traces.lock().unwrap(),
        [Some(traceparent.to_owned()), Some(traceparent.to_owned())]
    );
}
