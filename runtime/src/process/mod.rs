//! Process managers (sagas): long-running business processes that react to events by
//! dispatching commands, keep their own state per process instance, and undo what they
//! did — compensate — when a step fails.
//!
//! A [`ProcessManager`] says, for each event it follows, which instance the event belongs
//! to ([`ProcessManager::route`]) and what to do next ([`ProcessManager::handle`]): the
//! commands to dispatch, each with the command that undoes it. A driver
//! ([`ProcessDriver`], run live by [`ProcessRunner`]) follows the global log from a
//! checkpoint, persists each instance's state in a [`ProcessStore`] — a read model that
//! can also hold instances and outboxes: `SqliteReadModel` (`factum::sqlite`) or
//! `PostgresReadModel` (`factum::postgres`) — and dispatches the commands through
//! [`ProcessManager::dispatch`], usually [`execute_once`] on a [`Repository`].
//!
//! # Decide → persist intent → dispatch → persist outcome
//!
//! For each event past the checkpoint, in log order:
//!
//! 1. **Decide and persist the intent**, in one read-model transaction: the instance's
//!    state is loaded, [`ProcessManager::handle`] runs, and the new state, the commands to
//!    dispatch (an *outbox* row each, with its command id fixed now) and the checkpoint
//!    (the event's position) commit together. A crash before this commit decides again
//!    from the same event; after it, the event is never decided twice.
//! 2. **Dispatch** each pending command of the instance, oldest first, outside any
//!    transaction (commands touch the event store and may be slow).
//! 3. **Persist the outcome**, in a second transaction: the row is marked done (and the
//!    step's compensation is remembered) or rejected (and compensation starts) — if it is
//!    still pending: an outcome another driver recorded first stands.
//!
//! A crash between 2 and 3 leaves the row pending: the next driver dispatches it again,
//! with the same command id and [`DispatchContext::redelivery`] set. Dispatch is thus
//! *at least once*, and made harmless twice over:
//!
//! - [`execute_once`] looks, on a redelivery, for an event in the target stream whose
//!   causation id is the command id: if the command already recorded its events, it is
//!   not executed again;
//! - the example's aggregates also treat a repeated command as a no-op (reserving stock
//!   for an order that holds a reservation records nothing), which covers a command that
//!   recorded no events or was repeated with another id.
//!
//! # Compensation
//!
//! A step is *completed* when its command was accepted; its compensation (if any) is then
//! pushed on the instance's stack. [`Reaction::on_failure`] pushes a compensation without a
//! step (undoing what started the process, e.g. cancelling the order). When a step's
//! command is rejected with a domain error ([`DispatchError::Rejected`]) — or a handler
//! calls [`Reaction::fail`] — the instance turns [`ProcessStatus::Compensating`]: pending
//! steps are skipped and the stack is dispatched top first, i.e. the completed steps are
//! undone in reverse order. When the last compensation is accepted the instance is
//! [`ProcessStatus::Compensated`]. A rejected compensation cannot be undone automatically:
//! the instance turns [`ProcessStatus::Stuck`] and waits for a human. Compensations should
//! therefore be commands an aggregate always accepts (a no-op when there is nothing to
//! undo).
//!
//! # Correlation and causation
//!
//! Every command carries the correlation id of its triggering event (an instance started
//! by an event without one gets a new correlation id, kept for the whole instance) and the
//! triggering event's id as causation id ([`CommandContext::caused_by`]). Compensations are
//! caused by the rejected command: their causation id is its id. The events the commands
//! record carry the command id as causation id and the command's causation id in their
//! metadata (see [`CommandContext`]'s causation chain), so every event of one fulfilment
//! shares one correlation id and can be traced back step by step.
//!
//! # Failures that are not decisions
//!
//! A handler error (an undecodable event, say) stops the driver before the event: its
//! checkpoint stays before it and nothing of it is persisted, like
//! [`OnPoison::Stop`](crate::projection::OnPoison::Stop) — skipping a step of a business
//! process silently is never right. So does a row of the log the store cannot read
//! ([`StoreError::CorruptRow`]), every run, until it is repaired or an operator parks it
//! with [`ProcessRunner::park_unreadable`]. A transient dispatch failure
//! ([`DispatchError::Failed`]) is retried with backoff; when retries run out the driver
//! returns [`ProcessError::Dispatch`] and the command stays pending. A runner's task
//! ([`ProcessRunner::spawn`]) then, like after a store or read-model outage, backs
//! off (100 ms doubling up to 30 s), dispatches what was left pending and goes on; the
//! error is kept for [`ProcessHandle::last_error`].

mod driver;
mod store;

/// The engine's types with the SQLite read model filled in, kept for code written before
/// the engine was generic. The SQLite process store itself lives in [`crate::sqlite`]:
/// the instances and the outbox in the manager's own file (`<NAME>.v0.sqlite3`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    use crate::sqlite::SqliteReadModel;

    pub use super::{Instance, OutboxEntry, OutboxState, ProcessError, ProcessRunner};

    /// A [`ProcessDriver`](super::ProcessDriver) keeping its state in a [`SqliteReadModel`].
    pub type ProcessDriver<M> = super::ProcessDriver<M, SqliteReadModel>;
    /// A [`ProcessHandle`](super::ProcessHandle) of a manager kept in a [`SqliteReadModel`].
    pub type ProcessHandle<M> = super::ProcessHandle<M, SqliteReadModel>;
    /// A [`ProcessStates`](super::ProcessStates) reading a [`SqliteReadModel`].
    pub type ProcessStates<M> = super::ProcessStates<M, SqliteReadModel>;
}

pub use driver::{
    Instance, OutboxEntry, ProcessDriver, ProcessError, ProcessHandle, ProcessRunner, ProcessStates,
};
pub use store::{
    CommandRow, InstanceRow, NewCommand, OutboxState, ProcessStore, ProcessTx, RowReader,
};

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::command::CommandSet;
use crate::context::CommandContext;
use crate::envelope::RecordedEvent;
use crate::error::BoxError;
use crate::repository::{Repository, RepositoryError};
use crate::retry::Retry;
use crate::store::{EventStore, StoreError, VisitError};

crate::error::handler_error! {
    /// A process manager's failure to route or handle an event: any error converts into
    /// it with `?`.
    ///
    /// It does not implement `std::error::Error` itself (so that every error type can
    /// convert into it); [`HandlerError::message`] and `Display` show the whole chain of
    /// causes, and [`ProcessError::Handler`] keeps the error as its `source()`.
    HandlerError
}

/// A long-running business process driven by events: it keeps state per instance and
/// dispatches commands, compensating completed steps when one fails.
///
/// See the [module documentation](self) for the guarantees.
pub trait ProcessManager: Send + Sync + 'static {
    /// The stable name: its checkpoint and instance table are kept under it (1 to 40
    /// ASCII letters, digits or underscores, starting with a letter).
    const NAME: &'static str;
    /// The names of the events it follows; the store filters the log by them.
    const EVENTS: &'static [&'static str];

    /// One instance's state, persisted as JSON between events.
    type State: Serialize + DeserializeOwned + Default + Send + Sync + 'static;
    /// What it dispatches (steps and compensations), persisted as JSON in its outbox
    /// between decision and dispatch.
    type Command: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Which instance `event` belongs to, and whether it may start one.
    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError>;

    /// Decides what the event means for the instance: updates `state` and returns the
    /// commands to dispatch. Called only for instances that are
    /// [`ProcessStatus::Running`]; events for instances that ended are ignored.
    fn handle(
        &self,
        state: &mut Self::State,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<Reaction<Self::Command>, HandlerError>> + Send;

    /// Sends one command (to a repository, usually with [`execute_once`]).
    ///
    /// It may be called more than once for one command (after a crash or a transient
    /// failure, with [`DispatchContext::redelivery`] set); the second call must not act
    /// twice.
    fn dispatch(
        &self,
        command: &Self::Command,
        context: &DispatchContext,
    ) -> impl Future<Output = Result<(), DispatchError>> + Send;

    /// Called when a step's command was rejected, before compensation starts; lets the
    /// state record why. The default does nothing.
    fn rejected(&self, state: &mut Self::State, command: &Self::Command, reason: &str) {
        let _ = (state, command, reason);
    }
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To the instance with this key, starting it if it does not exist.
    Start(String),
    /// To the instance with this key if it exists; ignored otherwise.
    Continue(String),
    /// Nowhere: the process does not care about this event.
    Ignore,
}

/// A step: a command to dispatch and the command that undoes it once it was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<C> {
    /// What to dispatch.
    pub command: C,
    /// What undoes it, dispatched if a later step fails.
    pub compensation: Option<C>,
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction<C> {
    /// Steps to dispatch, in order.
    pub steps: Vec<Step<C>>,
    /// Compensations to remember now, without a step (undoing what started the process).
    pub on_failure: Vec<C>,
    /// The process ends once these steps are accepted.
    pub complete: bool,
    /// The process failed for this reason: compensate what was done.
    pub fail: Option<String>,
}

impl<C> Default for Reaction<C> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            on_failure: Vec::new(),
            complete: false,
            fail: None,
        }
    }
}

impl<C> Reaction<C> {
    /// Nothing to do.
    pub fn none() -> Self {
        Self::default()
    }

    /// Dispatches `command`; nothing undoes it.
    pub fn dispatch(mut self, command: C) -> Self {
        self.steps.push(Step {
            command,
            compensation: None,
        });
        self
    }

    /// Dispatches `command`; once it was accepted, `compensation` undoes it if a later
    /// step fails.
    pub fn step(mut self, command: C, compensation: C) -> Self {
        self.steps.push(Step {
            command,
            compensation: Some(compensation),
        });
        self
    }

    /// Remembers `compensation` now: it runs, last of all, if any later step fails.
    pub fn on_failure(mut self, compensation: C) -> Self {
        self.on_failure.push(compensation);
        self
    }

    /// Ends the process (as [`ProcessStatus::Completed`]) once this reaction's steps were
    /// accepted.
    pub fn complete(mut self) -> Self {
        self.complete = true;
        self
    }

    /// Fails the process: compensates every completed step.
    pub fn fail(mut self, reason: impl Into<String>) -> Self {
        self.fail = Some(reason.into());
        self
    }
}

/// Where a process instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessStatus {
    /// Steps are being taken.
    Running,
    /// Every step was taken.
    Completed,
    /// A step failed; completed steps are being undone.
    Compensating,
    /// A step failed and every completed step was undone.
    Compensated,
    /// A compensation was rejected: a human must look.
    Stuck,
}

impl ProcessStatus {
    /// The name stored and shown: `running`, `completed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Compensating => "compensating",
            Self::Compensated => "compensated",
            Self::Stuck => "stuck",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "running" => Self::Running,
            "completed" => Self::Completed,
            "compensating" => Self::Compensating,
            "compensated" => Self::Compensated,
            "stuck" => Self::Stuck,
            _ => return None,
        })
    }

    /// Whether the instance will do nothing more on its own.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Stuck)
    }
}

impl std::fmt::Display for ProcessStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an outbox command is a step or a compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// A step forward.
    Step,
    /// The undoing of a completed step.
    Compensation,
}

impl CommandKind {
    /// The name stored: `step` or `compensation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::Compensation => "compensation",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "step" => Some(Self::Step),
            "compensation" => Some(Self::Compensation),
            _ => None,
        }
    }
}

/// What a dispatch gets besides the command.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchContext {
    /// The process instance.
    pub instance: String,
    /// The command's metadata: its id (fixed when the command was decided, the same on
    /// every redelivery), the correlation id, the causation id and the manager as actor.
    pub metadata: CommandContext,
    /// Whether this command may have been dispatched before (after a restart or a
    /// transient failure).
    pub redelivery: bool,
    /// Whether it is a step or a compensation.
    pub kind: CommandKind,
}

/// Why a dispatch did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The aggregate rejected the command with a domain error: a failed step (which starts
    /// compensation) or a failed compensation (which makes the instance stuck).
    #[error("command `{command}` was rejected")]
    Rejected {
        /// The command's name.
        command: String,
        /// The domain error.
        #[source]
        source: BoxError,
    },
    /// The command could not be delivered (store down, conflicts without end, ...); it
    /// is tried again, and stays pending when the retries run out.
    #[error("command `{command}` could not be dispatched")]
    Failed {
        /// The command's name.
        command: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
}

/// Runs `command` on `repository` at most once per command id.
///
/// On a redelivery it first looks for an event of the target stream caused by
/// `context.metadata.command_id`; if there is one, the command already ran and nothing
/// is done. Otherwise it runs with [`Repository::execute_retrying`] (3 attempts on
/// conflicts, [`Retry::immediately`]). A rejection becomes [`DispatchError::Rejected`], any
/// other failure [`DispatchError::Failed`].
///
/// The look-up reads the target stream from its start, only on redeliveries.
pub async fn execute_once<A, S>(
    repository: &Repository<A, S>,
    command: impl Into<A::Commands>,
    context: &DispatchContext,
) -> Result<(), DispatchError>
where
    A: Aggregate,
    A::Commands: Clone,
    S: EventStore,
{
    let command = command.into();
    let name = command.command_name();
    let stream_id = Repository::<A, S>::stream_id(&command.aggregate_id());
    let failed = |source: BoxError| DispatchError::Failed {
        command: name.to_owned(),
        source,
    };
    if context.redelivery
        && caused_in_stream(repository.store(), &stream_id, context.metadata.command_id)
            .await
            .map_err(|error| failed(Box::new(error)))?
    {
        tracing::debug!(
            command = name,
            stream_id,
            command_id = %context.metadata.command_id,
            "redelivered command already ran; not running it again"
        );
        return Ok(());
    }
    match repository
        .execute_retrying(command, context.metadata.clone(), Retry::immediately(3))
        .await
    {
        Ok(_) => Ok(()),
        Err(RepositoryError::Rejected(error)) => Err(DispatchError::Rejected {
            command: name.to_owned(),
            source: Box::new(error),
        }),
        Err(error) => Err(failed(Box::new(error))),
    }
}

/// Whether `stream_id` holds an event whose causation id is `command_id`.
async fn caused_in_stream<S: EventStore>(
    store: &S,
    stream_id: &str,
    command_id: Uuid,
) -> Result<bool, StoreError> {
    struct Found;
    match store
        .for_each_in_stream(stream_id, 1, |event| {
            if event.metadata.causation_id == Some(command_id) {
                Err(Found)
            } else {
                Ok(())
            }
        })
        .await
    {
        Ok(()) => Ok(false),
        Err(VisitError::Visitor(Found)) => Ok(true),
        Err(VisitError::Store(error)) => Err(error),
    }
}

/// The id of the aggregate instance of `A` that recorded `event`, when an `A` recorded
/// it: its stream id without the `"{A::NAME}-"` prefix
/// ([`Repository::stream_id`]).
pub fn aggregate_id_of<A: Aggregate>(event: &RecordedEvent) -> Option<&str> {
    if event.stream_type != A::NAME {
        return None;
    }
    event
        .stream_id
        .strip_prefix(A::NAME)
        .and_then(|rest| rest.strip_prefix('-'))
}
