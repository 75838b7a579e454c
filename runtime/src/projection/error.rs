//! What handlers and the runner report.

use crate::error::{BoxError, TaskFailure};
use crate::follow::describe_refusal;
use crate::store::StoreError;

use super::read_model::ReadModelError;

crate::error::handler_error! {
    /// A projection's or reactor's handler failure: any error converts into it with `?`.
    ///
    /// It does not implement `std::error::Error` itself (so that every error type can
    /// convert into it); [`ProjectionError::message`] and `Display` show the whole chain of
    /// causes, and a [`RunnerError`] reporting it keeps the error as its `source()`.
    ProjectionError
}

/// Why a projection or reactor stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// Reading the event store failed.
    #[error("projection `{projection}`: reading the event store failed")]
    Store {
        /// The projection or reactor.
        projection: &'static str,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The read model (or checkpoint store) failed.
    #[error("projection `{projection}`")]
    ReadModel {
        /// The projection or reactor.
        projection: &'static str,
        /// What the read model said.
        #[source]
        source: ReadModelError,
    },
    /// An event kept failing after every retry and the projection is configured to stop
    /// ([`OnPoison::Stop`](super::OnPoison::Stop)); its checkpoint stays before the event.
    #[error(
        "projection `{projection}` v{version} stopped at event `{event_name}` (stream `{stream_id}`, version {stream_version}, position {position}) after {attempts} attempts"
    )]
    Poisoned {
        /// The projection or reactor.
        projection: &'static str,
        /// The projection's version (0 for reactors).
        version: u32,
        /// The event's name.
        event_name: String,
        /// Its stream.
        stream_id: String,
        /// Its version in the stream.
        stream_version: u64,
        /// Its global position.
        position: u64,
        /// How many times the handler was tried.
        attempts: u32,
        /// The handler's last error.
        #[source]
        source: BoxError,
    },
    /// The projection's `#[setup]` failed; nothing was written.
    #[error("projection `{projection}` v{version}: setting up the read model failed")]
    Setup {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The `#[setup]` handler's error.
        #[source]
        source: BoxError,
    },
    /// The runner's task ended abnormally (it panicked or was aborted).
    #[error("projection `{projection}`: its task ended abnormally")]
    Task {
        /// The projection or reactor.
        projection: &'static str,
        /// How it ended.
        #[source]
        source: TaskFailure,
    },
    /// The stored checkpoint is behind the one this projector committed last: the read
    /// model was reset (a rebuild) or restored from a backup under it. Nothing was written;
    /// the runner reads again from `stored` (a bus consumer should do the same).
    #[error(
        "projection `{projection}` v{version}: its stored checkpoint moved back from {known} to {stored} (reset or restored under a running projector)"
    )]
    CheckpointMovedBack {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The checkpoint this projector committed or read last.
        known: u64,
        /// The checkpoint found in the read model now.
        stored: u64,
    },
    /// A partition's stored position is behind the one this projector committed last:
    /// the read model was reset or restored under a consumer feeding it from a
    /// partitioned log. Nothing was written; the consumer reads on from the stored
    /// offsets.
    #[error(
        "projection `{projection}` v{version}: the position stored for {topic}/{partition} moved back from {known} to {stored} (reset or restored under a running consumer)"
    )]
    PartitionMovedBack {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The position this projector committed last.
        known: u64,
        /// The position found in the read model now (0: none).
        stored: u64,
    },
    /// The version's read model holds partition positions of another feed: a bus's
    /// topics, or workers splitting the log into another count of stream partitions
    /// (`factum.streams/<count>`). Feeding it this way too would apply events a second
    /// time, so nothing was written. Run every worker with the same partition count (or
    /// bump the projection's version to build it anew the other way).
    #[error(
        "projection `{projection}` v{version} is fed by `{found}`, not {expected}: refusing to apply events a second time; feed each version one way only (every worker with the same partition count), or bump the version to build it anew"
    )]
    FedOtherwise {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The topic found in its read model.
        found: String,
        /// What this feeder uses: a worker's `factum.streams/<count>`, or "the topics of a
        /// bus".
        expected: String,
    },
    /// A parked row to replay is an unreadable row parked by an operator: there is no
    /// event to apply.
    #[error(
        "projection `{projection}` v{version}: position {position} was parked as an unreadable row; there is no event to replay (repair the row, then rebuild the projection)"
    )]
    NoEventToReplay {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The position asked for.
        position: u64,
    },
    /// `ProjectionRunner::park_unreadable` (or `park_unreadable_reactor`) refused:
    /// `position` is not where reading after the projection's (reactor's) checkpoint
    /// fails. Nothing was written.
    #[error(
        "projection `{projection}` v{version}: refusing to park position {position}: {}",
        describe_refusal(*position, *checkpoint, *next_unreadable)
    )]
    NotUnreadable {
        /// The projection or reactor.
        projection: &'static str,
        /// The projection's version (0 for reactors).
        version: u32,
        /// The position asked for.
        position: u64,
        /// The projection's (reactor's) checkpoint.
        checkpoint: u64,
        /// Where reading after the checkpoint does fail, if it failed with a corrupt row
        /// before passing `position` or just after it; `None` when it read past
        /// `position` (or to the head of the log) without failing.
        next_unreadable: Option<u64>,
    },
    /// A parked event to replay was not found.
    #[error("projection `{projection}` v{version} has no parked event at position {position}")]
    NotParked {
        /// The projection.
        projection: &'static str,
        /// Its version.
        version: u32,
        /// The position asked for.
        position: u64,
    },
}
