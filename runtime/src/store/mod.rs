//! The storage contract every backend fulfils.

pub mod commands;
pub mod decision;
pub mod limits;
mod memory;

use std::fmt;
use std::future::Future;

#[cfg(feature = "postgres")]
pub use crate::postgres::{PostgresConfig, PostgresError, PostgresStore};
#[cfg(feature = "sqlite")]
pub use crate::sqlite::{SqliteOpenError, SqliteOptions, SqliteStore, Synchronous};
pub use commands::{CommandAppend, CommandOutcome, CommandRecord, CommandSession, CommandWrite};
pub use decision::{AppendCondition, DecisionStore, MatchedEvents, Query, QueryItem};
pub use memory::MemoryStore;

use crate::envelope::{NewEvent, RecordedEvent, Snapshot};

/// What the writer expects the stream to look like; checked atomically with the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist, at any version.
    StreamExists,
    /// The stream's last version must be exactly this.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (`None`: it does not exist) meets
    /// this expectation.
    pub fn is_met_by(self, actual: Option<u64>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual.is_none(),
            Self::StreamExists => actual.is_some(),
            Self::Exact(version) => actual == Some(version),
        }
    }

    /// Whether a batch appended after stream version `version_before` (0: the stream did
    /// not exist) met this expectation; for recognising an idempotent re-append.
    pub fn was_met_before(self, version_before: u64) -> bool {
        self.is_met_by(Some(version_before).filter(|version| *version > 0))
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append.
    pub stream_version: u64,
    /// The global position of the last appended event.
    pub last_position: u64,
    /// False when the events were already stored (an idempotent re-append).
    pub written: bool,
}

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version; nothing was written.
    #[error("stream `{stream_id}`: expected {expected}, found {}", describe_actual(*actual))]
    Conflict {
        /// The stream appended to.
        stream_id: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual version (`None` when it does not exist).
        actual: Option<u64>,
    },
    /// The batch re-used event ids that are stored, but not as this exact batch.
    #[error("stream `{stream_id}`: event id {event_id} is already stored elsewhere")]
    DuplicateEventId {
        /// The stream appended to.
        stream_id: String,
        /// The re-used id.
        event_id: uuid::Uuid,
    },
    /// The batch holds one event id twice; nothing was written.
    #[error("stream `{stream_id}`: event id {event_id} appears twice in the batch")]
    RepeatedEventId {
        /// The stream appended to.
        stream_id: String,
        /// The repeated id.
        event_id: uuid::Uuid,
    },
    /// A value breaks one of the [limits] a store checks so that what it accepts
    /// reads back equal; nothing was written.
    #[error("stream `{stream_id}`: {field} {limit}; nothing was written")]
    ValueRefused {
        /// The stream appended to (or whose snapshot was saved).
        stream_id: String,
        /// Which value, e.g. ``event 2 of the batch (`OrderPlaced`) payload``.
        field: String,
        /// The limit it breaks.
        limit: limits::Limit,
    },
    /// An append with no events.
    #[error("stream `{stream_id}`: an append needs at least one event")]
    EmptyAppend {
        /// The stream appended to.
        stream_id: String,
    },
    /// The stream type differs from the one the stream was created with.
    #[error("stream `{stream_id}` has type `{existing}`, not `{requested}`")]
    StreamTypeMismatch {
        /// The stream appended to.
        stream_id: String,
        /// The stream's type.
        existing: String,
        /// The type the append named.
        requested: String,
    },
    /// A stored row could not be read back (a corrupt column, not a payload: payloads are
    /// decoded by the event set and fail with a typed decode error instead), or rows
    /// contradict each other (an event whose stream has no row, a stream whose versions
    /// are not gapless).
    ///
    /// A read never skips such a row: it fails where the row stands, so a follower's
    /// checkpoint stays before it (see `ProjectionRunner::park_unreadable`,
    /// `ProjectionRunner::park_unreadable_reactor` and `ProcessRunner::park_unreadable`
    /// for moving a projection, reactor or process manager past a row that cannot be
    /// repaired).
    #[error("{}: stored row is corrupt: {reason}", describe_row(stream_id, *stream_version, *position))]
    CorruptRow {
        /// The stream holding the row; empty when the row does not say (an event whose
        /// stream row is missing, the log's newest position).
        stream_id: String,
        /// The row's stream version (0 when unknown).
        stream_version: u64,
        /// The event's global position, when the row is an event and its position could
        /// be read; `None` for snapshot and stream rows.
        position: Option<u64>,
        /// What could not be read.
        reason: String,
    },
    /// The event is archived (see [`crate::archive`]): its body is in an archive file
    /// this store was not opened with. Live events read as before; nothing was lost.
    #[error(
        "stream `{stream_id}` version {stream_version} (position {position}) is archived: open the store with the archive that holds it (`SqliteOptions::archive`; `factum archive --list` names the files)"
    )]
    Archived {
        /// The event's stream.
        stream_id: String,
        /// Its version in the stream.
        stream_version: u64,
        /// Its global position.
        position: u64,
    },
    /// A decision's condition failed ([`DecisionStore::append_if`]): an event its query
    /// matches was stored after the position the decision read up to. Nothing was written;
    /// read again and decide again.
    #[error(
        "stream `{stream_id}`: the decision read the log up to position {after}, and an event its query matches was stored since, at position {position}; nothing was written"
    )]
    ConditionFailed {
        /// The stream the decision appended to.
        stream_id: String,
        /// The position the decision read up to.
        after: u64,
        /// The first event its query matches after that position.
        position: u64,
    },
    /// The backend failed.
    #[error("store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A short name of the error's kind (`conflict`, `duplicate_event_id`, ...): the
    /// `error.type` of a failed append's span.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::ConditionFailed { .. } => "condition_failed",
            Self::DuplicateEventId { .. } => "duplicate_event_id",
            Self::RepeatedEventId { .. } => "repeated_event_id",
            Self::ValueRefused { .. } => "value_refused",
            Self::EmptyAppend { .. } => "empty_append",
            Self::StreamTypeMismatch { .. } => "stream_type_mismatch",
            Self::CorruptRow { .. } => "corrupt_row",
            Self::Archived { .. } => "archived",
            Self::Backend(_) => "backend",
        }
    }
}

/// Where a corrupt row stands, for [`StoreError::CorruptRow`]'s message.
fn describe_row(stream_id: &str, stream_version: u64, position: Option<u64>) -> String {
    match (stream_id.is_empty(), position) {
        (false, Some(position)) => {
            format!("stream `{stream_id}` version {stream_version} (position {position})")
        }
        (false, None) => format!("stream `{stream_id}` version {stream_version}"),
        (true, Some(position)) => format!("the event at position {position}"),
        (true, None) => "a row of the store".to_owned(),
    }
}

fn describe_actual(actual: Option<u64>) -> String {
    match actual {
        None => "no stream".to_owned(),
        Some(version) => format!("version {version}"),
    }
}

/// Why [`EventStore::for_each_in_stream`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum VisitError<E> {
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The visitor returned an error.
    #[error(transparent)]
    Visitor(E),
}

/// What a replay reads of a stored event ([`EventStore::replay_stream`]): where it is and
/// what it holds, without its metadata or time, which rebuilding a state never reads.
#[derive(Debug, Clone, Copy)]
pub struct ReplayedEvent<'a> {
    /// The stream.
    pub stream_id: &'a str,
    /// The event's version in its stream.
    pub stream_version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's name.
    pub name: &'a str,
    /// The schema version its payload was written in.
    pub schema_version: u32,
    /// The payload's JSON text, as stored. A store may hand it over without parsing it
    /// (SQLite does: the decoder parses it anyway), so it is not known to be JSON; a
    /// decoder's error says when it is not ([`DecodeError::not_json`]).
    ///
    /// [`DecodeError::not_json`]: crate::error::DecodeError::not_json
    pub payload: &'a str,
}

impl<'a> From<&'a RecordedEvent> for ReplayedEvent<'a> {
    fn from(record: &'a RecordedEvent) -> Self {
        Self {
            stream_id: &record.stream_id,
            stream_version: record.stream_version,
            position: record.position,
            name: &record.name,
            schema_version: record.schema_version,
            payload: record.payload.get(),
        }
    }
}

/// Events of the global log that passed a name filter, and how far the log was examined.
#[derive(Debug, Clone, Default)]
pub struct FilteredPage {
    /// The matching events, in commit order.
    pub events: Vec<RecordedEvent>,
    /// The highest global position examined: every event up to here that matched the
    /// filter is in `events`. Equal to `after` when nothing newer was read.
    pub scanned_to: u64,
}

/// Which streams a [`StreamCatalog`] lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFilter<'a> {
    /// Only streams of this type (an aggregate's name).
    pub stream_type: Option<&'a str>,
    /// Only streams whose id holds this text (case-sensitive).
    pub contains: Option<&'a str>,
}

/// A store that lists its streams, for operators: `factum streams` and the web console.
/// The SQLite and PostgreSQL stores implement it.
pub trait StreamCatalog: EventStore {
    /// Up to `limit` streams passing `filter`, in the order of their ids, after the id
    /// `after` (a page's last, for the next page).
    fn streams(
        &self,
        filter: StreamFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send;
}

/// A stream as a listing shows it: for operators (`factum streams`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamInfo {
    /// The stream's id.
    pub stream_id: String,
    /// Its type (an aggregate's name).
    pub stream_type: String,
    /// Its version: how many events it holds.
    pub version: u64,
}

/// The newest event of the global log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its global position.
    pub position: u64,
    /// When it was recorded.
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// An append-only log of streams of events.
///
/// Every backend guarantees: appends are atomic (all events or none) and checked against
/// the expected version; stream versions are gapless from 1; global positions strictly
/// increase in commit order; re-appending the same event ids as the same batch is
/// idempotent; a command appended with [`EventStore::append_command`] is recorded in
/// the transaction of its events and runs once per command id (see [`commands`]).
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream_id` (of type `stream_type`) if it is at `expected`.
    fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Appends a command's `events` (possibly none) to `stream_id` and records the
    /// `command`, in one transaction; or, when a command with that id is recorded
    /// already, writes nothing and returns its stored outcome.
    ///
    /// The record is looked up first, before the expected version is checked, so every
    /// repeat of a command gets [`CommandAppend::AlreadyExecuted`] with the original
    /// outcome, even after the stream moved on. Otherwise the checks and writes are those
    /// of [`EventStore::append`] ([limits](limits::check_command), expected version,
    /// stream type, event ids; all or nothing) plus the record; an empty `events` records
    /// the command alone, after checking the expected version and the stream type. A
    /// failed check writes no record. Concurrent calls with one command id, from any
    /// handle or process, write once: the others wait and get its outcome.
    fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> impl Future<Output = Result<CommandAppend, StoreError>> + Send;

    /// Runs one command against one stream: looks its record up, visits the stream's
    /// events from `from_version` (so the caller rebuilds the aggregate), asks `decide`
    /// for what to write, and appends that with the command's record
    /// ([`EventStore::append_command`]'s checks and guarantees).
    ///
    /// A command recorded before is answered [`CommandSession::AlreadyExecuted`] without
    /// visiting or deciding; a decision that fails is [`CommandSession::Refused`] and
    /// writes nothing. Errors of `visit` end the session with that error.
    ///
    /// The default runs the three steps one after the other (`command_outcome`,
    /// `for_each_in_stream`, `append_command`); the expected version in the decision
    /// catches a writer in between. A store may run them in one write transaction
    /// instead — SQLite does, on its writer thread (so `visit` and `decide` own what they
    /// use): one hop, one transaction, the decision taken under the write lock, so it
    /// never conflicts.
    fn run_command<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        from_version: u64,
        command: CommandRecord,
        mut visit: V,
        decide: D,
    ) -> impl Future<Output = Result<CommandSession<E>, E>> + Send
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<CommandWrite, E> + Send + 'static,
    {
        async move {
            if let Some(outcome) = self.command_outcome(command.command_id).await? {
                return Ok(CommandSession::AlreadyExecuted(outcome));
            }
            match self
                .for_each_in_stream(stream_id, from_version, |record| visit(record))
                .await
            {
                Ok(()) => {}
                Err(VisitError::Visitor(error)) => return Err(error),
                Err(VisitError::Store(error)) => return Err(error.into()),
            }
            let write = match decide() {
                Ok(write) => write,
                Err(refusal) => return Ok(CommandSession::Refused(refusal)),
            };
            Ok(
                match self
                    .append_command(
                        stream_id,
                        stream_type,
                        write.expected,
                        write.events,
                        command,
                    )
                    .await?
                {
                    CommandAppend::Appended(outcome) => CommandSession::Appended(outcome),
                    CommandAppend::AlreadyExecuted(outcome) => {
                        CommandSession::AlreadyExecuted(outcome)
                    }
                },
            )
        }
    }

    /// The stored outcome of the command `command_id`, or `None` when no command with
    /// that id is recorded (never, or pruned).
    fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<CommandOutcome>, StoreError>> + Send;

    /// Deletes the records of commands recorded before `recorded_before` (the retention
    /// of command ids), returning how many; their events stay. A command repeated after
    /// its record is deleted runs again.
    fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Reads up to `limit` events of a stream, starting at stream version `from_version`.
    fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads up to `limit` events of the whole store after global position `after`, in
    /// commit order.
    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Calls `visit` with each event of a stream from stream version `from_version` on,
    /// in order, without handing out copies; stops at the first error of `visit`.
    ///
    /// Replaying an aggregate goes through here. The default reads pages with
    /// [`EventStore::read_stream`]; a store that holds events in memory lends them out.
    fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> impl Future<Output = Result<(), VisitError<E>>> + Send
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        async move {
            const PAGE: usize = 1024;
            let mut next = from_version.max(1);
            loop {
                let page = self
                    .read_stream(stream_id, next, PAGE)
                    .await
                    .map_err(VisitError::Store)?;
                for event in &page {
                    visit(event).map_err(VisitError::Visitor)?;
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => next = last.stream_version + 1,
                    _ => return Ok(()),
                }
            }
        }
    }

    /// Calls `visit` with what a replay needs of each event of a stream from stream
    /// version `from_version` on ([`ReplayedEvent`]: no metadata, no timestamp), in order;
    /// stops at the first error of `visit`. The store checks what it reads as
    /// [`EventStore::for_each_in_stream`] does.
    ///
    /// [`Repository::load`](crate::repository::Repository::load) goes through here. The
    /// default visits [`EventStore::for_each_in_stream`]'s records; a store may read
    /// less (SQLite selects the columns a replay needs and leaves the metadata unparsed).
    fn replay_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> impl Future<Output = Result<(), VisitError<E>>> + Send
    where
        E: Send,
        F: FnMut(ReplayedEvent<'_>) -> Result<(), E> + Send,
    {
        self.for_each_in_stream(stream_id, from_version, move |record| {
            visit(ReplayedEvent::from(record))
        })
    }

    /// Reads events of the whole store after global position `after` whose names are in
    /// `names`, in commit order, up to `limit` of them.
    ///
    /// [`FilteredPage::scanned_to`] says how far the log was examined: a follower sets its
    /// checkpoint there, past events it does not handle, so a projection reads only what it
    /// handles. The default pages through [`EventStore::read_all`]; SQL stores filter in
    /// the query.
    fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> impl Future<Output = Result<FilteredPage, StoreError>> + Send {
        async move {
            const PAGE: usize = 1024;
            let limit = limit.max(1);
            let mut page = FilteredPage {
                events: Vec::new(),
                scanned_to: after,
            };
            loop {
                let batch = self.read_all(page.scanned_to, PAGE).await?;
                let full = batch.len() == PAGE;
                for event in batch {
                    page.scanned_to = event.position;
                    if names.contains(&event.name.as_str()) {
                        page.events.push(event);
                        if page.events.len() == limit {
                            return Ok(page);
                        }
                    }
                }
                if !full {
                    return Ok(page);
                }
            }
        }
    }

    /// The global position of the newest event, with its timestamp; `None` for an empty
    /// store. Followers compute their lag from it.
    ///
    /// The default pages through the whole log; every factum store answers from an index.
    fn head(&self) -> impl Future<Output = Result<Option<Head>, StoreError>> + Send {
        async move {
            const PAGE: usize = 4096;
            let mut head = None;
            let mut after = 0;
            loop {
                let batch = self.read_all(after, PAGE).await?;
                if let Some(last) = batch.last() {
                    after = last.position;
                    head = Some(Head {
                        position: last.position,
                        timestamp: last.timestamp,
                    });
                }
                if batch.len() < PAGE {
                    return Ok(head);
                }
            }
        }
    }

    /// Waits until an event after global position `after` may have committed, or until
    /// `timeout` passes, whichever comes first. A wake-up is a hint, not a promise: the
    /// caller reads again either way.
    ///
    /// Followers call this when they have caught up. The default sleeps a short poll
    /// interval; PostgreSQL wakes on `LISTEN/NOTIFY`, SQLite on in-process appends and a
    /// cheap poll for other processes.
    fn wait_for_events(
        &self,
        after: u64,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = after;
        async move {
            tokio::time::sleep(timeout.min(std::time::Duration::from_millis(50))).await;
            Ok(())
        }
    }

    /// The stream's last version, or `None` when it does not exist.
    fn stream_version(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Stores the snapshot as the stream's latest, replacing any earlier one.
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stream's latest snapshot, if any.
    fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;
}

/// A shared store is a store: repositories and tasks can hold `Arc`s of one.
impl<S: EventStore + ?Sized> EventStore for std::sync::Arc<S> {
    fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        (**self).append(stream_id, stream_type, expected, events)
    }

    fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> impl Future<Output = Result<CommandAppend, StoreError>> + Send {
        (**self).append_command(stream_id, stream_type, expected, events, command)
    }

    fn run_command<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        from_version: u64,
        command: CommandRecord,
        visit: V,
        decide: D,
    ) -> impl Future<Output = Result<CommandSession<E>, E>> + Send
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<CommandWrite, E> + Send + 'static,
    {
        (**self).run_command(stream_id, stream_type, from_version, command, visit, decide)
    }

    fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<CommandOutcome>, StoreError>> + Send {
        (**self).command_outcome(command_id)
    }

    fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).prune_commands(recorded_before)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_stream(stream_id, from_version, limit)
    }

    fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), VisitError<E>>> + Send
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        (**self).for_each_in_stream(stream_id, from_version, visit)
    }

    fn replay_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), VisitError<E>>> + Send
    where
        E: Send,
        F: FnMut(ReplayedEvent<'_>) -> Result<(), E> + Send,
    {
        (**self).replay_stream(stream_id, from_version, visit)
    }

    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_all(after, limit)
    }

    fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> impl Future<Output = Result<FilteredPage, StoreError>> + Send {
        (**self).read_all_filtered(after, limit, names)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Head>, StoreError>> + Send {
        (**self).head()
    }

    fn wait_for_events(
        &self,
        after: u64,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).wait_for_events(after, timeout)
    }

    fn stream_version(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        (**self).stream_version(stream_id)
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_snapshot(snapshot)
    }

    fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        (**self).load_snapshot(stream_id)
    }
}
