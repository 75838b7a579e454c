//! Commands recorded once: the record a command leaves in the store, so that a command
//! submitted again (a retried request, a redelivered message) returns its original
//! outcome instead of running twice.
//!
//! # What is guaranteed, and why
//!
//! - **The record is written in the transaction of the command's events.**
//!   [`EventStore::append_command`] writes the events and a [`CommandRecord`] (keyed by
//!   the command id) atomically: both or neither. A crash between "events written" and
//!   "command remembered" is impossible, so a retry after any failure either finds the
//!   record (the events are stored) or finds nothing (nothing was written, and running
//!   the command again is safe). A command that decided to record no events is recorded
//!   all the same, once.
//! - **The record is looked up first, before the expected version.** A retry carries the
//!   expected version its first attempt read; by the time it arrives the stream may have
//!   moved on (the first attempt succeeded). Checking the record first gives every retry
//!   [`CommandAppend::AlreadyExecuted`] with the original [`CommandOutcome`] (stream
//!   version, positions, event ids), not a conflict, and writes nothing.
//! - **Concurrent submissions of one id record it once.** The lookup and the write run
//!   under the lock that orders appends (memory: the store's lock; SQLite: the write
//!   lock, `BEGIN IMMEDIATE`, across processes; PostgreSQL: the store's append lock, with
//!   the primary key on the command id as the backstop): exactly one submission writes,
//!   every other one waits for it and gets its outcome.
//! - **A failed command leaves no record.** A conflict, a refused value or a stream type
//!   mismatch writes neither events nor record, so a later attempt with the right
//!   expected version runs.
//! - **Retention is the caller's.** Records stay until [`EventStore::prune_commands`]
//!   deletes those recorded before a moment; a command repeated after its record was
//!   pruned runs again. Keep records at least as long as a client may retry.
//!
//! The store does not compare commands: the [`CommandRecord::fingerprint`] is an opaque
//! digest the caller computes (the repository hashes the command's name and JSON), stored
//! and handed back so the caller can tell "the same command again" from "another command
//! under a used id".
//!
//! [`EventStore::append_command`]: super::EventStore::append_command
//! [`EventStore::prune_commands`]: super::EventStore::prune_commands

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::limits::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};

/// What a command leaves in the store beside its events: its id, a digest of the
/// command, and when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// The command's id: a second command with this id is answered from the record.
    pub command_id: Uuid,
    /// An opaque digest of the command, computed by the caller; stored and returned, never
    /// interpreted. No NUL character (stores refuse it like every other NUL).
    pub fingerprint: String,
    /// When the command was recorded: whole microseconds, years 1 to 9999, like event
    /// timestamps (see [`limits`](super::limits)). [`EventStore::prune_commands`]
    /// compares it.
    ///
    /// [`EventStore::prune_commands`]: super::EventStore::prune_commands
    pub recorded_at: DateTime<Utc>,
}

impl CommandRecord {
    /// A record of `command_id` with `fingerprint`, recorded now (to the microsecond).
    pub fn new(command_id: Uuid, fingerprint: impl Into<String>) -> Self {
        Self {
            command_id,
            fingerprint: fingerprint.into(),
            recorded_at: crate::envelope::now(),
        }
    }
}

/// The outcome of a recorded command, as stored with its record: what a repeat of the
/// command is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// The command's id.
    pub command_id: Uuid,
    /// The digest stored with it ([`CommandRecord::fingerprint`]).
    pub fingerprint: String,
    /// The stream the command appended to.
    pub stream_id: String,
    /// The stream's version after the command (0: the stream did not exist and the
    /// command recorded no events).
    pub stream_version: u64,
    /// The global position of the command's first event; `None` when it recorded none.
    pub first_position: Option<u64>,
    /// The global position of the command's last event: the consistency token a reader
    /// waits for. `None` when it recorded no events.
    pub last_position: Option<u64>,
    /// The ids of the command's events, in order; empty when it recorded none.
    pub event_ids: Vec<Uuid>,
    /// When the command was recorded ([`CommandRecord::recorded_at`]).
    pub recorded_at: DateTime<Utc>,
}

impl CommandOutcome {
    /// The outcome of `command`, which appended `event_ids` to `stream_id`, leaving it at
    /// `stream_version`, at `positions` (first, last; `None` for no events).
    pub(crate) fn new(
        command: &CommandRecord,
        stream_id: &str,
        stream_version: u64,
        positions: Option<(u64, u64)>,
        event_ids: Vec<Uuid>,
    ) -> Self {
        Self {
            command_id: command.command_id,
            fingerprint: command.fingerprint.clone(),
            stream_id: stream_id.to_owned(),
            stream_version,
            first_position: positions.map(|(first, _)| first),
            last_position: positions.map(|(_, last)| last),
            event_ids,
            recorded_at: command.recorded_at,
        }
    }
}

impl CommandOutcome {
    /// The outcome as a backend read it back, if its positions fit its event ids (both
    /// `None` with no ids, or first ≤ last with some); else why not, for a `CorruptRow`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn check_stored(self) -> Result<Self, String> {
        let fits = match (self.first_position, self.last_position) {
            (None, None) => self.event_ids.is_empty(),
            (Some(first), Some(last)) => !self.event_ids.is_empty() && first <= last,
            _ => false,
        };
        if fits {
            Ok(self)
        } else {
            Err(format!(
                "positions {:?} to {:?} do not fit {} event ids",
                self.first_position,
                self.last_position,
                self.event_ids.len()
            ))
        }
    }
}

/// The answer of [`EventStore::append_command`]: the command ran now, or it had run
/// before. Both carry the full [`CommandOutcome`], so a caller answers a first
/// submission and a repeat alike (an [`AppendOutcome`](super::AppendOutcome) could not
/// describe a command that recorded no events, nor carry its event ids).
///
/// [`EventStore::append_command`]: super::EventStore::append_command
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandAppend {
    /// The command's events (if any) and its record were written now.
    Appended(CommandOutcome),
    /// A command with this id was recorded before: nothing was written, and this is the
    /// stored outcome (its fingerprint may differ from the one just submitted).
    AlreadyExecuted(CommandOutcome),
}

impl CommandAppend {
    /// The outcome, new or stored.
    pub fn outcome(&self) -> &CommandOutcome {
        match self {
            Self::Appended(outcome) | Self::AlreadyExecuted(outcome) => outcome,
        }
    }

    /// The outcome, new or stored, by value.
    pub fn into_outcome(self) -> CommandOutcome {
        match self {
            Self::Appended(outcome) | Self::AlreadyExecuted(outcome) => outcome,
        }
    }

    /// Whether the command had been recorded before (nothing was written).
    pub fn is_already_executed(&self) -> bool {
        matches!(self, Self::AlreadyExecuted(_))
    }
}

/// The bound `prune_commands` compares with, exact on every backend: stored times are
/// whole microseconds of the years 1 to 9999, so "recorded before `bound`" selects the
/// same records as "before `bound` rounded up to a microsecond and kept within that
/// range", which every backend can hold as a parameter.
pub(crate) fn prune_bound(bound: DateTime<Utc>) -> DateTime<Utc> {
    let earliest = DateTime::from_timestamp(EARLIEST_TIMESTAMP, 0).unwrap_or(DateTime::UNIX_EPOCH);
    // The first moment after every accepted time: 10000-01-01T00:00:00Z.
    let after_latest =
        DateTime::from_timestamp(LATEST_TIMESTAMP + 1, 0).unwrap_or(DateTime::UNIX_EPOCH);
    let bound = bound.clamp(earliest, after_latest);
    let micros = bound.timestamp_subsec_nanos().div_ceil(1_000);
    // A leap second (`23:59:60.x`) rounds up to the next second: no stored time lies
    // between the two.
    let (seconds, micros) = if micros >= 1_000_000 {
        (bound.timestamp() + 1, 0)
    } else {
        (bound.timestamp(), micros)
    };
    DateTime::from_timestamp(seconds, micros * 1_000).unwrap_or(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_bounds_round_up_to_a_microsecond_within_the_accepted_years() {
        let at = |seconds, nanos| DateTime::from_timestamp(seconds, nanos).unwrap();
        assert_eq!(prune_bound(at(10, 1_000)), at(10, 1_000));
        assert_eq!(prune_bound(at(10, 1_001)), at(10, 2_000));
        assert_eq!(prune_bound(at(10, 999_999_001)), at(11, 0));
        assert_eq!(prune_bound(at(59, 1_500_000_000)), at(60, 0));
        assert_eq!(
            prune_bound(DateTime::<Utc>::MIN_UTC),
            at(EARLIEST_TIMESTAMP, 0)
        );
        assert_eq!(
            prune_bound(DateTime::<Utc>::MAX_UTC),
            at(LATEST_TIMESTAMP + 1, 0)
        );
    }
}

/// What a command's [`run_command`](super::EventStore::run_command) session decided to
/// write: its events (possibly none) at the stream version it decided on.
#[derive(Debug)]
pub struct CommandWrite {
    /// The stream version the decision was made on.
    pub expected: super::ExpectedVersion,
    /// The events to append.
    pub events: Vec<crate::envelope::NewEvent>,
}

/// How a command's [`run_command`](super::EventStore::run_command) session ended.
#[derive(Debug)]
pub enum CommandSession<E> {
    /// The events and the record were written: the command's outcome.
    Appended(CommandOutcome),
    /// The command had run before (or ran meanwhile): its stored outcome; nothing written.
    AlreadyExecuted(CommandOutcome),
    /// The decision refused the command (with the decision's error); nothing written.
    Refused(E),
}
