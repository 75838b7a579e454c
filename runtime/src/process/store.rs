//! Where process managers keep their instances and outboxes: the traits a backend
//! implements, and the rows they exchange with the driver.
//!
//! The driver ([`ProcessDriver`](super::ProcessDriver)) holds the whole algorithm —
//! decide, persist the intent, dispatch, persist the outcome, compensate — and asks a
//! [`ProcessTx`] only to read and write rows inside a read-model transaction of the
//! manager's own target (`NAME`, version 0). A backend is therefore a read model
//! ([`ReadModel`]) whose transaction can also hold two tables:
//!
//! - the **instances**: one row per instance key ([`InstanceRow`]);
//! - the **outbox**: one row per decided command, numbered in order of decision
//!   ([`CommandRow`]), pending until its outcome is recorded.
//!
//! Commands, states and compensations are JSON text, written and read back as they are
//! (the driver checks, before writing, that the text reads back as the value). The
//! conformance suite (`testing::conformance::process`, feature `conformance`) holds a
//! backend to what the driver relies on.

use std::future::Future;

use uuid::Uuid;

use super::{CommandKind, ProcessStatus};
use crate::projection::{ReadModel, ReadModelError, ReadModelTx, Target};

/// A read model that can hold process managers: instances and outboxes in the same
/// transactions as the checkpoint.
///
/// Implemented by `SqliteReadModel` (feature `sqlite`) and `PostgresReadModel` (feature
/// `postgres`).
pub trait ProcessStore: ReadModel<Tx: ProcessTx> {
    /// The instance `key` of the manager kept in `target`, as last committed; `None` if
    /// it never started (or the manager never decided anything). Reads outside any
    /// driver's transaction and never waits for one.
    fn read_instance(
        &self,
        target: Target,
        key: &str,
    ) -> impl Future<Output = Result<Option<InstanceRow>, ReadModelError>> + Send;

    /// Every command the instance `key` decided on, in order of decision, as last
    /// committed.
    fn read_history(
        &self,
        target: Target,
        key: &str,
    ) -> impl Future<Output = Result<Vec<CommandRow>, ReadModelError>> + Send;

    /// Brings the instance and outbox tables of the manager kept in `target` up to the
    /// newest schema this code knows (numbered, frozen migrations, recorded beside them,
    /// applied once under a lock), or refuses a schema newer than the code with
    /// [`ReadModelError::SchemaTooNew`]. The driver calls it before its first
    /// transaction, and again after any failure.
    fn migrate_process_tables(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;
}

/// What a process driver reads and writes inside a read-model transaction.
///
/// Every method works on the transaction's target and sees what the transaction wrote
/// so far; nothing is visible to others until the read model commits it. No text the
/// driver hands over holds a NUL character (instance keys with one are refused, JSON
/// escapes it, reasons carry U+FFFD instead), so a store may keep them as SQL text.
pub trait ProcessTx: ReadModelTx {
    /// The instance `key`, `None` if there is none.
    fn instance(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<Option<InstanceRow>, ReadModelError>> + Send;

    /// Writes `instance` (inserting it, or replacing every field but its start);
    /// `position` is the global position that caused the change.
    fn save_instance(
        &mut self,
        instance: &InstanceRow,
        position: u64,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Adds `command` to the outbox as pending, numbered after every command decided
    /// before it.
    fn insert_command(
        &mut self,
        command: &NewCommand<'_>,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// The oldest pending command of the instance `key`.
    fn next_pending(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<Option<CommandRow>, ReadModelError>> + Send;

    /// The instances that have pending commands, the one with the oldest first.
    fn instances_with_pending(
        &mut self,
    ) -> impl Future<Output = Result<Vec<String>, ReadModelError>> + Send;

    /// How many commands of the instance `key` are pending.
    fn count_pending(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<u64, ReadModelError>> + Send;

    /// Marks every pending command of the instance `key` [`OutboxState::Skipped`].
    fn skip_pending(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Records the outcome of the command numbered `seq` — only if it is still pending.
    /// Returns whether it was (`false`: another driver recorded an outcome first, or the
    /// command was skipped, and nothing changed).
    fn record_outcome(
        &mut self,
        seq: u64,
        state: OutboxState,
        outcome: Option<&str>,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send;

    /// The command numbered `seq`, `None` if there is none.
    fn command(
        &mut self,
        seq: u64,
    ) -> impl Future<Output = Result<Option<CommandRow>, ReadModelError>> + Send;
}

/// One process instance as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// Its key.
    pub key: String,
    /// Where it stands.
    pub status: ProcessStatus,
    /// The manager's state, as JSON.
    pub state: String,
    /// The correlation id of its commands.
    pub correlation_id: Uuid,
    /// The compensations of its completed steps, oldest first, as a JSON array.
    pub compensations: String,
    /// Whether it completes once nothing is pending.
    pub completing: bool,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// A command to add to the outbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewCommand<'a> {
    /// The instance that decided it.
    pub instance: &'a str,
    /// Step or compensation.
    pub kind: CommandKind,
    /// The command, as JSON.
    pub command: &'a str,
    /// The command that undoes it once it was accepted, as JSON.
    pub compensation: Option<&'a str>,
    /// Its id, fixed with the intent: every redelivery sends the same one.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Its causation id.
    pub causation_id: Uuid,
    /// The global position of the event it was decided on.
    pub position: u64,
    /// The W3C trace context of the event it was decided on, so that its dispatch,
    /// recovered after a crash or not, continues that trace.
    pub traceparent: Option<&'a str>,
}

/// A command of the outbox as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    /// Its number: the order of decision, across the manager's instances.
    pub seq: u64,
    /// The instance that decided it.
    pub instance: String,
    /// Step or compensation.
    pub kind: CommandKind,
    /// The command, as JSON.
    pub command: String,
    /// The command that undoes it, as JSON.
    pub compensation: Option<String>,
    /// Its id.
    pub command_id: Uuid,
    /// Its correlation id.
    pub correlation_id: Uuid,
    /// Its causation id.
    pub causation_id: Uuid,
    /// Where it stands.
    pub state: OutboxState,
    /// The rejection reason, for a rejected command.
    pub outcome: Option<String>,
    /// The global position of the event it was decided on.
    pub position: u64,
    /// The W3C trace context of the event it was decided on.
    pub traceparent: Option<String>,
}

/// Where an outbox command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxState {
    /// Decided, not yet known to be accepted.
    Pending,
    /// Accepted.
    Done,
    /// Rejected with a domain error.
    Rejected,
    /// Not dispatched: an earlier step failed first.
    Skipped,
}

impl OutboxState {
    /// The name stored: `pending`, `done`, `rejected` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Rejected => "rejected",
            Self::Skipped => "skipped",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => Self::Pending,
            "done" => Self::Done,
            "rejected" => Self::Rejected,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads back the stored names and ids of a row, for a backend: a value of another shape
/// is [`ReadModelError::Corrupt`], naming the target, the instance and the field.
#[derive(Debug, Clone, Copy)]
pub struct RowReader<'a> {
    /// The manager's target.
    pub target: Target,
    /// The instance the row belongs to.
    pub instance: &'a str,
}

impl RowReader<'_> {
    fn corrupt(&self, what: &'static str, detail: String) -> ReadModelError {
        ReadModelError::Corrupt {
            target: self.target.to_string(),
            what,
            source: format!("instance `{}`: {detail}", self.instance).into(),
        }
    }

    /// A stored [`ProcessStatus`].
    pub fn status(&self, text: &str) -> Result<ProcessStatus, ReadModelError> {
        ProcessStatus::parse(text)
            .ok_or_else(|| self.corrupt("process status", format!("unknown status `{text}`")))
    }

    /// A stored [`CommandKind`].
    pub fn kind(&self, text: &str) -> Result<CommandKind, ReadModelError> {
        CommandKind::parse(text)
            .ok_or_else(|| self.corrupt("command kind", format!("unknown kind `{text}`")))
    }

    /// A stored [`OutboxState`].
    pub fn state(&self, text: &str) -> Result<OutboxState, ReadModelError> {
        OutboxState::parse(text)
            .ok_or_else(|| self.corrupt("outbox state", format!("unknown state `{text}`")))
    }

    /// A stored id, as text.
    pub fn uuid(&self, text: &str) -> Result<Uuid, ReadModelError> {
        text.parse()
            .map_err(|error: uuid::Error| self.corrupt("id", format!("`{text}`: {error}")))
    }

    /// A stored outbox number or position.
    pub fn number(&self, what: &'static str, value: i64) -> Result<u64, ReadModelError> {
        u64::try_from(value).map_err(|_| self.corrupt(what, format!("negative {what} {value}")))
    }
}
