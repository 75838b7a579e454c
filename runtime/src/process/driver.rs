//! The process-manager engine: the driver that decides, persists the intent, dispatches
//! and records outcomes, over any [`ProcessStore`]; the runner that feeds it from the
//! log; and the readers of its instances.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;
use uuid::Uuid;

use super::store::{CommandRow, InstanceRow, NewCommand, OutboxState, ProcessStore, ProcessTx};
use super::{
    CommandKind, DispatchContext, DispatchError, HandlerError, ProcessManager, ProcessStatus,
    Reaction, Route,
};
use crate::context::{Actor, CommandContext};
use crate::envelope::RecordedEvent;
use crate::error::{BoxError, TaskFailure};
use crate::follow::{
    Follower, Log, Parkable, TaskError, TaskHandle, describe_refusal, report_parked,
};
use crate::projection::{Applied, ParkedEvent, ReadModelError, ReadModelTx, Target};
use crate::retry::Retry;
use crate::store::{EventStore, StoreError};

/// Why a process manager's driver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// Reading the event store failed.
    #[error("process manager `{manager}`: reading the event store failed")]
    Store {
        /// The manager.
        manager: &'static str,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The read model holding its state failed.
    #[error("process manager `{manager}`")]
    ReadModel {
        /// The manager.
        manager: &'static str,
        /// What the read model said.
        #[source]
        source: ReadModelError,
    },
    /// A handler failed on an event; nothing of it was persisted and the checkpoint stays
    /// before it.
    #[error(
        "process manager `{manager}` stopped at event `{event_name}` (stream `{stream_id}`, version {stream_version}, position {position})"
    )]
    Handler {
        /// The manager.
        manager: &'static str,
        /// The event's name.
        event_name: String,
        /// Its stream.
        stream_id: String,
        /// Its version in the stream.
        stream_version: u64,
        /// Its global position.
        position: u64,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
    /// A command could not be dispatched after every retry; it stays pending and is
    /// dispatched again on the next start.
    #[error(
        "process manager `{manager}`, instance `{instance}`: command {command_id} could not be dispatched after {attempts} attempts"
    )]
    Dispatch {
        /// The manager.
        manager: &'static str,
        /// The process instance.
        instance: String,
        /// The command's id.
        command_id: Uuid,
        /// How many times it was tried.
        attempts: u32,
        /// The last failure.
        #[source]
        source: DispatchError,
    },
    /// A stored row could not be read back (state or command JSON of another shape).
    #[error("process manager `{manager}`, instance `{instance}`: corrupt {what}")]
    Corrupt {
        /// The manager.
        manager: &'static str,
        /// The process instance.
        instance: String,
        /// What was corrupt.
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A new state or command would not read back as itself (nested too deep, a float
    /// that is not finite, serde attributes that write what they do not read); nothing
    /// was written.
    #[error(
        "process manager `{manager}`, instance `{instance}`: the new {what} would not read back; nothing was written"
    )]
    Unreadable {
        /// The manager.
        manager: &'static str,
        /// The process instance.
        instance: String,
        /// What would not read back (`state`, `command`).
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// [`ProcessRunner::park_unreadable`] refused: `position` is not where reading after
    /// the manager's checkpoint fails. Nothing was written.
    #[error(
        "process manager `{manager}`: refusing to park position {position}: {}",
        describe_refusal(*position, *checkpoint, *next_unreadable)
    )]
    NotUnreadable {
        /// The manager.
        manager: &'static str,
        /// The position asked for.
        position: u64,
        /// The manager's checkpoint.
        checkpoint: u64,
        /// Where reading after the checkpoint does fail, if it failed with a corrupt row
        /// before passing `position` or just after it; `None` when it read past
        /// `position` (or to the head of the log) without failing.
        next_unreadable: Option<u64>,
    },
    /// The driver's task ended abnormally (it panicked or was aborted, or stopped before
    /// what was waited for).
    #[error("process manager `{manager}`: its task ended abnormally")]
    Task {
        /// The manager.
        manager: &'static str,
        /// How it ended.
        #[source]
        source: TaskFailure,
    },
    /// [`ProcessHandle::wait_until_final`] gave up: the instance had not ended in time.
    #[error("process manager `{manager}`: instance `{instance}` did not end within {waited:?}")]
    Timeout {
        /// The manager.
        manager: &'static str,
        /// The process instance.
        instance: String,
        /// How long it was waited for.
        waited: Duration,
    },
}

/// One process instance as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance<St> {
    /// Its key.
    pub key: String,
    /// Where it stands.
    pub status: ProcessStatus,
    /// The manager's state.
    pub state: St,
    /// The correlation id of its commands.
    pub correlation_id: Uuid,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// A command an instance decided on, with its outcome: the instance's history.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry<C> {
    /// Order of decision, across instances.
    pub seq: u64,
    /// Step or compensation.
    pub kind: CommandKind,
    /// The command.
    pub command: C,
    /// Its id.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Its causation id: the triggering event's id, or for a compensation the rejected
    /// command's id.
    pub causation_id: Uuid,
    /// Where it stands.
    pub state: OutboxState,
    /// The rejection reason, for a rejected command.
    pub outcome: Option<String>,
}

/// The instance row, as the driver works on it between the queries of one transaction.
struct Record {
    key: String,
    status: ProcessStatus,
    state: String,
    correlation_id: Uuid,
    compensations: Vec<serde_json::Value>,
    completing: bool,
    failure: Option<String>,
}

/// The target a manager keeps its state under: its name, version 0.
fn target_of<M: ProcessManager>() -> Target {
    Target {
        name: M::NAME,
        version: 0,
    }
}

fn read_model_error<M: ProcessManager>(source: ReadModelError) -> ProcessError {
    ProcessError::ReadModel {
        manager: M::NAME,
        source,
    }
}

fn store_error<M: ProcessManager>(source: StoreError) -> ProcessError {
    ProcessError::Store {
        manager: M::NAME,
        source,
    }
}

fn decode_json<M: ProcessManager, T: serde::de::DeserializeOwned>(
    key: &str,
    what: &'static str,
    text: &str,
) -> Result<T, ProcessError> {
    serde_json::from_str(text).map_err(|error| ProcessError::Corrupt {
        manager: M::NAME,
        instance: key.to_owned(),
        what,
        source: Box::new(error),
    })
}

/// Applies events to one process manager: decides in a transaction with the checkpoint,
/// then dispatches the decided commands and records their outcomes.
///
/// Its state lives in `P`, a [`ProcessStore`]: the manager's own read model (`NAME`,
/// version 0), so each decision commits with the checkpoint in one transaction.
/// [`ProcessRunner`] feeds it from the store; tests and tools can feed it directly.
///
/// Run one driver per manager (like a reactor). A second one (or a
/// [`ProcessDriver::recover`] overlapping a running driver) keeps the instances
/// consistent: decisions are serialised by the read model's write lock, and each
/// command's outcome is recorded once — only while its outbox row is still pending, so
/// the first outcome recorded stands and a later one is dropped with its consequences (a
/// compensation is never pushed or dispatched twice). But both drivers may dispatch the
/// same command at the same time, the second time not marked as a redelivery: that is
/// harmless only if the target aggregate accepts a repeated command as a no-op (see the
/// module documentation of [`process`](super)); were it rejected instead, and that
/// rejection recorded first, the instance would compensate a step that took effect.
pub struct ProcessDriver<M: ProcessManager, P: ProcessStore> {
    manager: M,
    read_model: P,
    retry: Retry,
    recovered: bool,
}

impl<M: ProcessManager, P: ProcessStore + std::fmt::Debug> std::fmt::Debug for ProcessDriver<M, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessDriver")
            .field("manager", &M::NAME)
            .field("read_model", &self.read_model)
            .finish_non_exhaustive()
    }
}

impl<M: ProcessManager, P: ProcessStore> ProcessDriver<M, P> {
    /// A driver keeping `manager`'s state in `read_model`, retrying transient dispatch
    /// failures by [`Retry::default`].
    pub fn new(manager: M, read_model: P) -> Self {
        Self {
            manager,
            read_model,
            retry: Retry::default(),
            recovered: false,
        }
    }

    /// Sets how transient dispatch failures are retried.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.manager
    }

    /// Reads the manager's instances (also while the driver runs elsewhere).
    pub fn states(&self) -> ProcessStates<M, P> {
        ProcessStates::new(self.read_model.clone())
    }

    async fn begin(&self) -> Result<P::Tx, ProcessError> {
        self.read_model
            .begin(target_of::<M>())
            .await
            .map_err(read_model_error::<M>)
    }

    async fn commit(&self, tx: P::Tx, checkpoint: u64) -> Result<(), ProcessError> {
        self.read_model
            .commit(tx, checkpoint)
            .await
            .map_err(read_model_error::<M>)
    }

    /// Commits without moving the checkpoint.
    async fn commit_in_place(&self, tx: P::Tx) -> Result<(), ProcessError> {
        let checkpoint = tx.checkpoint().unwrap_or(0);
        self.commit(tx, checkpoint).await
    }

    async fn rollback(&self, tx: P::Tx) {
        if let Err(error) = self.read_model.rollback(tx).await {
            tracing::warn!(manager = M::NAME, error = %crate::error::Report(&error), "could not roll back");
        }
    }

    /// Ends `tx` after the work whose `result` is given: commits it in place when the work
    /// succeeded and `commit` says so, rolls it back otherwise.
    async fn in_transaction<T>(
        &self,
        tx: P::Tx,
        result: Result<T, ProcessError>,
        commit: impl FnOnce(&T) -> bool,
    ) -> Result<T, ProcessError> {
        match result {
            Ok(value) if commit(&value) => {
                self.commit_in_place(tx).await?;
                Ok(value)
            }
            Ok(value) => {
                self.rollback(tx).await;
                Ok(value)
            }
            Err(error) => {
                self.rollback(tx).await;
                Err(error)
            }
        }
    }

    /// The committed checkpoint (0 before the first event).
    pub async fn checkpoint(&self) -> Result<u64, ProcessError> {
        let checkpoint = self
            .read_model
            .checkpoint(target_of::<M>())
            .await
            .map_err(read_model_error::<M>)?;
        Ok(checkpoint.unwrap_or(0))
    }

    /// The rows of the log parked for the manager, oldest first: unreadable rows an
    /// operator moved it past ([`ProcessRunner::park_unreadable`]; each
    /// [`ParkedEvent::is_unreadable`]).
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>, ProcessError> {
        self.read_model
            .parked(target_of::<M>())
            .await
            .map_err(read_model_error::<M>)
    }

    /// Parks `parked` and commits the checkpoint at its position, in one transaction;
    /// skips it if the checkpoint is already there.
    async fn park(&self, parked: ParkedEvent) -> Result<Applied, ProcessError> {
        let position = parked.event.position;
        let mut tx = self.begin().await?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        if position <= checkpoint {
            self.rollback(tx).await;
            return Ok(Applied {
                skipped: 1,
                checkpoint,
                ..Applied::default()
            });
        }
        if let Err(error) = self.read_model.park(&mut tx, &parked).await {
            self.rollback(tx).await;
            return Err(read_model_error::<M>(error));
        }
        self.commit(tx, position).await?;
        Ok(Applied {
            parked: 1,
            checkpoint: position,
            ..Applied::default()
        })
    }

    /// Dispatches every command left pending by an earlier driver (decided but not known
    /// to be accepted), as redeliveries. [`ProcessDriver::apply`] does it once, first.
    pub async fn recover(&mut self) -> Result<(), ProcessError> {
        // First, and again after any failure (a reset may have taken the tables).
        self.read_model
            .migrate_process_tables(target_of::<M>())
            .await
            .map_err(read_model_error::<M>)?;
        let mut tx = self.begin().await?;
        let instances = tx
            .instances_with_pending()
            .await
            .map_err(read_model_error::<M>);
        let instances = self.in_transaction(tx, instances, |_| true).await?;
        for instance in instances {
            tracing::info!(
                manager = M::NAME,
                instance,
                "dispatching commands left pending by an earlier run"
            );
            self.drain(&instance, true).await?;
        }
        self.recovered = true;
        Ok(())
    }

    /// Decides on `events` (in position order) past the checkpoint and dispatches what
    /// each decided before going on to the next, then commits the checkpoint
    /// `scanned_to` — how far the caller has seen the log. Returns the checkpoint.
    pub async fn apply(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<u64, ProcessError> {
        if !self.recovered {
            self.recover().await?;
        }
        for event in events
            .iter()
            .filter(|event| M::EVENTS.contains(&event.name.as_str()))
        {
            let span = crate::trace::react_span(M::NAME, event);
            let reacted = async {
                if let Some(instance) = self.decide(event).await? {
                    self.drain(&instance, false).await?;
                }
                Ok::<_, ProcessError>(())
            }
            .instrument(span.clone())
            .await;
            if reacted.is_err() {
                crate::trace::record_error(&span, "process_manager");
            }
            reacted?;
        }
        let tx = self.begin().await?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        if scanned_to > checkpoint {
            self.commit(tx, scanned_to).await?;
            Ok(scanned_to)
        } else {
            self.rollback(tx).await;
            Ok(checkpoint)
        }
    }

    fn handler_error(event: &RecordedEvent, error: HandlerError) -> ProcessError {
        ProcessError::Handler {
            manager: M::NAME,
            event_name: event.name.clone(),
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            position: event.position,
            source: error.into_error(),
        }
    }

    /// Step 1: decide on one event and persist the intent with the checkpoint. Returns
    /// the instance that may have commands to dispatch.
    async fn decide(&mut self, event: &RecordedEvent) -> Result<Option<String>, ProcessError> {
        let mut tx = self.begin().await?;
        if event.position <= tx.checkpoint().unwrap_or(0) {
            self.rollback(tx).await;
            return Ok(None);
        }
        match self.decide_in(&mut tx, event).await {
            Ok(instance) => {
                self.commit(tx, event.position).await?;
                Ok(instance)
            }
            Err(error) => {
                self.rollback(tx).await;
                Err(error)
            }
        }
    }

    async fn decide_in(
        &mut self,
        tx: &mut P::Tx,
        event: &RecordedEvent,
    ) -> Result<Option<String>, ProcessError> {
        let (key, starts) = match self
            .manager
            .route(event)
            .map_err(|error| Self::handler_error(event, error))?
        {
            Route::Start(key) => (key, true),
            Route::Continue(key) => (key, false),
            Route::Ignore => return Ok(None),
        };
        if key.contains('\0') {
            // PostgreSQL text holds no NUL; refused on every backend alike.
            return Err(Self::handler_error(
                event,
                HandlerError::msg(format!(
                    "the instance key {key:?} holds a NUL character, which no store keeps"
                )),
            ));
        }
        let mut record = match self.load(tx, &key).await? {
            Some(record) => record,
            None if starts => Record {
                key: key.clone(),
                status: ProcessStatus::Running,
                state: self.encode(&key, "state", &M::State::default())?,
                correlation_id: event.metadata.correlation_id.unwrap_or_else(Uuid::now_v7),
                compensations: Vec::new(),
                completing: false,
                failure: None,
            },
            None => {
                tracing::debug!(
                    manager = M::NAME,
                    instance = key,
                    event = event.name,
                    "no such instance; event ignored"
                );
                return Ok(None);
            }
        };
        if record.status != ProcessStatus::Running {
            tracing::debug!(
                manager = M::NAME,
                instance = key,
                status = %record.status,
                event = event.name,
                "instance is no longer running; event ignored"
            );
            return Ok(None);
        }
        let mut state: M::State = decode_json::<M, _>(&key, "state", &record.state)?;
        let reaction = self
            .manager
            .handle(&mut state, event)
            .await
            .map_err(|error| Self::handler_error(event, error))?;
        record.state = self.encode(&key, "state", &state)?;
        let Reaction {
            steps,
            on_failure,
            complete,
            fail,
        } = reaction;
        for compensation in &on_failure {
            record
                .compensations
                .push(self.to_value(&key, compensation)?);
        }
        let correlation_id = event
            .metadata
            .correlation_id
            .unwrap_or(record.correlation_id);
        // Kept with each command: its dispatch continues the trace, after a crash too.
        let traceparent = crate::trace::to_record(event.metadata.traceparent.as_deref());
        for step in &steps {
            let compensation = step
                .compensation
                .as_ref()
                .map(|compensation| self.encode(&key, "command", compensation))
                .transpose()?;
            let command = self.encode(&key, "command", &step.command)?;
            self.insert_command(
                tx,
                NewCommand {
                    instance: &key,
                    kind: CommandKind::Step,
                    command: &command,
                    compensation: compensation.as_deref(),
                    command_id: Uuid::now_v7(),
                    correlation_id,
                    causation_id: event.event_id,
                    position: event.position,
                    traceparent: traceparent.as_deref(),
                },
            )
            .await?;
        }
        record.completing |= complete;
        if let Some(reason) = fail.map(free_text) {
            self.start_compensation(
                tx,
                &mut record,
                reason,
                (event.event_id, event.position),
                traceparent.as_deref(),
            )
            .await?;
        }
        self.settle(tx, &mut record).await?;
        self.save(tx, &record, event.position).await?;
        Ok(Some(key))
    }

    /// Steps 2 and 3: dispatches the instance's pending commands, oldest first, recording
    /// each outcome. Each continues the trace of the event it was decided on (kept in the
    /// outbox), right after that event or on recovery.
    async fn drain(&mut self, key: &str, redelivery: bool) -> Result<(), ProcessError> {
        loop {
            let mut tx = self.begin().await?;
            let row = tx.next_pending(key).await.map_err(read_model_error::<M>);
            self.rollback(tx).await;
            let Some(row) = row? else {
                return Ok(());
            };
            let command: M::Command = decode_json::<M, _>(key, "command", &row.command)?;
            let mut context = DispatchContext {
                instance: key.to_owned(),
                metadata: CommandContext {
                    command_id: row.command_id,
                    correlation_id: Some(row.correlation_id),
                    causation_id: Some(row.causation_id),
                    actor: Some(Actor::new(Actor::PROCESS_MANAGER, M::NAME)),
                    traceparent: crate::trace::to_record(row.traceparent.as_deref()),
                    ..CommandContext::new()
                },
                redelivery,
                kind: row.kind,
            };
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                match self.manager.dispatch(&command, &context).await {
                    Ok(()) => break Ok(()),
                    Err(DispatchError::Rejected { command, source }) => {
                        // Kept as text: the outbox row and the instance's failure store it.
                        let reason = crate::error::Report(&*source);
                        break Err(free_text(format!("{command}: {reason}")));
                    }
                    Err(error @ DispatchError::Failed { .. }) => {
                        if attempts >= self.retry.attempts() {
                            return Err(ProcessError::Dispatch {
                                manager: M::NAME,
                                instance: key.to_owned(),
                                command_id: row.command_id,
                                attempts,
                                source: error,
                            });
                        }
                        tracing::warn!(
                            manager = M::NAME,
                            instance = key,
                            command_id = %row.command_id,
                            error = %crate::error::Report(&error),
                            "dispatch failed; trying again"
                        );
                        tokio::time::sleep(self.retry.backoff(attempts)).await;
                        context.redelivery = true;
                    }
                }
            };
            let mut tx = self.begin().await?;
            let recorded = self
                .record_outcome(&mut tx, key, &row, &command, outcome)
                .await;
            self.in_transaction(tx, recorded, |recorded| *recorded)
                .await?;
        }
    }

    /// Step 3: records `outcome` of `row` and its consequences, if the row is still
    /// pending; `false` (and nothing changed) if its outcome was recorded first by another
    /// driver or an overlapping recovery.
    async fn record_outcome(
        &self,
        tx: &mut P::Tx,
        key: &str,
        row: &CommandRow,
        command: &M::Command,
        outcome: Result<(), String>,
    ) -> Result<bool, ProcessError> {
        let Some(mut record) = self.load(tx, key).await? else {
            return Err(ProcessError::Corrupt {
                manager: M::NAME,
                instance: key.to_owned(),
                what: "outbox",
                source: format!("command {} has no instance row", row.command_id).into(),
            });
        };
        let (state, reason) = match &outcome {
            Ok(()) => (OutboxState::Done, None),
            Err(reason) => (OutboxState::Rejected, Some(reason.as_str())),
        };
        let marked = tx
            .record_outcome(row.seq, state, reason)
            .await
            .map_err(read_model_error::<M>)?;
        if !marked {
            // Another driver (or an overlapping recovery) dispatched the same command and
            // recorded its outcome first, or skipped the step: that stands, and the
            // consequences (the compensation pushed, the compensation started) are not
            // applied again.
            let recorded = tx
                .command(row.seq)
                .await
                .map_err(read_model_error::<M>)?
                .map(|recorded| recorded.state);
            if recorded == Some(state) {
                tracing::debug!(
                    manager = M::NAME,
                    instance = key,
                    command_id = %row.command_id,
                    outcome = state.as_str(),
                    "the command's outcome was already recorded by another driver"
                );
            } else {
                tracing::warn!(
                    manager = M::NAME,
                    instance = key,
                    command_id = %row.command_id,
                    outcome = state.as_str(),
                    recorded = recorded.map(OutboxState::as_str),
                    reason,
                    "the command was dispatched twice and its outcome is already recorded otherwise; keeping the recorded one"
                );
            }
            return Ok(false);
        }
        match outcome {
            Ok(()) => {
                if let Some(compensation) = &row.compensation {
                    record.compensations.push(decode_json::<M, _>(
                        key,
                        "compensation",
                        compensation,
                    )?);
                }
            }
            Err(reason) => match (row.kind, record.status) {
                (CommandKind::Step, ProcessStatus::Running) => {
                    let mut state: M::State = decode_json::<M, _>(key, "state", &record.state)?;
                    self.manager.rejected(&mut state, command, &reason);
                    record.state = self.encode(key, "state", &state)?;
                    self.start_compensation(
                        tx,
                        &mut record,
                        reason,
                        (row.command_id, row.position),
                        row.traceparent.as_deref(),
                    )
                    .await?;
                }
                (CommandKind::Compensation, _) => {
                    tracing::error!(
                        manager = M::NAME,
                        instance = key,
                        command_id = %row.command_id,
                        reason,
                        "a compensation was rejected; the instance is stuck"
                    );
                    record.status = ProcessStatus::Stuck;
                    record.failure = Some(match record.failure.take() {
                        Some(failure) => {
                            format!("{failure}; then compensation failed: {reason}")
                        }
                        None => format!("compensation failed: {reason}"),
                    });
                    tx.skip_pending(key).await.map_err(read_model_error::<M>)?;
                }
                (CommandKind::Step, _) => {}
            },
        }
        self.settle(tx, &mut record).await?;
        self.save(tx, &record, row.position).await?;
        Ok(true)
    }

    /// Turns the instance to compensating: skips its pending steps and queues the
    /// compensation stack, top first.
    /// `cause`: the causation id and position the compensations are decided on;
    /// `traceparent`: the trace they continue.
    async fn start_compensation(
        &self,
        tx: &mut P::Tx,
        record: &mut Record,
        reason: String,
        cause: (Uuid, u64),
        traceparent: Option<&str>,
    ) -> Result<(), ProcessError> {
        let (causation_id, position) = cause;
        tracing::info!(
            manager = M::NAME,
            instance = record.key,
            reason,
            "a step failed; compensating"
        );
        record.status = ProcessStatus::Compensating;
        record.failure = Some(reason);
        tx.skip_pending(&record.key)
            .await
            .map_err(read_model_error::<M>)?;
        while let Some(compensation) = record.compensations.pop() {
            let command =
                serde_json::to_string(&compensation).map_err(|error| ProcessError::Corrupt {
                    manager: M::NAME,
                    instance: record.key.clone(),
                    what: "compensation",
                    source: Box::new(error),
                })?;
            self.insert_command(
                tx,
                NewCommand {
                    instance: &record.key,
                    kind: CommandKind::Compensation,
                    command: &command,
                    compensation: None,
                    command_id: Uuid::now_v7(),
                    correlation_id: record.correlation_id,
                    causation_id,
                    position,
                    traceparent,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Ends the instance when nothing is pending and it was completing or compensating.
    async fn settle(&self, tx: &mut P::Tx, record: &mut Record) -> Result<(), ProcessError> {
        let pending = tx
            .count_pending(&record.key)
            .await
            .map_err(read_model_error::<M>)?;
        if pending == 0 {
            match record.status {
                ProcessStatus::Running if record.completing => {
                    record.status = ProcessStatus::Completed;
                    record.compensations.clear();
                }
                ProcessStatus::Compensating => record.status = ProcessStatus::Compensated,
                _ => {}
            }
        }
        Ok(())
    }

    async fn insert_command(
        &self,
        tx: &mut P::Tx,
        command: NewCommand<'_>,
    ) -> Result<(), ProcessError> {
        tx.insert_command(&command)
            .await
            .map_err(read_model_error::<M>)
    }

    async fn load(&self, tx: &mut P::Tx, key: &str) -> Result<Option<Record>, ProcessError> {
        let row = tx.instance(key).await.map_err(read_model_error::<M>)?;
        row.map(record_of::<M>).transpose()
    }

    async fn save(
        &self,
        tx: &mut P::Tx,
        record: &Record,
        position: u64,
    ) -> Result<(), ProcessError> {
        let compensations = serde_json::to_string(&record.compensations).map_err(|error| {
            ProcessError::Corrupt {
                manager: M::NAME,
                instance: record.key.clone(),
                what: "compensations",
                source: Box::new(error),
            }
        })?;
        let row = InstanceRow {
            key: record.key.clone(),
            status: record.status,
            state: record.state.clone(),
            correlation_id: record.correlation_id,
            compensations,
            completing: record.completing,
            failure: record.failure.clone(),
        };
        tx.save_instance(&row, position)
            .await
            .map_err(read_model_error::<M>)
    }

    /// Encodes `value` for a row, and decodes the text again before it is written: a
    /// value that would not read back (nested deeper than serde_json reads, a float that
    /// is not finite) is refused with [`ProcessError::Unreadable`] instead of stopping
    /// the manager at its next event.
    fn encode<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
        value: &T,
    ) -> Result<String, ProcessError> {
        let unreadable = |source: BoxError| ProcessError::Unreadable {
            manager: M::NAME,
            instance: key.to_owned(),
            what,
            source,
        };
        let text = serde_json::to_string(value).map_err(|error| unreadable(Box::new(error)))?;
        crate::store::limits::check_json(&text, crate::store::limits::MAX_JSON_DEPTH)
            .map_err(|limit| unreadable(limit.to_string().into()))?;
        serde_json::from_str::<T>(&text).map_err(|error| unreadable(Box::new(error)))?;
        Ok(text)
    }

    fn to_value<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<serde_json::Value, ProcessError> {
        serde_json::to_value(value).map_err(|error| ProcessError::Corrupt {
            manager: M::NAME,
            instance: key.to_owned(),
            what: "compensation",
            source: Box::new(error),
        })
    }
}

/// A failure or rejection reason as every store keeps it: free text from a domain error,
/// whose NUL characters (which PostgreSQL's text refuses) become U+FFFD, so the reason
/// reads back the same on every backend.
fn free_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

fn record_of<M: ProcessManager>(row: InstanceRow) -> Result<Record, ProcessError> {
    Ok(Record {
        compensations: decode_json::<M, _>(&row.key, "compensations", &row.compensations)?,
        key: row.key,
        status: row.status,
        state: row.state,
        correlation_id: row.correlation_id,
        completing: row.completing,
        failure: row.failure,
    })
}
/// Runs process managers against an event store: catch-up from the checkpoint, then live.
pub struct ProcessRunner<S> {
    log: Log<S>,
    retry: Retry,
}

impl<S> Clone for ProcessRunner<S> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            retry: self.retry,
        }
    }
}

impl<S> std::fmt::Debug for ProcessRunner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRunner")
            .field("batch_size", &self.log.batch_size)
            .field("idle_wait", &self.log.idle_wait)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + 'static> ProcessRunner<S> {
    /// A runner reading `store` 100 events at a time, retrying transient dispatch failures
    /// by [`Retry::default`].
    pub fn new(store: S) -> Self {
        Self {
            log: Log::new(store, 100),
            retry: Retry::default(),
        }
    }

    /// Events read per batch.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.log = self.log.batch_size(batch_size);
        self
    }

    /// How long a caught-up runner waits for a wake-up before reading again anyway.
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.log = self.log.idle_wait(idle_wait);
        self
    }

    /// How transient dispatch failures are retried.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// A driver for `manager` with this runner's retry setting.
    pub fn driver<M: ProcessManager, P: ProcessStore>(
        &self,
        manager: M,
        read_model: P,
    ) -> ProcessDriver<M, P> {
        ProcessDriver::new(manager, read_model).retry(self.retry)
    }

    /// Dispatches what an earlier run left pending, then decides on and dispatches every
    /// event up to the head of the log. Returns the checkpoint. Reports the manager's lag
    /// and dead letters as a projection's (see [`crate::telemetry`]).
    pub async fn catch_up<M: ProcessManager, P: ProcessStore>(
        &self,
        driver: &mut ProcessDriver<M, P>,
    ) -> Result<u64, ProcessError> {
        let checkpoint = self.catch_up_unmeasured(driver).await?;
        self.log.report_lag(M::NAME, checkpoint).await;
        // A failure to count is no failure of the catch-up: the gauge keeps its value.
        if let Ok(parked) = driver.parked().await {
            report_parked(M::NAME, parked.len());
        }
        Ok(checkpoint)
    }

    async fn catch_up_unmeasured<M: ProcessManager, P: ProcessStore>(
        &self,
        driver: &mut ProcessDriver<M, P>,
    ) -> Result<u64, ProcessError> {
        let mut checkpoint = driver.checkpoint().await?;
        loop {
            let page = self
                .log
                .next_page(checkpoint, M::EVENTS)
                .await
                .map_err(store_error::<M>)?;
            let Some(page) = page else {
                if !driver.recovered {
                    driver.recover().await?;
                }
                return Ok(checkpoint);
            };
            checkpoint = driver.apply(&page.events, page.scanned_to).await?;
            if !page.full {
                return Ok(checkpoint);
            }
        }
    }

    /// Moves the manager past a row of the log the store cannot read: an operator's
    /// command, never run automatically.
    ///
    /// A row the store cannot read fails every read that includes it with
    /// [`StoreError::CorruptRow`] at its position, so [`ProcessRunner::catch_up`] and a
    /// spawned runner stop before it, every time, their checkpoint below it. Repairing
    /// the row and running again is the first remedy. When it cannot be repaired, this
    /// does what `ProjectionRunner::park_unreadable` does for a projection:
    ///
    /// 1. It acts only if reading after the manager's checkpoint really fails with a
    ///    corrupt row at exactly `position`. Otherwise it refuses
    ///    ([`ProcessError::NotUnreadable`]: the position is readable, or the next
    ///    unreadable row is elsewhere, or the checkpoint is past it) and writes nothing.
    ///    Other store errors are returned as they are.
    /// 2. It decides on and dispatches every readable event before `position`, as a
    ///    catch-up would.
    /// 3. It parks the row in the dead-letter table of the manager's file
    ///    ([`ProcessDriver::parked`]; `attempts == 0`, with the store's error and `note`:
    ///    who parked it and why) and commits the checkpoint at `position`, in one
    ///    transaction.
    ///
    /// No instance sees the row: what it would have decided is not decided. Then run
    /// [`ProcessRunner::catch_up`] (or spawn the manager) again. Returns the checkpoint.
    pub async fn park_unreadable<M: ProcessManager, P: ProcessStore>(
        &self,
        driver: &mut ProcessDriver<M, P>,
        position: u64,
        note: &str,
    ) -> Result<u64, ProcessError> {
        let parked = self.log.park_unreadable(driver, position, note).await;
        if parked.is_err() {
            // Commands of an event already decided may have been left pending: dispatch
            // them first on the next run.
            driver.recovered = false;
        }
        Ok(parked?.checkpoint)
    }

    /// Runs `manager` in a task: catch-up, then live (woken by the store) until
    /// [`ProcessHandle::stop`].
    pub fn spawn<M: ProcessManager, P: ProcessStore>(
        &self,
        manager: M,
        read_model: P,
    ) -> ProcessHandle<M, P> {
        let live = Live {
            runner: self.clone(),
            driver: self.driver(manager, read_model.clone()),
        };
        let log = self.log.clone();
        ProcessHandle {
            states: ProcessStates::new(read_model),
            task: TaskHandle::spawn(M::NAME, move |context| async move {
                log.follow(live, context).await
            }),
        }
    }
}

/// A manager followed live by [`ProcessRunner::spawn`].
struct Live<S, M: ProcessManager, P: ProcessStore> {
    runner: ProcessRunner<S>,
    driver: ProcessDriver<M, P>,
}

impl<S: EventStore + 'static, M: ProcessManager, P: ProcessStore> Follower for Live<S, M, P> {
    type Error = ProcessError;

    async fn catch_up(&mut self) -> Result<u64, ProcessError> {
        let caught_up = self.runner.catch_up(&mut self.driver).await;
        if caught_up.is_err() {
            // Commands of an event already decided may have been left pending: dispatch
            // them first on the next try, whichever instance they belong to.
            self.driver.recovered = false;
        }
        caught_up
    }

    fn store_error(&self, source: StoreError) -> ProcessError {
        store_error::<M>(source)
    }
}

impl<M: ProcessManager, P: ProcessStore> Parkable for ProcessDriver<M, P> {
    type Error = ProcessError;
    const EVENTS: &'static [&'static str] = M::EVENTS;

    fn target(&self) -> Target {
        target_of::<M>()
    }

    async fn stored_checkpoint(&mut self) -> Result<u64, ProcessError> {
        self.checkpoint().await
    }

    async fn apply_readable(
        &mut self,
        events: &[RecordedEvent],
        scanned_to: u64,
    ) -> Result<Applied, ProcessError> {
        let checkpoint = self.apply(events, scanned_to).await?;
        Ok(Applied {
            checkpoint,
            ..Applied::default()
        })
    }

    async fn park_row(&mut self, parked: ParkedEvent) -> Result<Applied, ProcessError> {
        self.park(parked).await
    }

    fn not_unreadable(
        &self,
        position: u64,
        checkpoint: u64,
        next_unreadable: Option<u64>,
    ) -> ProcessError {
        ProcessError::NotUnreadable {
            manager: M::NAME,
            position,
            checkpoint,
            next_unreadable,
        }
    }

    fn store_error(&self, source: StoreError) -> ProcessError {
        store_error::<M>(source)
    }
}

impl TaskError for ProcessError {
    fn task(manager: &'static str, source: TaskFailure) -> Self {
        ProcessError::Task { manager, source }
    }

    fn already_reported(manager: &'static str) -> Option<Self> {
        Some(ProcessError::Task {
            manager,
            source: TaskFailure::AlreadyReported,
        })
    }

    /// Store and read-model failures (outages, timeouts, a busy database) and a command
    /// whose dispatch kept failing transiently are retried; a handler error, a corrupt
    /// row, a bad name or a failed task are not.
    fn is_transient(&self) -> bool {
        match self {
            ProcessError::Store { source, .. } => !matches!(source, StoreError::CorruptRow { .. }),
            ProcessError::ReadModel { source, .. } => !matches!(
                source,
                ReadModelError::InvalidName { .. }
                    | ReadModelError::Corrupt { .. }
                    | ReadModelError::NotAReadModel { .. }
                    | ReadModelError::SchemaTooNew { .. }
            ),
            ProcessError::Dispatch { .. } => true,
            ProcessError::Handler { .. }
            | ProcessError::NotUnreadable { .. }
            | ProcessError::Corrupt { .. }
            | ProcessError::Unreadable { .. }
            | ProcessError::Task { .. }
            | ProcessError::Timeout { .. } => false,
        }
    }
}

/// A running process manager.
pub struct ProcessHandle<M: ProcessManager, P: ProcessStore> {
    states: ProcessStates<M, P>,
    task: TaskHandle<ProcessError>,
}

impl<M: ProcessManager, P: ProcessStore> std::fmt::Debug for ProcessHandle<M, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("manager", &M::NAME)
            .field("checkpoint", &self.task.checkpoint())
            .finish_non_exhaustive()
    }
}

impl<M: ProcessManager, P: ProcessStore> ProcessHandle<M, P> {
    /// The checkpoint after the last completed catch-up (`None` before the first).
    pub fn checkpoint(&self) -> Option<u64> {
        self.task.checkpoint()
    }

    /// Reads the manager's instances.
    pub fn states(&self) -> &ProcessStates<M, P> {
        &self.states
    }

    /// Waits until it has decided on and dispatched everything up to global `position`.
    /// Returns the runner's error if it stopped first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, ProcessError> {
        self.task.wait_for(position).await
    }

    /// Waits until the instance `key` has ended ([`ProcessStatus::is_final`]) and returns
    /// it; an error if the runner stopped first or `timeout` passed.
    pub async fn wait_until_final(
        &mut self,
        key: &str,
        timeout: Duration,
    ) -> Result<Instance<M::State>, ProcessError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(instance) = self.states.get(key).await?
                && instance.status.is_final()
            {
                return Ok(instance);
            }
            if self.is_finished() {
                return Err(self.task.join().await.err().unwrap_or(ProcessError::Task {
                    manager: M::NAME,
                    source: TaskFailure::StoppedBefore("the instance ended"),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProcessError::Timeout {
                    manager: M::NAME,
                    instance: key.to_owned(),
                    waited: timeout,
                });
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), self.task.checkpoint_changed())
                .await;
        }
    }

    /// Whether its task has ended (stopped, or failed: see [`ProcessHandle::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The last error it retried after, its causes as its `source()` (`None` if it never
    /// failed); shown with its causes by [`Report`](crate::error::Report).
    ///
    /// Failures a retry can cure — the store or the read model unreachable, busy or
    /// timing out, a command whose dispatch kept failing ([`ProcessError::Dispatch`]) —
    /// do not end the task: it logs them (a `tracing` warning), waits 100 ms doubling up
    /// to 30 s, dispatches what was left pending and goes on. The error stays here after
    /// it recovers; [`ProcessHandle::checkpoint`] tells whether it moves on. Other
    /// failures end the task ([`ProcessHandle::stop`] returns them): a handler error
    /// ([`ProcessError::Handler`]), a corrupt row or an invalid name.
    pub fn last_error(&self) -> Option<Arc<ProcessError>> {
        self.task.last_error()
    }

    /// Stops it after the event in hand and returns how it ended.
    pub async fn stop(self) -> Result<(), ProcessError> {
        self.task.stop().await
    }
}

/// Reads a process manager's instances and their histories.
pub struct ProcessStates<M: ProcessManager, P: ProcessStore> {
    read_model: P,
    manager: PhantomData<fn() -> M>,
}

impl<M: ProcessManager, P: ProcessStore> Clone for ProcessStates<M, P> {
    fn clone(&self) -> Self {
        Self::new(self.read_model.clone())
    }
}

impl<M: ProcessManager, P: ProcessStore + std::fmt::Debug> std::fmt::Debug for ProcessStates<M, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessStates")
            .field("manager", &M::NAME)
            .field("read_model", &self.read_model)
            .finish()
    }
}

impl<M: ProcessManager, P: ProcessStore> ProcessStates<M, P> {
    /// Reads `M`'s instances in `read_model`.
    pub fn new(read_model: P) -> Self {
        Self {
            read_model,
            manager: PhantomData,
        }
    }

    /// The instance `key` as last committed, `None` if it never started.
    pub async fn get(&self, key: &str) -> Result<Option<Instance<M::State>>, ProcessError> {
        let Some(row) = self
            .read_model
            .read_instance(target_of::<M>(), key)
            .await
            .map_err(read_model_error::<M>)?
        else {
            return Ok(None);
        };
        Ok(Some(Instance {
            state: decode_json::<M, _>(&row.key, "state", &row.state)?,
            key: row.key,
            status: row.status,
            correlation_id: row.correlation_id,
            failure: row.failure,
        }))
    }

    /// Where the instance `key` stands, `None` if it never started.
    pub async fn status(&self, key: &str) -> Result<Option<ProcessStatus>, ProcessError> {
        Ok(self.get(key).await?.map(|instance| instance.status))
    }

    /// Every command the instance `key` decided on, in order, with its outcome.
    pub async fn history(&self, key: &str) -> Result<Vec<OutboxEntry<M::Command>>, ProcessError> {
        let rows = self
            .read_model
            .read_history(target_of::<M>(), key)
            .await
            .map_err(read_model_error::<M>)?;
        rows.into_iter()
            .map(|row| {
                Ok(OutboxEntry {
                    seq: row.seq,
                    kind: row.kind,
                    command: decode_json::<M, _>(key, "command", &row.command)?,
                    command_id: row.command_id,
                    correlation_id: row.correlation_id,
                    causation_id: row.causation_id,
                    state: row.state,
                    outcome: row.outcome,
                })
            })
            .collect()
    }
}
