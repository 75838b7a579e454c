//! Where projections keep their read models, checkpoints and dead letters.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::RecordedEvent;

/// Which read model: a projection's name and version (reactors use version 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The projection's or reactor's name.
    pub name: &'static str,
    /// The projection's version.
    pub version: u32,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// Where a projection version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Being built beside the active version (or the first build); readers do not see it.
    Building,
    /// What readers see.
    Active,
    /// Replaced by a newer version; kept until dropped.
    Retired,
}

/// One version of a projection as the read model records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// The version.
    pub version: u32,
    /// Its state.
    pub state: VersionState,
    /// The global position it has applied every event up to.
    pub checkpoint: u64,
    /// How many events are parked in its dead-letter table.
    pub parked: u64,
}

/// An event a handler kept failing on, set aside with the error; or a row of the log the
/// store could not read, set aside by an operator (`ProjectionRunner::park_unreadable`,
/// `ProjectionRunner::park_unreadable_reactor`, `ProcessRunner::park_unreadable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParkedEvent {
    /// The event as it was recorded, so it can be replayed without the source store.
    ///
    /// For an unreadable row only its `position` is certain; `stream_id` and
    /// `stream_version` are what the store's error named (empty and 0 when it named
    /// none), and the other fields are blank (no name, a `null` payload).
    pub event: RecordedEvent,
    /// The last error, with its causes. For an unreadable row: the store's error and the
    /// operator's note.
    pub error: String,
    /// How many times the handler was tried: 0 for an unreadable row, which no handler saw.
    pub attempts: u32,
    /// When it was parked, in whole microseconds (factum's runners take it from
    /// [`envelope::now`](crate::envelope::now)), so it reads back equal on every backend.
    pub parked_at: DateTime<Utc>,
}

impl ParkedEvent {
    /// Whether this is a row of the log the store could not read, parked by an operator
    /// with `ProjectionRunner::park_unreadable` (or its reactor and process-manager
    /// equivalents): no handler ever saw it, and there is no event to replay.
    pub fn is_unreadable(&self) -> bool {
        self.attempts == 0
    }
}

/// Where a projection fed from a partitioned bus (Kafka) stands in one partition, kept in
/// its read model and written in the same transaction as its rows: a worker that takes
/// the partition over reads on from here, and a record at or before it is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition of the topic.
    pub partition: i32,
    /// The offset of the next record to read: one past the last record processed.
    pub next_offset: i64,
    /// The global position of the last event applied (or skipped as not handled) from
    /// this partition: a later copy of an event at or before it (republished by an outbox
    /// that restarted before its checkpoint) is skipped.
    pub position: u64,
}

impl PartitionOffset {
    /// One read back from `target`'s storage, where the position is a signed column.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn stored(
        target: Target,
        topic: String,
        partition: i32,
        next_offset: i64,
        position: i64,
    ) -> Result<Self, ReadModelError> {
        let position = u64::try_from(position).map_err(|_| ReadModelError::Corrupt {
            target: target.to_string(),
            what: "partition offset",
            source: format!("{topic}/{partition}: negative position {position}").into(),
        })?;
        Ok(Self {
            topic,
            partition,
            next_offset,
            position,
        })
    }
}

/// A read-model database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadModelError {
    /// The database said no.
    #[error("read model {target}: {operation}")]
    Database {
        /// Which read model.
        target: String,
        /// What was being done.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A stored row could not be read back (a checkpoint or parked event).
    #[error("read model {target}: corrupt {what}")]
    Corrupt {
        /// Which read model.
        target: String,
        /// What was corrupt.
        what: &'static str,
        /// Why.
        #[source]
        source: crate::error::BoxError,
    },
    /// A file in the read-model directory is not a SQLite database (empty, cut short, or
    /// another program's file), holds another of factum's schemas (an event store) or
    /// lacks a table of the schema version it records; on PostgreSQL, the catalog schema
    /// holds an event store. It is refused untouched rather than taken for an empty read
    /// model, which would silently restart a projection or lose a process manager's
    /// state.
    #[error("`{path}` is not a read-model file: {reason}; nothing was changed")]
    NotAReadModel {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A read-model database was written by a newer factum: the version of factum's
    /// schema it records (the catalog's, or a version file's factum tables) is newer than
    /// this code knows. Nothing was changed; upgrade factum to open it.
    #[error(
        "read model `{database}`: its schema is at version {found}, newer than this factum \
         knows (newest known: {supported}); upgrade factum to open it"
    )]
    SchemaTooNew {
        /// The file (SQLite) or schema (PostgreSQL).
        database: String,
        /// The schema version it records.
        found: u32,
        /// The newest schema version this code knows.
        supported: u32,
    },
    /// A reader asked for a projection that has no active version yet.
    #[error("projection `{name}` has no active read model yet (never caught up)")]
    NotActive {
        /// The projection's name.
        name: String,
    },
    /// This kind of read model cannot do what was asked (see the provided methods of
    /// [`ReadModel`]).
    #[error("read model {target}: this kind of read model cannot {operation}")]
    Unsupported {
        /// Which read model.
        target: String,
        /// What it cannot do.
        operation: &'static str,
    },
    /// The name cannot be used as a file or schema name.
    #[error(
        "projection name `{name}` must be 1 to 40 ASCII letters, digits or underscores, starting with a letter and not with `pg_` (reserved by PostgreSQL)"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
}

/// A transaction on a read model, handed to projection handlers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a read-model transaction",
    label = "not a read-model transaction",
    note = "projection handlers take `tx: &mut SqliteTx` (`factum::sqlite`) or `tx: &mut PostgresTx` (`factum::postgres`)"
)]
pub trait ReadModelTx: Send + 'static {
    /// The read model it belongs to.
    type ReadModel: ReadModel<Tx = Self>;

    /// The target's checkpoint as stored when the transaction began (`None`: never set
    /// up). The transaction holds the target's write lock, so no other runner moves it
    /// until commit; events at or before it are skipped, which makes applying exactly-once
    /// even with two runners or a redelivering bus.
    fn checkpoint(&self) -> Option<u64>;

    /// Whether the transaction is still open. SQLite ends a transaction itself on some
    /// errors (`RAISE(ROLLBACK)`, a full disk); if a handler swallowed one, what follows
    /// would run outside any transaction, so the projector treats it as a failure of that
    /// event. The default says yes (PostgreSQL refuses statements in a failed transaction).
    fn is_open(&self) -> bool {
        true
    }
}

/// A database that holds read models: one per projection version, each with its
/// checkpoint and dead letters written in the same transactions as its rows.
///
/// Implemented by `SqliteReadModel` (feature `sqlite`) and `PostgresReadModel` (feature
/// `postgres`), in the modules of those names.
pub trait ReadModel: Clone + Send + Sync + 'static {
    /// A transaction on one projection version's read model.
    type Tx: ReadModelTx<ReadModel = Self>;

    /// The checkpoint of `target` as last committed: `None` if it was never set up.
    fn checkpoint(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<Option<u64>, ReadModelError>> + Send;

    /// Begins a write transaction on `target`'s read model, creating its storage if needed,
    /// and takes the target's write lock (held until commit or rollback).
    fn begin(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<Self::Tx, ReadModelError>> + Send;

    /// Records `checkpoint` for the transaction's target and commits everything written.
    fn commit(
        &self,
        tx: Self::Tx,
        checkpoint: u64,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Throws away everything written in the transaction.
    fn rollback(&self, tx: Self::Tx) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Parks an event in the transaction's target's dead-letter table.
    fn park(
        &self,
        tx: &mut Self::Tx,
        parked: &ParkedEvent,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// Removes the parked event at `position`; `false` when there was none.
    fn unpark(
        &self,
        tx: &mut Self::Tx,
        position: u64,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send;

    /// The events parked for `target`, oldest first.
    fn parked(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, ReadModelError>> + Send;

    /// Every version of the projection `name` the read model knows, oldest first.
    fn versions(
        &self,
        name: &'static str,
    ) -> impl Future<Output = Result<Vec<VersionStatus>, ReadModelError>> + Send;

    /// Makes `target` the version readers see and retires the one before, atomically —
    /// unless a newer version is active: then nothing changes and it returns `false`, so an
    /// older process restarting during a rolling deploy never switches readers back.
    fn activate(&self, target: Target)
    -> impl Future<Output = Result<bool, ReadModelError>> + Send;

    /// Has the database end a transaction of this read model whose client has sent
    /// nothing for `timeout` (a process paused or cut off mid-transaction), so the locks
    /// it holds do not stop every other writer of the version. A
    /// [`ProjectionWorker`](super::ProjectionWorker) sets it to its lease TTL. The default
    /// does nothing: a read model no other process writes has no one to hold up.
    fn end_stalled_transactions_after(&mut self, timeout: std::time::Duration) {
        let _ = timeout;
    }

    /// Empties `target`'s read model (its tables, checkpoint and dead letters) and takes it
    /// out of the readers' view; a runner of it notices at its next transaction and reads
    /// again from the start.
    fn reset(&self, target: Target) -> impl Future<Output = Result<(), ReadModelError>> + Send;

    /// The partition offsets committed for `target` ([`PartitionOffset`]), by topic and
    /// partition: empty when none were ever stored. The default: this kind keeps none
    /// ([`ReadModelError::Unsupported`]).
    fn partition_offsets(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<Vec<PartitionOffset>, ReadModelError>> + Send {
        async move {
            Err(ReadModelError::Unsupported {
                target: target.to_string(),
                operation: "keep partition offsets",
            })
        }
    }

    /// The partition offsets of the transaction's target, as the transaction sees them
    /// (under its write lock), by topic and partition.
    fn partition_offsets_in(
        &self,
        tx: &mut Self::Tx,
    ) -> impl Future<Output = Result<Vec<PartitionOffset>, ReadModelError>> + Send {
        let _ = tx;
        async move {
            Err(ReadModelError::Unsupported {
                target: "(transaction)".to_owned(),
                operation: "keep partition offsets",
            })
        }
    }

    /// Stores `offsets` in the transaction (each replaces the one of its topic and
    /// partition), to commit with the rows written in it.
    fn store_partition_offsets(
        &self,
        tx: &mut Self::Tx,
        offsets: &[PartitionOffset],
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        let _ = (tx, offsets);
        async move {
            Err(ReadModelError::Unsupported {
                target: "(transaction)".to_owned(),
                operation: "keep partition offsets",
            })
        }
    }

    /// A new, empty read model of the same kind beside this one, which the consistency
    /// checker ([`check_consistency`](super::check_consistency)) rebuilds a projection into,
    /// reads with [`contents`](ReadModel::contents) and then
    /// [`discard`](ReadModel::discard)s. `None` (the default) when this kind makes none; one
    /// that does implements all three.
    fn shadow(&self) -> impl Future<Output = Result<Option<Self>, ReadModelError>> + Send {
        async { Ok(None) }
    }

    /// The tables of `target`'s model (factum's own left out) with their rows, for the
    /// consistency checker to compare.
    fn contents(
        &self,
        target: Target,
    ) -> impl Future<Output = Result<super::Contents, ReadModelError>> + Send {
        async move {
            Err(ReadModelError::Unsupported {
                target: target.to_string(),
                operation: "list its tables' rows",
            })
        }
    }

    /// Removes a [`shadow`](ReadModel::shadow) and everything in it; refused on any other
    /// read model.
    fn discard(self) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        async {
            Err(ReadModelError::Unsupported {
                target: "(shadow)".to_owned(),
                operation: "discard a shadow",
            })
        }
    }
}

/// Checks that a projection name can name a file and a schema.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn check_name(name: &str) -> Result<(), ReadModelError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ReadModelError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Whether `name` can name a projection's file and schema: 1 to 40 ASCII letters, digits
/// or underscores, starting with a letter and not with `pg_` (reserved by PostgreSQL).
/// A `const fn`, so that `#[projection]` and `#[reactor]` check names at compile time by
/// this same rule (through `__private::valid_consumer_name`).
pub(crate) const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 40 || !bytes[0].is_ascii_alphabetic() {
        return false;
    }
    let mut index = 1;
    while index < bytes.len() {
        if !(bytes[index].is_ascii_alphanumeric() || bytes[index] == b'_') {
            return false;
        }
        index += 1;
    }
    !(bytes.len() >= 3
        && bytes[0].eq_ignore_ascii_case(&b'p')
        && bytes[1].eq_ignore_ascii_case(&b'g')
        && bytes[2] == b'_')
}
