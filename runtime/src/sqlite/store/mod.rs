//! The embedded store: every stream in one SQLite file (feature `sqlite`).
//!
//! # Layout
//!
//! The main tables, created and upgraded by the versioned migrations in `schema.rs` (the
//! applied versions are recorded in `factum_schema_version`):
//!
//! - `streams (stream_key INTEGER PRIMARY KEY, stream_id TEXT UNIQUE, stream_type, version)`:
//!   one row per stream, holding its type and its last version. The expected-version
//!   check reads this one row, and events refer to the small integer key rather than
//!   repeating the stream id in every row and index entry.
//! - `events (position INTEGER PRIMARY KEY AUTOINCREMENT, stream_key, stream_version,
//!   event_id BLOB UNIQUE, name, schema_version, payload TEXT, metadata TEXT,
//!   timestamp_s, timestamp_ns)` with `UNIQUE (stream_key, stream_version)`. The payload
//!   is the event's JSON text, stored verbatim; the metadata is JSON (`NULL` when empty);
//!   the timestamp is whole seconds and nanoseconds since the Unix epoch, so every
//!   timestamp the [limits](crate::store::limits) let in (whole microseconds, years 1
//!   to 9999) reads back exactly.
//! - `snapshots (stream_id TEXT PRIMARY KEY, ...)`: the latest snapshot per stream.
//! - `commands (command_id BLOB PRIMARY KEY, fingerprint, recorded_at_s, recorded_at_ns,
//!   stream_id, stream_version, first_position, last_position, event_ids BLOB)` (since
//!   schema version 2): one row per command recorded by
//!   [`EventStore::append_command`], written in the transaction of its events, after
//!   looking the id up under the same write lock (so concurrent submissions from any
//!   process record it once); `event_ids` holds the events' 16-byte ids in order, and an
//!   index on the time serves `prune_commands`. See [`crate::store::commands`].
//! - `events.tags` and `event_tags (tag, position) WITHOUT ROWID` (since schema version
//!   7): an event's tags as the JSON array of its sorted, distinct `key:value` texts
//!   (`NULL` without tags; the hash covers it), and one index row per tag, written in the
//!   append's transaction. See *Decisions* below.
//!
//! # Why it is built this way
//!
//! - **A file that is not a store is refused, untouched.** SQLite would start a new
//!   database in an empty (or 1-byte) file, so a new store is made only where no file
//!   exists: whole, under a temporary name beside the path, then hard-linked into place
//!   (no opener ever finds it half-made). An existing file that is empty, shorter than
//!   SQLite's 100-byte header or lacks its magic, a database with tables but no
//!   `factum_schema_version` (another program's), and a store missing a table of its
//!   version are [`SqliteOpenError::NotAStore`]; the schema is checked reading only
//!   before the switch to WAL writes to the file, and again inside the migration. A
//!   database with no tables at all is given the schema. A file cut short is SQLite's
//!   `database disk image is malformed` on open (beside a crashed store's WAL, which
//!   SQLite must trust, it opens, and reads that reach a missing page fail).
//! - **WAL journal.** Readers never block the writer and the writer never blocks
//!   readers; a commit appends to the log instead of rewriting pages in place. Each
//!   reader sees a consistent snapshot of committed transactions.
//! - **`synchronous = FULL` by default.** The WAL is flushed to disk at every commit, so a
//!   committed append survives a power loss, not only a crash of the process.
//!   [`Synchronous::Normal`] trades the last commits before a power loss for speed (a
//!   crashed *process* loses nothing either way).
//! - **`BEGIN IMMEDIATE` for every append.** The transaction takes the write lock before
//!   it reads the stream's version. A deferred transaction would read under a shared
//!   lock and then upgrade it to write, and two writers doing that deadlock (one of
//!   them gets `SQLITE_BUSY` at once, without waiting). Taking the lock first makes
//!   writers queue on the busy timeout instead, in this process and in others.
//! - **`INTEGER PRIMARY KEY AUTOINCREMENT` positions.** A plain rowid may be reused
//!   after the highest row is deleted; a follower that checkpointed that position would
//!   then skip the new event. `AUTOINCREMENT` never hands out a position twice. Since
//!   SQLite serialises writers, positions are also assigned in commit order: a reader
//!   that sees position `p` sees every position below it, so "read all after `p`" never
//!   skips an event that commits later.
//! - **A writer connection and a pool of reader connections.** rusqlite is synchronous,
//!   so every call runs on tokio's blocking pool (`spawn_blocking`). Appends queue
//!   (asynchronously) for the one writer connection, which keeps its prepared statements
//!   cached. Reads take one of up to [`SqliteOptions::readers`] read-only connections,
//!   which WAL lets run alongside each other and alongside the writer. Each connection
//!   keeps up to [`SqliteOptions::page_cache`] of the file's pages (32 MiB, not SQLite's
//!   2 MB): appends and loads touch index pages at random, which a large store would
//!   otherwise read from the file again and again.
//! - **Checks inside the transaction.** The idempotency check, the expected-version
//!   check and the stream-type check run under the write lock, in the order the memory
//!   store runs them, and a failed check rolls back: a conflict writes nothing. The
//!   common path does not look every event id up: the `UNIQUE` index on `event_id`
//!   refuses a stored id, and only then does the store roll back and work out whether
//!   the batch is an idempotent re-append or a duplicate.
//! - **Rows are data.** Every statement is parameterised. A row that cannot be read back
//!   (a payload that is not JSON, an event id that is not 16 bytes, an impossible
//!   timestamp, an event whose stream row is missing) is a [`StoreError::CorruptRow`]
//!   naming the stream, version and position, never a panic and never skipped; other
//!   streams stay readable.
//! - **Replay streams, on two threads.** The visitor of
//!   [`EventStore::for_each_in_stream`] borrows from its caller, so it cannot move to a
//!   blocking thread. The blocking thread steps the rows and copies their columns out
//!   (checking types only) into chunks of 256 rows, doubling up to 1,024, sent through a
//!   bounded channel; the visiting side checks and parses each copy into *one* record,
//!   reused from row to row (its name and metadata buffers too), and visits it. A long stream
//!   is never held in memory whole, stepping SQLite overlaps with decoding, and the
//!   copies only travel one way. (An earlier version handed whole records to the
//!   visitor and recycled them back to the reader, so both threads wrote the same
//!   memory; on the benchmark machine it ran at half speed in about half of the runs.)
//!   Chunk buffers are kept for the next replay. [`EventStore::replay_stream`] (what
//!   `Repository::load` reads) runs the same two halves on fewer columns — position,
//!   version, name, schema version, payload: no id, no metadata to parse, no time — and
//!   lends each event's name and payload straight from the copy, checked as a record's
//!   are. With hash or signature checks on, it reads whole records (a hash covers every
//!   column).
//! - **Followers read by name, and sleep until an append.** `read_all_filtered` filters
//!   in SQL (`position > ? AND name IN (..) ORDER BY position LIMIT ?`, walking the
//!   primary key) and reads the log's newest position in the same read transaction, so
//!   `scanned_to` never passes a match it did not return. There is no `(name, position)`
//!   index: measured on 500,000 events, it sped up catching up on one rare name (36 →
//!   6 ms) but made two names, one common, 67 times slower (0.26 → 17 s: SQLite walks
//!   the index per name and sorts every page) and appends 36% slower in CPU.
//!   `wait_for_events` wakes at once on this store's own appends (a `watch` channel
//!   signalled after the commit) and polls the newest position every 40 ms for appends
//!   of other processes or handles, which cannot signal it.
//! - **Decisions check their condition under the append's write lock.**
//!   [`DecisionStore::append_if`] checks, inside the `BEGIN IMMEDIATE` of the append,
//!   that no event its query matches was stored after the decision's read; every
//!   connection and process queues on that lock, so nothing commits between the check
//!   and the insert (a test races sixteen processes for one seat, a hundred times). A
//!   query item walks its first tag's rows of `event_tags` after the position (the
//!   primary key's order) and joins its other tags and its names, so the check costs
//!   what was stored since the read, not what the store holds. The idempotency check
//!   comes first, as for an unconditional append: a batch stored already is answered as
//!   such. [`DecisionStore::read_matching`] reads the matches and the newest position in
//!   one read transaction, one snapshot.
//! - **Metadata is JSON, read by a direct scan.** serde_json spent more time on a
//!   metadata object than on the rest of its row, so the exact shape the store writes
//!   is scanned directly and anything else (`extra` entries, escapes, hand-edited rows)
//!   goes to serde_json. A unit test checks both paths agree.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use factum::store::{EventStore, SqliteStore};
//!
//! let store = SqliteStore::open("events.db").await?;
//! assert_eq!(store.stream_version("order-1").await?, None);
//! # Ok(())
//! # }
//! ```

mod append;
mod archive;
mod commands;
pub(super) mod connection;
mod decision;
mod integrity;
mod rows;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use self::connection::{Failure, Readers};
pub(crate) use self::integrity::backfill as integrity_backfill;
use self::rows::Columns;
use super::{file, schema};
use crate::envelope::{NewEvent, RecordedEvent, Snapshot};
use crate::store::decision::{AppendCondition, DecisionStore, MatchedEvents, Query};
use crate::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, CommandSession, CommandWrite,
    EventStore, ExpectedVersion, FilteredPage, Head, ReplayedEvent, StoreError, VisitError,
};

/// How durably a commit is written (SQLite's `PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// The WAL is flushed to disk at every commit: a committed append survives a crash of
    /// the process and a power loss. The default.
    #[default]
    Full,
    /// The WAL is flushed only at checkpoints: a committed append survives a crash of the
    /// process, but the last commits before a power loss or an OS crash may be lost (the
    /// file stays consistent). Commits cost no `fsync`.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// The page cache of each connection unless [`SqliteOptions::page_cache`] says otherwise.
const DEFAULT_PAGE_CACHE: usize = 32 << 20;

/// How a [`SqliteStore`] opens its file; start from [`SqliteStore::options`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    pub(super) busy_timeout: Duration,
    pub(super) page_cache: usize,
    readers: usize,
    check_hashes: bool,
    signer: Option<crate::integrity::EventSigner>,
    archives: crate::archive::Archives,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            page_cache: DEFAULT_PAGE_CACHE,
            readers: 4,
            check_hashes: false,
            signer: None,
            archives: crate::archive::Archives::new(),
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], a busy timeout of 5 s, a page cache of 32 MiB
    /// per connection, 4 reader connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// How durably commits are written.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a writer waits for another connection (of this or another process) to
    /// release the write lock before it fails with a backend error (`SQLITE_BUSY`).
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// The most memory each connection (the writer, each reader) keeps of the file's
    /// pages, in bytes (SQLite's `cache_size`; 32 MiB by default, SQLite's own default is
    /// 2 MB). It fills only as pages are read. A single-event append reads and rewrites
    /// B-tree pages at random places of the file (the stream's row and index entries);
    /// once a store's indexes outgrow this cache, each miss is a read of the file, and
    /// appends and loads slow down as the store grows (BENCHMARKS.md, "Stores of 10
    /// million events"). Smaller saves memory on small stores; at least one page.
    pub fn page_cache(mut self, bytes: usize) -> Self {
        self.page_cache = bytes;
        self
    }

    /// At most this many reads run at once, each on its own connection (at least 1).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// Whether every read recomputes each event's hash and compares it with the stored
    /// one (off by default): a damaged or edited event is then a
    /// [`StoreError::CorruptRow`] at its position, never a wrong fact handed on. It costs
    /// one SHA-256 of the stored bytes per event read. [`TamperEvident::verify`] checks
    /// the whole log either way.
    ///
    /// [`TamperEvident::verify`]: crate::integrity::TamperEvident::verify
    pub fn check_hashes(mut self, check_hashes: bool) -> Self {
        self.check_hashes = check_hashes;
        self
    }

    /// Signs each critical event this store appends (those `signer` names: see
    /// `SignedEvents::from_registry`) with the service's key, in the append's
    /// transaction, and checks every read critical event's signature and hash: a forged
    /// or unsigned one is a [`StoreError::CorruptRow`] at its position.
    pub fn sign_events(mut self, signer: crate::integrity::EventSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Reads the bodies of archived events from `archive` (see [`crate::archive`]); give
    /// every archive the events to read are in. Opening checks that the store recorded
    /// it, unchanged ([`SqliteOpenError::Archive`] otherwise).
    pub fn archive(mut self, archive: crate::archive::Archive) -> Self {
        self.archives.push(archive);
        self
    }

    /// What reads check, and where archived bodies are.
    fn read_checks(&self) -> rows::ReadChecks {
        rows::ReadChecks {
            hashes: self.check_hashes,
            signer: self.signer.clone(),
            archives: self.archives.clone(),
        }
    }

    /// Opens (creating it if needed) the store file at `path`, with these options.
    ///
    /// A new store is created only where no file exists (made whole under a temporary
    /// name beside `path`, then linked into place, so a process opening the same path at
    /// the same moment never finds a half-made file). An existing file that is not a
    /// factum store — empty, shorter than SQLite's header, not a SQLite database, another
    /// program's database, a store missing a table — is refused with
    /// [`SqliteOpenError::NotAStore`] and left as it was; an empty SQLite database (no
    /// tables at all) is given the schema.
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, SqliteOpenError> {
        let path = path.as_ref().to_path_buf();
        let task_path = path.clone();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(task_path, self))
            .await
            .map_err(|error| SqliteOpenError::Sqlite {
                path,
                source: Box::new(error),
            })?
    }
}

/// Why [`SqliteStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteOpenError {
    /// The file was written by a newer factum: its schema version is newer than the
    /// newest this code knows. Nothing was changed; upgrade factum to open it.
    #[error(
        "`{}`: the store's schema is at version {found}, newer than this factum knows \
         (newest known: {supported}); upgrade factum to open it",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: u32,
        /// The newest schema version this code knows.
        supported: u32,
    },
    /// The file could not be switched to write-ahead logging (some network file systems
    /// and read-only media cannot hold the WAL's shared memory).
    #[error("`{}`: cannot use write-ahead logging; the journal mode stayed `{mode}`", path.display())]
    WalUnavailable {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// SQLite or the file system failed: the file cannot be read, opened or created,
    /// SQLite finds it damaged (`database disk image is malformed`, e.g. a store file cut
    /// short), or a migration failed.
    #[error("`{}`: cannot open the SQLite store", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// SQLite's error (a `rusqlite::Error`), the file system's (a `std::io::Error`),
        /// or the failed open task's.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file exists but is not a factum store: it is empty, shorter than SQLite's
    /// 100-byte header, not a SQLite database, a SQLite database of another program
    /// (tables, but no `factum_schema_version`), or a store that lacks a table of its
    /// schema version. Nothing was changed: a new store is only created where no file
    /// exists, and only an empty SQLite database (one with no tables) is given the schema.
    #[error("`{}` is not a factum store: {reason}", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive given with [`SqliteOptions::archive`] is not one this store recorded,
    /// or changed since it was written.
    #[error("`{}`: {} is not one of its archives: {reason}", path.display(), archive.display())]
    Archive {
        /// The store file.
        path: PathBuf,
        /// The archive file.
        archive: PathBuf,
        /// What does not match.
        reason: String,
    },
}

impl SqliteOpenError {
    /// The same error about `path` (a new store is made under a temporary name).
    pub(super) fn with_path(mut self, path: &Path) -> Self {
        match &mut self {
            Self::SchemaTooNew { path: about, .. }
            | Self::WalUnavailable { path: about, .. }
            | Self::Sqlite { path: about, .. }
            | Self::NotAStore { path: about, .. }
            | Self::Archive { path: about, .. } => path.clone_into(about),
        }
        self
    }
}

/// An [`EventStore`] in one SQLite file (feature `sqlite`; SQLite is bundled). Cloning it
/// shares the same connections.
///
/// - The file uses write-ahead logging, so reads run beside the writer, and commits with
///   `synchronous = FULL` by default, so a committed append survives a power loss.
/// - Every append is one transaction that takes the write lock first (`BEGIN
///   IMMEDIATE`) and checks the idempotency, the expected version and the stream type
///   inside it: it writes all its events or none. Several `SqliteStore`s, in this
///   process or in others, may open the same file: their writers queue on the lock (for
///   the busy timeout, 5 s by default).
/// - Global positions are `AUTOINCREMENT` row ids: assigned in commit order and never
///   reused, so "read all after a position" never skips an event.
/// - A row that cannot be read back is a [`StoreError::CorruptRow`] naming its stream,
///   version and position; so are an event whose stream row is missing and a stream whose
///   versions are not gapless up to its version. No read skips such a row.
/// - The schema is versioned: opening a file migrates it to
///   [`SqliteStore::SCHEMA_VERSION`] and refuses a file written by a newer factum.
/// - A file that is not a factum store (empty, truncated, another program's) is an error
///   on open ([`SqliteOpenError::NotAStore`]), left as it was, never an empty store.
///
/// Blocking SQLite calls run on tokio's blocking pool: use it inside a tokio runtime.
/// The design, and why, is described in the source (`runtime/src/sqlite/store/mod.rs`).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use factum::prelude::*;
/// use factum::store::SqliteStore;
/// use serde_json::value::to_raw_value;
///
/// let store = SqliteStore::open("events.db").await?;
/// let event = NewEvent::new("Opened", 1, to_raw_value(&"hi")?, Metadata::default());
/// let outcome = store
///     .append("account-1", "Account", ExpectedVersion::NoStream, vec![event])
///     .await?;
/// assert_eq!(outcome.stream_version, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for an in-memory store.
    path: Option<PathBuf>,
    options: SqliteOptions,
    /// The one connection that writes. It is locked asynchronously and then moved into
    /// the blocking task that uses it.
    writer: Arc<Mutex<Connection>>,
    /// Read-only connections; `None` for an in-memory store, which reads through the
    /// writer (an in-memory database lives in its one connection).
    readers: Option<Arc<Readers>>,
    /// The buffers replays copy rows into, kept for the next replay.
    spare_chunks: Arc<SpareChunks>,
    /// The highest position this store's appends committed (or its waiters found):
    /// wakes [`EventStore::wait_for_events`] at once on this process's appends.
    head: watch::Sender<u64>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl crate::integrity::TamperEvident for SqliteStore {
    /// Verifies the file: SQLite's `integrity_check`, every event's hash and chain in
    /// position order, every stream's head. Reads in one read transaction (appends go on
    /// meanwhile, unseen).
    async fn verify(&self) -> Result<crate::integrity::Verification, StoreError> {
        let archives = self.inner.options.archives.clone();
        self.read(move |connection| integrity::verify(connection, &archives))
            .await
    }

    async fn leaves(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::integrity::Leaf>, StoreError> {
        self.read(move |connection| integrity::leaves(connection, after, limit))
            .await
    }

    async fn save_checkpoint(
        &self,
        checkpoint: &crate::integrity::checkpoint::SignedTreeHead,
    ) -> Result<(), StoreError> {
        let checkpoint = checkpoint.clone();
        self.write(move |connection, patience| {
            connection::retry_busy(patience, || {
                integrity::save_checkpoint(connection, &checkpoint)
            })
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<crate::integrity::StoredCheckpoint>, StoreError> {
        self.read(integrity::checkpoints).await
    }
}

/// Events in the first chunk handed from the reading thread to the visitor: few, so the
/// visitor starts soon.
const FIRST_CHUNK_EVENTS: usize = 256;
/// Events handed over at once, at most: each chunk holds twice as many as the one before
/// up to this, so a long replay takes fewer hand-offs (each one a wake-up, which waits for
/// a CPU when the machine is busy: 10,000 events take 12 instead of 40), while the last
/// chunk, which the visitor takes only once the reading is done, stays short.
const CHUNK_EVENTS: usize = 1024;
/// Bytes handed over at once, at most (a chunk holds at least one event).
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks on their way to the visitor, at most: enough that the reading thread seldom
/// waits for the visitor (a reader that sleeps on every chunk and is woken by the visitor
/// tends to end up taking turns with it on one CPU instead of running beside it).
const CHUNKS_IN_FLIGHT: usize = 4;
/// Spare chunks kept for the next replay, at most.
const SPARE_CHUNKS: usize = 4;
/// How often a waiting follower looks for appends of other processes (and of other
/// `SqliteStore`s on the same file), which cannot signal this one.
const POLL_INTERVAL: Duration = Duration::from_millis(40);

impl SqliteStore {
    /// The newest schema version this code knows; [`SqliteStore::open`] migrates older
    /// files up to it and refuses newer ones.
    pub const SCHEMA_VERSION: u32 = schema::LATEST;

    /// Opens (creating it if needed) the store file at `path` with the default options:
    /// WAL, `synchronous = FULL`, a 5 s busy timeout, foreign keys on, up to 4 reader
    /// connections. The schema is created or migrated to [`SqliteStore::SCHEMA_VERSION`];
    /// a file whose schema is newer is refused (`SqliteOpenError::SchemaTooNew`).
    ///
    /// A new store is created only where no file exists. An existing file that is not a
    /// factum store — empty (0 bytes), shorter than SQLite's 100-byte header, not a SQLite
    /// database, a SQLite database of another program, a store missing a table of its
    /// schema version — is refused (`SqliteOpenError::NotAStore`) without being changed,
    /// never opened as an empty store. A SQLite database with no tables at all is given
    /// the schema. See [`SqliteOptions::open`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqliteOpenError> {
        SqliteOptions::new().open(path).await
    }

    /// Options to open a store with: `synchronous` (`Synchronous::Full` or `Normal`),
    /// `busy_timeout`, `readers`, then `open(path)`, e.g.
    /// `SqliteStore::options().busy_timeout(Duration::from_secs(30)).open(path)`.
    pub fn options() -> SqliteOptions {
        SqliteOptions::new()
    }

    /// A store in memory, gone when the last clone is dropped: for tests. It has one
    /// connection, which reads and writes.
    pub fn in_memory() -> Result<Self, SqliteOpenError> {
        let path = PathBuf::from(":memory:");
        let options = SqliteOptions::new();
        let sqlite = |source: rusqlite::Error| SqliteOpenError::Sqlite {
            path: path.clone(),
            source: Box::new(source),
        };
        let connection = Connection::open_in_memory().map_err(sqlite)?;
        connection::configure_writer(&connection, &options).map_err(sqlite)?;
        schema::migrate(&connection, &path, options.busy_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: None,
                options,
                writer: Arc::new(Mutex::new(connection)),
                readers: None,
                spare_chunks: Arc::default(),
                head: watch::Sender::new(0),
            }),
        })
    }

    /// The file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The store's size on disk in bytes: its file and its write-ahead log (0 for an
    /// in-memory store). For [`telemetry::record_store_size`](crate::telemetry::record_store_size).
    pub async fn size_on_disk(&self) -> Result<u64, StoreError> {
        let Some(path) = self.inner.path.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || {
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            let size = |file: &Path| match std::fs::metadata(file) {
                Ok(metadata) => Ok(metadata.len()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(error) => Err(StoreError::Backend(Box::new(error))),
            };
            Ok(size(&path)? + size(Path::new(&wal))?)
        })
        .await
        .map_err(connection::task_failed)?
    }

    fn open_blocking(path: PathBuf, options: SqliteOptions) -> Result<Self, SqliteOpenError> {
        // The bytes first: a file that is not a SQLite database is refused before SQLite
        // sees it (it would start a new database in an empty file).
        file::check_or_create(&path, &options)?;
        let writer = connection::open_writer(&path, &options)?;
        // Then the schema, reading only: another program's database is refused before
        // the switch to WAL writes to it.
        schema::check(&writer, &path, options.busy_timeout)?;
        connection::use_wal(&writer, &path, &options)?;
        connection::configure_writer(&writer, &options).map_err(|source| {
            SqliteOpenError::Sqlite {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
        schema::migrate(&writer, &path, options.busy_timeout)?;
        archive::check_attached(&writer, &options.archives).map_err(|(archive, reason)| {
            SqliteOpenError::Archive {
                path: path.clone(),
                archive,
                reason,
            }
        })?;
        let readers = Readers::new(path.clone(), &options);
        Ok(Self {
            inner: Arc::new(Inner {
                path: Some(path),
                options,
                writer: Arc::new(Mutex::new(writer)),
                readers: Some(Arc::new(readers)),
                spare_chunks: Arc::default(),
                head: watch::Sender::new(0),
            }),
        })
    }

    /// Runs `work` on the writer connection, on the blocking pool.
    pub(in crate::sqlite) async fn write<T, W>(&self, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&mut Connection, Duration) -> Result<T, Failure> + Send + 'static,
    {
        let patience = self.inner.options.busy_timeout;
        let writer = Arc::clone(&self.inner.writer);
        // Writers queue for the connection on the blocking pool, not as tasks: when one
        // commits, the next is already on its thread and runs at once, instead of a task
        // being woken to hand its work to a thread (two hand-offs per write under load).
        tokio::task::spawn_blocking(move || {
            let mut writer = writer.blocking_lock();
            connection::end_abandoned_transaction(&writer);
            work(&mut writer, patience).map_err(StoreError::from)
        })
        .await
        .map_err(connection::task_failed)?
    }

    /// Starts `work` on a reader connection (the writer's, in memory), on the blocking
    /// pool, and returns its handle. `work` runs again while it fails with SQLite's
    /// "busy" (as a `Failure::Sqlite`; work that must not be repeated reports it as a
    /// store error instead).
    async fn spawn_read<T, R>(
        &self,
        mut work: R,
    ) -> Result<JoinHandle<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        R: FnMut(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let patience = self.inner.options.busy_timeout;
        match &self.inner.readers {
            Some(readers) => {
                let permit = Arc::clone(&readers.permits)
                    .acquire_owned()
                    .await
                    .map_err(|error| StoreError::Backend(Box::new(error)))?;
                let readers = Arc::clone(readers);
                Ok(tokio::task::spawn_blocking(move || {
                    let connection = readers.take().map_err(Failure::from)?;
                    let result = connection::retry_busy(patience, || work(&connection));
                    readers.give_back(connection);
                    drop(permit);
                    result.map_err(StoreError::from)
                }))
            }
            None => {
                let writer = Arc::clone(&self.inner.writer).lock_owned().await;
                Ok(tokio::task::spawn_blocking(move || {
                    connection::end_abandoned_transaction(&writer);
                    connection::retry_busy(patience, || work(&writer)).map_err(StoreError::from)
                }))
            }
        }
    }

    /// Raises the known head to `position` (never lowers it), waking waiters.
    fn publish_head(&self, position: u64) {
        self.inner.head.send_if_modified(|head| {
            let newer = position > *head;
            *head = (*head).max(position);
            newer
        });
    }

    /// Runs `work` on a reader connection and waits for it.
    pub(in crate::sqlite) async fn read<T, R>(&self, work: R) -> Result<T, StoreError>
    where
        T: Send + 'static,
        R: FnMut(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        self.spawn_read(work)
            .await?
            .await
            .map_err(connection::task_failed)?
    }
}

/// The appends themselves; the trait's methods measure them (see `crate::telemetry`).
impl SqliteStore {
    async fn append_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_under(stream_id, stream_type, expected, events, None)
            .await
    }

    /// An append, under a decision's `condition` when one is given.
    async fn append_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: Option<&AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        crate::store::limits::check_append(stream_id, stream_type, &events)?;
        let condition = condition.cloned();
        let stream_id = stream_id.to_owned();
        let stream_type = stream_type.to_owned();
        let signer = self.inner.options.signer.clone();
        let outcome = self
            .write(move |connection, patience| {
                append::append(
                    connection,
                    patience,
                    &stream_id,
                    &stream_type,
                    expected,
                    &events,
                    signer.as_ref(),
                    condition.as_ref(),
                )
            })
            .await?;
        // After the commit: a woken follower reads the events.
        self.publish_head(outcome.last_position);
        Ok(outcome)
    }

    async fn append_command_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        self.append_command_under(stream_id, stream_type, expected, events, command, None)
            .await
    }

    /// A command's append, under a decision's `condition` when one is given.
    async fn append_command_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
        condition: Option<&AppendCondition>,
    ) -> Result<CommandAppend, StoreError> {
        crate::store::limits::check_command(stream_id, stream_type, &events, &command)?;
        let condition = condition.cloned();
        let stream_id = stream_id.to_owned();
        let stream_type = stream_type.to_owned();
        let signer = self.inner.options.signer.clone();
        let answer = self
            .write(move |connection, patience| {
                append::append_command(
                    connection,
                    patience,
                    &stream_id,
                    &stream_type,
                    expected,
                    &events,
                    &command,
                    signer.as_ref(),
                    condition.as_ref(),
                )
            })
            .await?;
        if let CommandAppend::Appended(CommandOutcome {
            last_position: Some(last_position),
            ..
        }) = answer
        {
            // After the commit: a woken follower reads the events.
            self.publish_head(last_position);
        }
        Ok(answer)
    }
}

/// Decisions across entities: the query over the tag index on a reader, the condition
/// checked inside the append's `BEGIN IMMEDIATE` (see `decision.rs`).
impl DecisionStore for SqliteStore {
    async fn read_matching(&self, query: &Query, after: u64) -> Result<MatchedEvents, StoreError> {
        let query = query.clone();
        let checks = self.inner.options.read_checks();
        self.read(move |connection| decision::read_matching(connection, &query, after, &checks))
            .await
    }

    crate::telemetry::measured_conditional_appends!("sqlite");

    async fn run_decision<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        query: &Query,
        command: CommandRecord,
        visit: V,
        decide: D,
    ) -> Result<CommandSession<E>, E>
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<Vec<crate::envelope::NewEvent>, E> + Send + 'static,
    {
        let owned = (stream_id.to_owned(), stream_type.to_owned(), query.clone());
        let checks = self.inner.options.read_checks();
        self.measured_session(
            stream_id,
            stream_type,
            move |connection, patience, decided| {
                let (stream_id, stream_type, query) = owned;
                let decide = move || {
                    let events = decide()?;
                    decided.count(&events);
                    Ok(events)
                };
                decision::session(
                    connection,
                    patience,
                    &stream_id,
                    &stream_type,
                    query,
                    &command,
                    &checks,
                    visit,
                    decide,
                )
            },
        )
        .await
    }
}

impl SqliteStore {
    /// A command's session (`work`, on the writer thread, in one write transaction),
    /// measured and traced as an append: the events its decision counts into
    /// [`DecidedEvents`] where it runs, an append when it wrote (as the default
    /// session's `append_command` is: a command found recorded or refused wrote nothing);
    /// the new head published after the commit.
    async fn measured_session<E, W>(
        &self,
        stream_id: &str,
        stream_type: &str,
        work: W,
    ) -> Result<CommandSession<E>, E>
    where
        E: From<StoreError> + Send + 'static,
        W: FnOnce(
                &rusqlite::Connection,
                std::time::Duration,
                DecidedEvents,
            ) -> Result<Result<CommandSession<E>, E>, connection::Failure>
            + Send
            + 'static,
    {
        let mut measured = crate::telemetry::Append::start("sqlite", stream_id, stream_type, &[]);
        let decided = DecidedEvents::default();
        let session = {
            let decided = decided.clone();
            self.write(move |connection, patience| work(connection, patience, decided))
                .instrument(measured.span().clone())
                .await
        };
        measured.set_events(decided.take());
        let session = match session {
            Ok(Ok(session)) => {
                if matches!(session, CommandSession::Appended(_)) {
                    measured.finish(Ok(true));
                }
                session
            }
            Ok(Err(refused)) => return Err(refused),
            Err(error) => {
                measured.finish(Err(&error));
                return Err(error.into());
            }
        };
        if let CommandSession::Appended(CommandOutcome {
            last_position: Some(last_position),
            ..
        }) = &session
        {
            // After the commit: a woken follower reads the events.
            self.publish_head(*last_position);
        }
        Ok(session)
    }
}

/// The events a session's decision made, by name, counted on the writer thread for the
/// metrics.
#[derive(Clone, Default)]
struct DecidedEvents(Arc<std::sync::Mutex<Vec<(String, u64)>>>);

impl DecidedEvents {
    fn count(&self, events: &[crate::envelope::NewEvent]) {
        *self.lock() = crate::telemetry::by_name(events.iter().map(|event| event.name.as_str()));
    }

    fn take(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, u64)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::store::StreamCatalog for SqliteStore {
    async fn streams(
        &self,
        filter: crate::store::StreamFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::store::StreamInfo>, StoreError> {
        let stream_type = filter.stream_type.map(str::to_owned);
        let contains = filter.contains.map(str::to_owned);
        let after = after.unwrap_or_default().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT stream_id, stream_type, version FROM streams
                     WHERE stream_id > ?1 AND (?2 IS NULL OR stream_type = ?2)
                       AND (?4 IS NULL OR instr(stream_id, ?4) > 0)
                     ORDER BY stream_id LIMIT ?3",
                )
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
            let rows = statement
                .query_map(
                    rusqlite::params![after, stream_type, limit, contains],
                    |row| {
                        Ok(crate::store::StreamInfo {
                            stream_id: row.get(0)?,
                            stream_type: row.get(1)?,
                            version: row.get::<_, i64>(2)?.max(0) as u64,
                        })
                    },
                )
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
            Ok(rows)
        })
        .await
    }
}

impl EventStore for SqliteStore {
    crate::telemetry::measured_appends!("sqlite");

    async fn run_command<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        from_version: u64,
        command: CommandRecord,
        visit: V,
        decide: D,
    ) -> Result<CommandSession<E>, E>
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<CommandWrite, E> + Send + 'static,
    {
        // The whole command on the writer thread, in one write transaction: the visits
        // and the decision travel there with what they own.
        let owned = (stream_id.to_owned(), stream_type.to_owned());
        let checks = self.inner.options.read_checks();
        self.measured_session(
            stream_id,
            stream_type,
            move |connection, patience, decided| {
                let (stream_id, stream_type) = owned;
                let decide = move || {
                    let write = decide()?;
                    decided.count(&write.events);
                    Ok(write)
                };
                append::command_session(
                    connection,
                    patience,
                    &stream_id,
                    &stream_type,
                    from_version,
                    &command,
                    &checks,
                    visit,
                    decide,
                )
            },
        )
        .await
    }

    async fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.read(move |connection| commands::load(connection, command_id))
            .await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let bound = crate::store::commands::prune_bound(recorded_before);
        self.write(move |connection, patience| {
            // One statement in autocommit mode takes the write lock at once: no upgrade.
            connection::retry_busy(patience, || commands::prune(connection, bound))
        })
        .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream_id = stream_id.to_owned();
        let checks = self.inner.options.read_checks();
        self.read(move |connection| {
            rows::read_stream(connection, &stream_id, from_version, limit, &checks)
        })
        .await
    }

    async fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), VisitError<E>>
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        // One record, reused from row to row.
        let mut record: Option<RecordedEvent> = None;
        self.visit_copies(stream_id, from_version, Columns::Record, |chunk, row| {
            let record = record.get_or_insert_with(|| {
                rows::blank(stream_id.to_owned(), chunk.stream_type.clone())
            });
            rows::fill(record, &chunk.bytes, row)
                .map_err(|failure| VisitError::Store(failure.into()))?;
            visit(record).map_err(VisitError::Visitor)
        })
        .await
    }

    async fn replay_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), VisitError<E>>
    where
        E: Send,
        F: FnMut(ReplayedEvent<'_>) -> Result<(), E> + Send,
    {
        if self.inner.options.read_checks().any() {
            // Checking a hash or a signature takes every column: the whole record.
            return self
                .for_each_in_stream(stream_id, from_version, |record| {
                    visit(ReplayedEvent::from(record))
                })
                .await;
        }
        // The replay's columns only: no metadata to parse, no payload to copy again.
        self.visit_copies(stream_id, from_version, Columns::Replay, |chunk, row| {
            let event = rows::replayed(stream_id, &chunk.bytes, row)
                .map_err(|failure| VisitError::Store(failure.into()))?;
            visit(event).map_err(VisitError::Visitor)
        })
        .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let checks = self.inner.options.read_checks();
        self.read(move |connection| rows::read_all(connection, after, limit, &checks))
            .await
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let checks = self.inner.options.read_checks();
        self.read(move |connection| {
            rows::read_all_filtered(connection, after, limit, &names, &checks)
        })
        .await
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.read(rows::head).await
    }

    async fn wait_for_events(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut head = self.inner.head.subscribe();
        // An in-memory store has no other writers: its own appends are all there is.
        let poll = self.inner.readers.is_some();
        loop {
            if *head.borrow_and_update() > after {
                return Ok(());
            }
            if poll {
                // Appends of other processes and other handles of the file: a probe of
                // the primary key's last entry, on a reader connection.
                let newest = self.read(rows::newest_position).await?;
                self.publish_head(newest);
                if newest > after {
                    return Ok(());
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let until = if poll {
                deadline.min(now + POLL_INTERVAL)
            } else {
                deadline
            };
            // A change of the head (an append of this store) or the next poll, whichever
            // is first; the sender lives in `self`, so `changed` cannot fail.
            let _ = tokio::time::timeout_at(until, head.changed()).await;
        }
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.read(move |connection| {
            let version: Option<i64> = connection
                .prepare_cached("SELECT version FROM streams WHERE stream_id = ?1")?
                .query_row(params![stream_id], |row| row.get(0))
                .optional()?;
            version
                .map(|version| rows::stream_version_of(&stream_id, version))
                .transpose()
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        crate::store::limits::check_snapshot(&snapshot)?;
        self.write(move |connection, patience| rows::save_snapshot(connection, patience, &snapshot))
            .await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.read(move |connection| rows::load_snapshot(connection, &stream_id))
            .await
    }
}

impl SqliteStore {
    /// Reads the stream's rows from `from_version` on, selecting `columns`, and calls
    /// `each` with every copied row and its chunk, in order; stops at its first error.
    ///
    /// The visitor borrows from its caller, so it cannot move to a blocking thread. The
    /// rows are stepped there and copied out in chunks, handed over through a bounded
    /// channel; this side checks and parses each copy and visits it. The two halves run
    /// in parallel.
    async fn visit_copies<E>(
        &self,
        stream_id: &str,
        from_version: u64,
        columns: Columns,
        mut each: impl FnMut(&Chunk, &rows::CopiedRow) -> Result<(), VisitError<E>> + Send,
    ) -> Result<(), VisitError<E>> {
        let (full, mut chunks) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
        let reading = {
            let stream_id = stream_id.to_owned();
            let spare_chunks = Arc::clone(&self.inner.spare_chunks);
            let checks = self.inner.options.read_checks();
            self.spawn_read(move |connection| {
                stream_chunks(
                    connection,
                    &stream_id,
                    from_version,
                    &checks,
                    columns,
                    &full,
                    &spare_chunks,
                )
            })
            .await
            .map_err(VisitError::Store)?
        };
        while let Some(chunk) = chunks.recv().await {
            for row in &chunk.rows {
                each(&chunk, row)?;
            }
            self.inner.spare_chunks.put(chunk);
        }
        reading
            .await
            .map_err(|error| VisitError::Store(connection::task_failed(error)))?
            .map_err(VisitError::Store)
    }
}

/// Rows handed from the reading thread to the visitor: copies of their columns.
#[derive(Default)]
struct Chunk {
    stream_type: String,
    rows: Vec<rows::CopiedRow>,
    bytes: Vec<u8>,
}

/// Visited chunks, kept so that the next replay fills buffers it already has.
#[derive(Default)]
struct SpareChunks(std::sync::Mutex<Vec<Chunk>>);

impl SpareChunks {
    /// A spare chunk (or a new one), emptied.
    fn take(&self, stream_type: &str) -> Chunk {
        let spare = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut chunk = spare.unwrap_or_default();
        chunk.rows.clear();
        chunk.bytes.clear();
        chunk.stream_type.clear();
        chunk.stream_type.push_str(stream_type);
        chunk
    }

    /// Keeps a visited chunk, unless enough are kept or its buffer grew large (for a
    /// large payload, whose memory is then given back).
    fn put(&self, chunk: Chunk) {
        if chunk.bytes.capacity() > 2 * CHUNK_BYTES {
            return;
        }
        let mut spare = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if spare.len() < SPARE_CHUNKS {
            spare.push(chunk);
        }
    }
}

/// The reading side of [`SqliteStore::for_each_in_stream`]: copies rows into chunks and
/// sends them to `full`.
fn stream_chunks(
    connection: &Connection,
    stream_id: &str,
    from_version: u64,
    checks: &rows::ReadChecks,
    columns: Columns,
    full: &mpsc::Sender<Chunk>,
    spare_chunks: &SpareChunks,
) -> Result<(), Failure> {
    let mut chunk: Option<Chunk> = None;
    let mut sent_any = false;
    let mut chunk_events = FIRST_CHUNK_EVENTS;
    let result = rows::each_row_in_stream(
        connection,
        stream_id,
        from_version,
        usize::MAX,
        checks,
        columns,
        |row, stream_type| {
            let chunk = chunk.get_or_insert_with(|| spare_chunks.take(stream_type));
            let copied = match columns {
                Columns::Record => {
                    rows::copy_checked(row, 0, stream_id, stream_type, &mut chunk.bytes, checks)?
                }
                Columns::Replay => {
                    rows::copy_replayed(connection, row, stream_id, &mut chunk.bytes, checks)?
                }
            };
            chunk.rows.push(copied);
            if chunk.rows.len() >= chunk_events || chunk.bytes.len() >= CHUNK_BYTES {
                chunk_events = (chunk_events * 2).min(CHUNK_EVENTS);
                let ready = std::mem::replace(chunk, spare_chunks.take(stream_type));
                sent_any = true;
                if full.blocking_send(ready).is_err() {
                    // The visitor stopped: nobody listens any more.
                    return Err(Failure::Stop);
                }
            }
            Ok(())
        },
    );
    let mut hand_over_rest = || {
        if let Some(chunk) = chunk.take().filter(|chunk| !chunk.rows.is_empty()) {
            // A closed channel means the visitor stopped: nothing to report.
            let _ = full.blocking_send(chunk);
        }
    };
    match result {
        Ok(()) => {
            hand_over_rest();
            Ok(())
        }
        Err(Failure::Stop) => Ok(()),
        // The events before an unreadable row are visited, then the error is reported
        // (in order, as the memory store would).
        Err(Failure::Store(error)) => {
            hand_over_rest();
            Err(Failure::Store(error))
        }
        // A busy database is retried from the start, unless the visitor has seen events
        // already: a retry would show them again.
        Err(Failure::Sqlite(error)) if sent_any => Err(Failure::Store(connection::backend(error))),
        Err(failure) => Err(failure),
    }
}
