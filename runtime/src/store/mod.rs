//! The storage contract every backend fulfils.

mod memory;

use std::fmt;
use std::future::Future;

pub use memory::MemoryStore;

use crate::envelope::{NewEvent, RecordedEvent};

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
    /// The backend failed.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn describe_actual(actual: Option<u64>) -> String {
    match actual {
        None => "no stream".to_owned(),
        Some(version) => format!("version {version}"),
    }
}

/// An append-only log of streams of events.
///
/// Every backend guarantees: appends are atomic (all events or none) and checked against
/// the expected version; stream versions are gapless from 1; global positions strictly
/// increase in commit order; re-appending the same event ids as the same batch is
/// idempotent.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream_id` (of type `stream_type`) if it is at `expected`.
    fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

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

    /// The stream's last version, or `None` when it does not exist.
    fn stream_version(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
}
