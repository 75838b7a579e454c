//! The PostgreSQL event store. The design, and why it is so, is documented on
//! [`PostgresStore`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use crate::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use crate::store::{
    AppendOutcome, EventStore, ExpectedVersion, FilteredPage, Head, StoreError, VisitError,
};

/// The first key of every advisory lock factum takes on appends ("fact" in ASCII),
/// written as a number into the append functions' frozen SQL (a test checks it there).
#[cfg(test)]
const APPEND_LOCK_CLASS: i32 = 0x6661_6374;
/// The first key of the advisory lock that guards migrations ("facu").
const MIGRATION_LOCK_CLASS: i32 = 0x6661_6375;

/// Rows per page when a stream is visited.
const VISIT_PAGE: i64 = 4096;
/// How often [`EventStore::append`] re-runs after a unique violation (another writer
/// bypassing the lock) before reporting it as a conflict.
const UNIQUE_VIOLATION_RETRIES: usize = 3;
/// How often a waiting follower polls the newest position while the listening connection
/// is down.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the listening connection proves it is alive (a silently dropped connection
/// would otherwise only be noticed by TCP keepalives, after hours).
const LISTENER_HEARTBEAT: Duration = Duration::from_secs(30);
/// The longest pause between attempts to re-open the listening connection.
const LISTENER_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Failures specific to the PostgreSQL store, carried in [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection string or options are invalid.
    #[error("invalid PostgreSQL configuration: {0}")]
    InvalidConfig(String),
    /// The schema name is not made of ASCII letters, digits and `_` (1 to 63 bytes, not
    /// starting with a digit nor with `pg_`, which PostgreSQL reserves).
    #[error(
        "invalid schema name `{0}`: use 1 to 63 ASCII letters, digits and `_`, not starting with a digit or `pg_`"
    )]
    InvalidSchemaName(String),
    /// The database holds a newer factum schema than this code knows.
    #[error(
        "schema `{schema}` is at factum schema version {found}, newer than this code knows ({supported}); upgrade factum"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The version found in the database.
        found: i32,
        /// The newest version this code knows.
        supported: i32,
    },
    /// The schema holds another of factum's schemas (the read-model catalog), not a
    /// store. Nothing was changed.
    #[error("schema `{schema}` is not a factum store: {reason}; nothing was changed")]
    NotAStore {
        /// The schema.
        schema: String,
        /// What it holds instead.
        reason: String,
    },
    /// A connection could not be taken from the pool.
    #[error("no connection from the pool: {0}")]
    Pool(String),
    /// The database answered something this code does not expect (a changed function).
    #[error("unexpected reply from the database: {0}")]
    UnexpectedReply(String),
}

/// How to reach the database and how to use it: a connection string or a
/// [`tokio_postgres::Config`], the pool size and the schema.
///
/// ```no_run
/// # async fn run() -> Result<(), factum::store::StoreError> {
/// use factum::store::PostgresStore;
///
/// let store = PostgresStore::builder("postgres://app@localhost/app")
///     .schema("billing")
///     .pool_size(8)
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pg: Result<tokio_postgres::Config, String>,
    pool_size: usize,
    schema: String,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's Debug redacts the password.
        f.debug_struct("PostgresConfig")
            .field("pg", &self.pg)
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresConfig {
    /// A configuration from a parsed [`tokio_postgres::Config`], with the default pool
    /// size (four connections per CPU) and schema (`public`).
    pub fn new(pg: tokio_postgres::Config) -> Self {
        Self {
            pg: Ok(pg),
            pool_size: default_pool_size(),
            schema: "public".to_owned(),
        }
    }

    /// A configuration from a connection string (`postgres://user@host:port/db` or
    /// `host=... user=...`); a bad string is reported by [`PostgresConfig::connect`].
    pub fn from_url(url: &str) -> Self {
        let pg = url.parse::<tokio_postgres::Config>().map_err(|error| {
            // The parser's message never echoes the string, which may hold a password.
            format!("cannot parse the connection string: {error}")
        });
        Self {
            pg,
            pool_size: default_pool_size(),
            schema: "public".to_owned(),
        }
    }

    /// The most connections the pool opens (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// The schema holding the store's tables, created if missing. Several stores can
    /// share a database in separate schemas; appends in one never wait for another.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Connects: see [`PostgresStore::connect`].
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(self).await
    }
}

impl From<tokio_postgres::Config> for PostgresConfig {
    fn from(pg: tokio_postgres::Config) -> Self {
        Self::new(pg)
    }
}

impl From<&str> for PostgresConfig {
    fn from(url: &str) -> Self {
        Self::from_url(url)
    }
}

impl From<String> for PostgresConfig {
    fn from(url: String) -> Self {
        Self::from_url(&url)
    }
}

impl From<&String> for PostgresConfig {
    fn from(url: &String) -> Self {
        Self::from_url(url)
    }
}

fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

/// An [`EventStore`] in a PostgreSQL database: one events table, appends checked and
/// ordered inside the database, a pool of connections with cached prepared statements.
/// Cloning it shares the pool.
///
/// ```no_run
/// # async fn run() -> Result<(), factum::store::StoreError> {
/// use factum::store::{EventStore, PostgresStore};
///
/// // Creates the schema `billing` and its tables, or migrates them, on connect.
/// let store = PostgresStore::builder("postgres://app@localhost/app")
///     .schema("billing")
///     .pool_size(8)
///     .connect()
///     .await?;
/// let version = store.stream_version("Invoice-42").await?;
/// # let _ = version; Ok(()) }
/// ```
///
/// For tests, `scripts/postgres.sh start` runs a throwaway server and prints its
/// `FACTUM_POSTGRES_URL`.
///
/// # Tables (in the configured schema, `public` by default)
///
/// - `events`: one row per event. `position bigint GENERATED ALWAYS AS IDENTITY PRIMARY
///   KEY` (the global position), `stream_id`, `stream_type`, `stream_version`,
///   `event_id uuid UNIQUE`, `name`, `schema_version`, `payload json`, `occurred_at
///   timestamptz`, `metadata json`, and `UNIQUE (stream_id, stream_version)`. A stream's
///   head is its last row (an index probe on that unique index); there is no separate
///   streams table to keep in step.
/// - `snapshots`: one row per stream, upserted.
/// - `factum_schema_migrations`: the schema version, one row per applied migration.
///
/// Payloads and metadata are `json`, not `jsonb`: `json` keeps the text exactly as
/// appended (key order, spacing, `\u0000` escapes, which `jsonb` rejects), so a payload
/// reads back byte-identical; the server still checks that it is JSON, and `->`/`->>`
/// work for ad-hoc queries and expression indexes. Timestamps are `timestamptz`:
/// microseconds, which is the precision [`NewEvent::new`] records.
///
/// # Appending: one round trip, checked and ordered in the database
///
/// An append is one call of a PL/pgSQL function created by the migrations:
/// `factum_append` with the batch as arrays, or `factum_append_one` with the fields of a
/// single event (the common case of a command recording one event, spared the arrays'
/// encoding and `unnest`). One prepared statement, one round trip, and in autocommit mode
/// its own transaction; the client-side alternative (`BEGIN`, lock, lookups, insert,
/// `COMMIT`) costs five round trips more per append, which on a local server is as much
/// as the commit itself. Each function, in this order:
///
/// 1. takes the transaction-level advisory lock `pg_advisory_xact_lock(FACTUM, key)` of
///    this store (`key` is a hash of the schema name, so stores in other schemas do not
///    contend);
/// 2. looks the batch's event ids up: all stored as this exact batch with the same
///    expectation is an idempotent re-append (`written: false`); otherwise any stored id
///    is [`StoreError::DuplicateEventId`];
/// 3. reads the stream's head and checks the expected version, then the stream type (the
///    order [`MemoryStore`](crate::store::MemoryStore) checks them in); a failed check
///    returns a status row and writes nothing (an id repeated inside the batch, and every
///    [limit](crate::store::limits), is refused before the call, as every store does);
/// 4. inserts the rows with one `INSERT .. SELECT FROM unnest(..)` (or one `VALUES`
///    row); the identity column hands out the positions, in batch order.
///
/// `runtime/tests/postgres_store.rs` runs 1,500 random appends (new batches, re-appended
/// batches, reused and repeated ids, every expectation, wrong stream types) against this
/// store and [`MemoryStore`](crate::store::MemoryStore) and requires identical answers,
/// positions included.
///
/// Every check runs under the lock, so the check and the insert are race-free: two
/// writers of one stream cannot both see version 4 and both write version 5. The
/// `UNIQUE (stream_id, stream_version)` and `UNIQUE (event_id)` constraints are the
/// backstop for writers that bypass the function (or run at a higher isolation level,
/// where a statement may not see the latest commit): their violation is mapped to
/// [`StoreError::Conflict`] / [`StoreError::DuplicateEventId`] (after retrying, in
/// [`EventStore::append`], so that the answer names the actual version), never to a
/// backend error.
///
/// # The skipped-event trap, and why followers here cannot skip
///
/// A sequence (`BIGSERIAL`, identity) hands out values when a row is inserted, but the
/// row becomes visible when its transaction commits, and transactions commit in any
/// order. With plain inserts, writer A takes position 10, writer B takes 11 and commits
/// first; a follower reading `position > 9` sees 11, checkpoints 11, and never reads 10.
/// `runtime/tests/postgres_follower.rs` shows exactly that with raw SQL.
///
/// Here positions are only taken while holding the advisory lock, and a transaction-level
/// advisory lock is released only when its transaction ends. PostgreSQL ends a
/// transaction by first making its commit visible to new snapshots and only then
/// releasing its locks (`CommitTransaction`: `RecordTransactionCommit`, then
/// `ProcArrayEndTransaction`, then the lock release). So, for two appends A and B:
///
/// - if A took its positions before B, then A held the lock first, and B could only take
///   the lock after A had ended; A's positions are all smaller than B's (the sequence is
///   monotonic and nobody else calls it), and A's commit was visible before B even took
///   its positions, let alone committed.
/// - Hence: **whenever a row at position `p` is visible, every row at a position below
///   `p` that will ever be committed is already visible.** A follower that reads
///   `position > checkpoint ORDER BY position` (what [`EventStore::read_all`] does) and
///   checkpoints the last position it read never skips an event. Positions are also in
///   commit order, which is the store contract. (On a streaming replica too: A's commit
///   record precedes B's in the WAL, and a replica makes commits visible in WAL order.)
/// - The proof needs every writer to take the lock: a plain `INSERT INTO events` that
///   bypasses the functions reopens the trap. Write through the store (or
///   [`PostgresStore::append_in_transaction`]), never around it.
///
/// Gaps in the positions remain possible and are harmless: a transaction that takes
/// positions and then aborts (a crash, a constraint violation, a rollback of a caller's
/// transaction) burns its sequence values, because `nextval` is not transactional. But
/// it held the lock until it ended, so no later position was handed out before it
/// ended, and its positions will never become visible: a follower that reads past the
/// gap misses nothing. Followers must therefore treat positions as ordered, not as
/// dense.
///
/// The cost: appends to one store are serialised from the lock to the commit (the WAL
/// flush included), so the store's write throughput is one commit at a time; batches
/// amortise it (one commit per batch); BENCHMARKS.md ("Append on PostgreSQL") has the
/// figures against a raw insert. Appends to different stores (schemas) do not
/// contend, and reads never take the lock. The alternative, reading only below a
/// snapshot's xmin high-water mark, keeps writers concurrent but delays every reader
/// behind the oldest open writer and maps transaction ids to positions; the lock is
/// simpler to prove and was chosen.
///
/// Because the lock is taken before the checks, transactions that append several times
/// (through [`PostgresStore::append_in_transaction`]) cannot deadlock on each other:
/// whoever holds the lock holds it until it ends, and takes no other factum lock first.
/// Such a transaction blocks every other append until it commits: keep it short. It must
/// run at `READ COMMITTED` (PostgreSQL's default), where each statement of the function
/// sees every commit made before it took the lock.
///
/// # Reads
///
/// Reads are plain prepared `SELECT`s on the primary key or the stream's unique index.
/// A stream is read by version range (`stream_version >= from AND stream_version <
/// from + limit`), which returns the same rows as `LIMIT` because versions are gapless,
/// and keeps the planner's sort to one page even when it prefers a bitmap scan over the
/// index order (with `LIMIT`, PostgreSQL sorted the whole rest of the stream, on disk,
/// for every page). [`EventStore::for_each_in_stream`] pages through the stream 4,096
/// versions at a time, decoding each row into one reused record; `json` columns are read
/// as the text they hold, without a cast. A row that cannot be read back (a metadata
/// document of the wrong shape, a schema version out of range, ...) is
/// [`StoreError::CorruptRow`], naming the stream and version; other rows and streams stay
/// readable, and a follower of `read_all` stops at the row rather than skip it.
///
/// # Followers: filtered reads and waking up
///
/// [`EventStore::read_all_filtered`] is one statement: the page (`position > $1 AND name
/// = ANY($2) ORDER BY position LIMIT $3`) beside `max(position)`, both from the
/// statement's one snapshot. By the lock argument above, every match at or below that
/// position is visible in it, so `scanned_to` (the head, or the last event of a full
/// page) never passes a match that commits later.
///
/// [`EventStore::wait_for_events`] sleeps on `LISTEN/NOTIFY`: since migration 3 the append
/// functions call `pg_notify('factum_events_<schema>', <last position>)` inside the
/// appending transaction, so the notification is delivered at commit, and only if the
/// transaction commits (appends through [`PostgresStore::append_in_transaction`]
/// included). Each store opens one listening connection (named `factum listener
/// <schema>` in `pg_stat_activity` unless the configuration names the application) on
/// its first wait, reads the newest position right after `LISTEN` (commits before it),
/// and fans the highest announced position out to every waiter through a `watch`
/// channel. A failed connection is re-opened with a growing pause (up to 5 s), a silent
/// one is caught by a heartbeat every 30 s, and while it is down waiters poll
/// `max(position)` every 50 ms; no wait outlasts its timeout. (PostgreSQL serialises the
/// commits of notifying transactions database-wide; appends to one store are serialised
/// by the lock anyway.)
///
/// # Strings PostgreSQL cannot store
///
/// PostgreSQL `text` cannot hold the NUL character. A stream id, stream type or event
/// name containing one is refused before anything is sent, with
/// [`StoreError::ValueRefused`] (every store refuses it: see
/// [`limits`](crate::store::limits)). Reading a stream
/// whose id contains NUL finds nothing, as no such stream can exist. (JSON payloads and
/// metadata carry NUL as the `\u0000` escape, which `json` stores as it is.)
///
/// # Migrations
///
/// [`PostgresStore::connect`] creates the schema and applies the migrations it lacks, in
/// one transaction, under a second advisory lock so that concurrent processes starting
/// at once migrate exactly once. A database whose schema version is newer than this
/// code knows is refused (`PostgresError::SchemaTooNew`) rather than written with old
/// assumptions. DDL cannot take parameters: the schema name is therefore restricted to
/// ASCII letters, digits and `_`, and always quoted; every other statement is
/// parameterised.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Sql>,
    notifier: Arc<Notifier>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.sql.schema)
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// The statements of one store, with its schema spelled in.
#[derive(Debug)]
struct Sql {
    schema: String,
    append: String,
    append_one: String,
    read_stream: String,
    read_all: String,
    stream_version: String,
    save_snapshot: String,
    load_snapshot: String,
    read_filtered: String,
    head: String,
    newest: String,
    listen: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let s = quote_ident(schema);
        let columns = "position, stream_id, stream_type, stream_version, event_id, name, \
                       schema_version, payload, occurred_at, metadata";
        Self {
            schema: schema.to_owned(),
            append: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            append_one: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_append_one($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            read_stream: format!(
                "SELECT {columns} FROM {s}.events \
                 WHERE stream_id = $1 AND stream_version >= $2 AND stream_version < $3 \
                 ORDER BY stream_version"
            ),
            read_all: format!(
                "SELECT {columns} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT max(stream_version) FROM {s}.events WHERE stream_id = $1"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (stream_id, stream_version, schema_version, state, taken_at) \
                 VALUES ($1, $2, $3, $4::text::json, $5) \
                 ON CONFLICT (stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version, \
                 schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, \
                 taken_at = EXCLUDED.taken_at"
            ),
            load_snapshot: format!(
                "SELECT stream_version, schema_version, state, taken_at \
                 FROM {s}.snapshots WHERE stream_id = $1"
            ),
            // One statement, so one snapshot: the log's newest position beside the page.
            // The append lock makes a visible position imply every lower committed one
            // is visible, so nothing matching at or below `head` is missing.
            read_filtered: format!(
                "SELECT e.position, e.stream_id, e.stream_type, e.stream_version, e.event_id, \
                        e.name, e.schema_version, e.payload, e.occurred_at, e.metadata, h.head \
                 FROM (SELECT max(position) AS head FROM {s}.events) AS h \
                 LEFT JOIN LATERAL (SELECT {columns} FROM {s}.events \
                     WHERE position > $1 AND name = ANY($2) ORDER BY position LIMIT $3) AS e \
                 ON true ORDER BY e.position"
            ),
            head: format!(
                "SELECT position, occurred_at FROM {s}.events ORDER BY position DESC LIMIT 1"
            ),
            newest: format!("SELECT max(position) FROM {s}.events"),
            listen: format!("LISTEN {}", quote_ident(&channel(schema))),
        }
    }
}

/// The migrations, in order: (version, description, SQL). Each SQL text is frozen as
/// released (a test pins it): a change of schema is a new migration, never an edit. The
/// texts hold three placeholders, filled in by [`render`]: `{{schema}}` (the quoted
/// schema name), `{{lock_key}}` (the append lock's key) and `{{channel}}` (the
/// notification channel).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "events and snapshots tables",
        include_str!("migrations/0001_events_and_snapshots.sql"),
    ),
    // `factum_append` (a batch, as arrays) and `factum_append_one` (one event, as
    // scalars): see the type's documentation. Both return one status row: 0 written, 1
    // already written (idempotent), 2 conflict (`o_stream_version` = actual version or
    // NULL), 3 stream type mismatch (`o_existing_type`), 4 duplicate event id
    // (`o_event_id`).
    (
        2,
        "the factum_append function",
        include_str!("migrations/0002_append_functions.sql"),
    ),
    // The same functions, now announcing every write with `pg_notify('<channel>', '<last
    // position>')` inside the appending transaction: delivered when (and only if) it
    // commits, it wakes `EventStore::wait_for_events`.
    (
        3,
        "append functions notify followers",
        include_str!("migrations/0003_append_functions_notify.sql"),
    ),
];

/// The newest schema version this code knows.
const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A schema of factum's in PostgreSQL: its frozen migrations, as `MIGRATIONS` (rendered
/// by [`render`]), and the table in the schema that records which ran.
pub(crate) struct Schema {
    /// What the schema holds, in messages ("store", "read-model catalog").
    kind: &'static str,
    /// The table recording the applied migrations; its name tells the schemas apart.
    version_table: &'static str,
    /// Every migration, oldest first, numbered 1, 2, 3 ...: (version, description, SQL).
    migrations: &'static [(i32, &'static str, &'static str)],
}

impl Schema {
    /// The newest version of the schema.
    const fn latest(&self) -> i32 {
        self.migrations[self.migrations.len() - 1].0
    }
}

/// The event store.
const STORE: Schema = Schema {
    kind: "store",
    version_table: "factum_schema_migrations",
    migrations: MIGRATIONS,
};

/// The read-model catalog (the schema `factum_read_models`): each projection version's
/// state and checkpoint, and the dead letters.
pub(crate) const READ_MODEL_CATALOG: Schema = Schema {
    kind: "read-model catalog",
    version_table: "factum_catalog_migrations",
    migrations: CATALOG_MIGRATIONS,
};

/// The read-model catalog's migrations, frozen as [`MIGRATIONS`] are.
const CATALOG_MIGRATIONS: &[(i32, &str, &str)] = &[
    // Adopts a catalog made before it was versioned: the DDL factum ran then.
    (
        1,
        "versions and parked tables",
        include_str!("migrations/catalog_0001_versions_and_parked.sql"),
    ),
];

/// A process manager's instances and outbox, in the schema of its read model
/// (`<NAME>__v0`).
pub(crate) const PROCESS_STORE: Schema = Schema {
    kind: "process store",
    version_table: "factum_process_migrations",
    migrations: PROCESS_MIGRATIONS,
};

/// The process store's migrations, frozen as [`MIGRATIONS`] are.
const PROCESS_MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "process instances and outbox",
    include_str!("migrations/process_0001_instances_and_outbox.sql"),
)];

/// Every schema: one holding the version table of one is never migrated as another.
const SCHEMAS: [&Schema; 3] = [&STORE, &READ_MODEL_CATALOG, &PROCESS_STORE];

const _: () = {
    // Each schema's migrations are numbered 1, 2, 3 ... without gaps.
    let mut kind = 0;
    while kind < SCHEMAS.len() {
        let migrations = SCHEMAS[kind].migrations;
        let mut index = 0;
        while index < migrations.len() {
            assert!(migrations[index].0 as usize == index + 1);
            index += 1;
        }
        kind += 1;
    }
};

/// Why a schema cannot be migrated.
#[derive(Debug)]
pub(crate) enum MigrationError {
    /// The schema records a version newer than this code knows.
    TooNew {
        /// The version found.
        found: i32,
        /// The newest version this code knows.
        supported: i32,
    },
    /// The schema holds another of factum's schemas; the reason says which.
    Refused(String),
    /// The database failed.
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for MigrationError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error)
    }
}

/// Brings `kind` in the database schema `schema` up to its newest version: creates the
/// schema and its version table if needed and applies the migrations it lacks, in one
/// transaction, under the advisory lock `(MIGRATION_LOCK_CLASS, lock_key(schema))`, so
/// that processes starting at once migrate exactly once. Refuses a schema recording a
/// newer version, or holding another kind's version table, without changing it.
pub(crate) async fn migrate(
    client: &mut deadpool_postgres::Object,
    kind: &Schema,
    schema: &str,
) -> Result<(), MigrationError> {
    let s = quote_ident(schema);
    let key = lock_key(schema);
    let tx = client.transaction().await?;
    // Concurrent processes connecting at once: one migrates, the others wait here
    // and then find nothing left to do.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK_CLASS, &key],
    )
    .await?;
    let others: Vec<&str> = SCHEMAS
        .iter()
        .map(|other| other.version_table)
        .filter(|table| *table != kind.version_table)
        .collect();
    let found: Option<String> = tx
        .query_opt(
            "SELECT c.relname::text FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = ANY($2) LIMIT 1",
            &[&schema, &others],
        )
        .await?
        .map(|row| row.get(0));
    if let Some(other) = SCHEMAS
        .iter()
        .find(|other| found.as_deref() == Some(other.version_table))
    {
        return Err(MigrationError::Refused(format!(
            "it holds factum's {} (the table `{}`), not a {}",
            other.kind, other.version_table, kind.kind
        )));
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.{} (
             version     integer     PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         );",
        kind.version_table
    ))
    .await?;
    let current: i32 = tx
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {s}.{}",
                kind.version_table
            ),
            &[],
        )
        .await?
        .try_get(0)?;
    if current > kind.latest() {
        return Err(MigrationError::TooNew {
            found: current,
            supported: kind.latest(),
        });
    }
    let record = format!(
        "INSERT INTO {s}.{} (version, description) VALUES ($1, $2)",
        kind.version_table
    );
    for (version, description, sql) in kind.migrations {
        if *version <= current {
            continue;
        }
        tx.batch_execute(&render(sql, &s, key, &channel(schema)))
            .await?;
        tx.execute(&record, &[version, description]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A migration's SQL for one schema: the quoted schema name `s`, the append lock's key
/// and the notification channel put in for their placeholders (schema names are
/// letters, digits and `_`, so none holds a placeholder).
fn render(sql: &str, s: &str, lock_key: i32, channel: &str) -> String {
    sql.replace("{{schema}}", s)
        .replace("{{lock_key}}", &lock_key.to_string())
        .replace("{{channel}}", channel)
}

/// `"name"`: the schema name is validated to letters, digits and `_`, but quote anyway.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn validate_schema(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.to_ascii_lowercase().starts_with("pg_")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(backend(PostgresError::InvalidSchemaName(name.to_owned())))
    }
}

/// FNV-1a of the schema name: the second key of the store's advisory locks. Two schemas
/// with the same hash only share a lock (serialising more), never break anything.
fn lock_key(schema: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in schema.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// The `LISTEN/NOTIFY` channel of the store in `schema`: one per schema, so stores in
/// other schemas do not wake each other. Channel names are identifiers (at most 63
/// bytes); a long schema name is shortened and told apart by its hash.
fn channel(schema: &str) -> String {
    const PREFIX: &str = "factum_events_";
    if PREFIX.len() + schema.len() <= 63 {
        return format!("{PREFIX}{schema}");
    }
    let hash = u32::from_ne_bytes(lock_key(schema).to_ne_bytes());
    // Schema names are ASCII (validated), so any byte index is a char boundary.
    let kept = 63 - PREFIX.len() - 9;
    format!("{PREFIX}{hash:08x}_{}", &schema[..kept.min(schema.len())])
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => backend(error),
        other => backend(PostgresError::Pool(other.to_string())),
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn corrupt(stream_id: &str, stream_version: u64, reason: impl fmt::Display) -> StoreError {
    corrupt_at(stream_id, stream_version, None, reason)
}

/// A corrupt event row at `position` (`None` when its position is unreadable too).
fn corrupt_at(
    stream_id: &str,
    stream_version: u64,
    position: Option<u64>,
    reason: impl fmt::Display,
) -> StoreError {
    StoreError::CorruptRow {
        stream_id: stream_id.to_owned(),
        stream_version,
        position,
        reason: reason.to_string(),
    }
}

/// The position of an event row selected with `Sql::new`'s columns, if it is readable.
fn position_of(row: &Row) -> Option<u64> {
    row.try_get::<_, i64>(0)
        .ok()
        .and_then(|position| u64::try_from(position).ok())
}

/// A stream's versions run 1, 2, 3 … without gaps (the append function guarantees it):
/// a read that finds `found` where `expected` belongs is reading a stream whose rows
/// were deleted or changed outside factum, and must not hand on the events as if whole.
fn check_gapless(
    stream_id: &str,
    expected: u64,
    found: u64,
    position: Option<u64>,
) -> Result<(), StoreError> {
    if found == expected {
        return Ok(());
    }
    let at = position.map_or_else(String::new, |position| format!(" at position {position}"));
    Err(corrupt_at(
        stream_id,
        expected,
        None,
        format_args!(
            "no event holds version {expected}: the next event{at} holds version {found} \
             (rows deleted or changed outside factum)"
        ),
    ))
}

/// The violated unique constraint, if `error` is a unique violation.
fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    (db.code() == &SqlState::UNIQUE_VIOLATION).then(|| db.constraint().unwrap_or(""))
}

/// The `p_batch_duplicate` argument of `factum_append`.
const NO_REPEATED_ID: Option<Uuid> = None;

/// The batch of one append, as the arrays `factum_append` takes.
struct Batch<'a> {
    stream_id: &'a str,
    stream_type: &'a str,
    expected_kind: i32,
    expected_version: i64,
    event_ids: Vec<Uuid>,
    names: Vec<&'a str>,
    schema_versions: Vec<i64>,
    payloads: Vec<&'a str>,
    occurred_at: Vec<chrono::DateTime<chrono::Utc>>,
    metadata: Vec<String>,
}

impl<'a> Batch<'a> {
    fn new(
        stream_id: &'a str,
        stream_type: &'a str,
        expected: ExpectedVersion,
        events: &'a [NewEvent],
    ) -> Result<Self, StoreError> {
        crate::store::limits::check_append(stream_id, stream_type, events)?;
        let (expected_kind, expected_version) = match expected {
            ExpectedVersion::Any => (0, 0),
            ExpectedVersion::NoStream => (1, 0),
            ExpectedVersion::StreamExists => (2, 0),
            ExpectedVersion::Exact(version) => (3, to_i64(version)),
        };
        let mut batch = Batch {
            stream_id,
            stream_type,
            expected_kind,
            expected_version,
            event_ids: Vec::with_capacity(events.len()),
            names: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            payloads: Vec::with_capacity(events.len()),
            occurred_at: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
        };
        for event in events {
            batch.event_ids.push(event.event_id);
            batch.names.push(&event.name);
            batch.schema_versions.push(i64::from(event.schema_version));
            batch.payloads.push(event.payload.get());
            batch.occurred_at.push(event.timestamp);
            batch
                .metadata
                .push(serde_json::to_string(&event.metadata).map_err(backend)?);
        }
        Ok(batch)
    }

    /// The statement to run: `factum_append_one` for one event, else `factum_append`.
    fn sql<'s>(&self, sql: &'s Sql) -> &'s str {
        if self.event_ids.len() == 1 {
            &sql.append_one
        } else {
            &sql.append
        }
    }

    /// The parameters of [`Batch::sql`].
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        if let ([id], [name], [version], [payload], [at], [metadata]) = (
            self.event_ids.as_slice(),
            self.names.as_slice(),
            self.schema_versions.as_slice(),
            self.payloads.as_slice(),
            self.occurred_at.as_slice(),
            self.metadata.as_slice(),
        ) {
            return vec![
                &self.stream_id,
                &self.stream_type,
                &self.expected_kind,
                &self.expected_version,
                id,
                name,
                version,
                payload,
                at,
                metadata,
            ];
        }
        vec![
            &self.stream_id,
            &self.stream_type,
            &self.expected_kind,
            &self.expected_version,
            // `factum_append` can report an id repeated in the batch; `check_append`
            // refused such a batch already.
            &NO_REPEATED_ID,
            &self.event_ids,
            &self.names,
            &self.schema_versions,
            &self.payloads,
            &self.occurred_at,
            &self.metadata,
        ]
    }

    /// What a status row of `factum_append` means.
    fn outcome(&self, expected: ExpectedVersion, row: &Row) -> Result<AppendOutcome, StoreError> {
        let unexpected = |what: &dyn fmt::Display| {
            backend(PostgresError::UnexpectedReply(format!(
                "factum_append for stream `{}`: {what}",
                self.stream_id
            )))
        };
        let status: i32 = row.try_get(0).map_err(|e| unexpected(&e))?;
        let version: Option<i64> = row.try_get(1).map_err(|e| unexpected(&e))?;
        let position: Option<i64> = row.try_get(2).map_err(|e| unexpected(&e))?;
        let to_u64 = |value: Option<i64>| {
            value
                .and_then(|value| u64::try_from(value).ok())
                .ok_or_else(|| unexpected(&format_args!("status {status} without a version")))
        };
        match status {
            0 | 1 => Ok(AppendOutcome {
                stream_version: to_u64(version)?,
                last_position: to_u64(position)?,
                written: status == 0,
            }),
            2 => Err(StoreError::Conflict {
                stream_id: self.stream_id.to_owned(),
                expected,
                actual: version.and_then(|version| u64::try_from(version).ok()),
            }),
            3 => Err(StoreError::StreamTypeMismatch {
                stream_id: self.stream_id.to_owned(),
                existing: row.try_get(4).map_err(|e| unexpected(&e))?,
                requested: self.stream_type.to_owned(),
            }),
            4 => Err(StoreError::DuplicateEventId {
                stream_id: self.stream_id.to_owned(),
                event_id: row.try_get(3).map_err(|e| unexpected(&e))?,
            }),
            other => Err(unexpected(&format_args!("unknown status {other}"))),
        }
    }
}

/// Decodes the columns `Sql::new` selects (position, stream_id, stream_type,
/// stream_version, event_id, name, schema_version, payload, occurred_at, metadata).
fn decode_row(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position = position_of(row);
    let stream_id: &str = row
        .try_get(1)
        .map_err(|error| corrupt_at("", 0, position, format_args!("stream_id: {error}")))?;
    let version: i64 = row.try_get(3).map_err(|error| {
        corrupt_at(
            stream_id,
            0,
            position,
            format_args!("stream_version: {error}"),
        )
    })?;
    let stream_version = u64::try_from(version).map_err(|_| {
        corrupt_at(
            stream_id,
            0,
            position,
            format_args!("stream_version {version} is negative"),
        )
    })?;
    let mut record = RecordedEvent {
        event_id: Uuid::nil(),
        stream_id: stream_id.to_owned(),
        stream_type: String::new(),
        stream_version,
        position: 0,
        name: String::new(),
        schema_version: 0,
        payload: empty_payload(),
        timestamp: chrono::DateTime::UNIX_EPOCH,
        metadata: Metadata::default(),
    };
    fill_record(row, &mut record)?;
    Ok(record)
}

fn empty_payload() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// Fills every column but the stream id and version (already in `record`) from `row`.
fn fill_record(row: &Row, record: &mut RecordedEvent) -> Result<(), StoreError> {
    let position_read = position_of(row);
    let fail = |record: &RecordedEvent, column: &str, error: &dyn fmt::Display| {
        corrupt_at(
            &record.stream_id,
            record.stream_version,
            position_read,
            format_args!("{column}: {error}"),
        )
    };
    let position: i64 = row.try_get(0).map_err(|e| fail(record, "position", &e))?;
    record.position = u64::try_from(position)
        .map_err(|_| fail(record, "position", &format_args!("{position} is negative")))?;
    let stream_type: &str = row
        .try_get(2)
        .map_err(|e| fail(record, "stream_type", &e))?;
    stream_type.clone_into(&mut record.stream_type);
    record.event_id = row.try_get(4).map_err(|e| fail(record, "event_id", &e))?;
    let name: &str = row.try_get(5).map_err(|e| fail(record, "name", &e))?;
    name.clone_into(&mut record.name);
    let schema_version: i64 = row
        .try_get(6)
        .map_err(|e| fail(record, "schema_version", &e))?;
    record.schema_version = u32::try_from(schema_version).map_err(|_| {
        fail(
            record,
            "schema_version",
            &format_args!("{schema_version} is not a version (0 to {})", u32::MAX),
        )
    })?;
    // `json` columns arrive as their text: read in place, checked, copied once.
    let payload: Json<&RawValue> = row.try_get(7).map_err(|e| fail(record, "payload", &e))?;
    record.payload = payload.0.to_owned();
    record.timestamp = row
        .try_get(8)
        .map_err(|e| fail(record, "occurred_at", &e))?;
    let metadata: Json<Metadata> = row.try_get(9).map_err(|e| fail(record, "metadata", &e))?;
    record.metadata = metadata.0;
    Ok(())
}

impl PostgresStore {
    /// Opens a pool to the database, creates the schema and its tables if missing, and
    /// applies the migrations this code knows and the database lacks.
    ///
    /// Accepts a connection string, a [`tokio_postgres::Config`] or a `PostgresConfig`
    /// (see [`PostgresStore::builder`]). Connections use no TLS.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when the configuration is invalid, the database cannot be
    /// reached, or its schema is newer than this code (`PostgresError::SchemaTooNew`).
    pub async fn connect(config: impl Into<PostgresConfig>) -> Result<Self, StoreError> {
        let config = config.into();
        let pg = config
            .pg
            .map_err(|message| backend(PostgresError::InvalidConfig(message)))?;
        validate_schema(&config.schema)?;
        let mut pg_for_listener = pg.clone();
        // Operators (and tests) tell the listening connection apart by its name.
        if pg_for_listener.get_application_name().is_none() {
            pg_for_listener.application_name(format!("factum listener {}", config.schema));
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(|error| backend(PostgresError::InvalidConfig(error.to_string())))?;
        let sql = Arc::new(Sql::new(&config.schema));
        let store = Self {
            pool,
            notifier: Arc::new(Notifier::new(
                pg_for_listener,
                sql.listen.clone(),
                sql.newest.clone(),
            )),
            sql,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A configuration to refine (schema, pool size) before connecting:
    /// `PostgresStore::builder(url).schema("billing").connect().await`.
    pub fn builder(config: impl Into<PostgresConfig>) -> PostgresConfig {
        config.into()
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.sql.schema
    }

    /// The newest factum schema version this code knows (and [`PostgresStore::connect`]
    /// migrates to).
    pub const SCHEMA_VERSION: i32 = SCHEMA_VERSION;

    /// A connection from the store's pool, e.g. to open a transaction for
    /// [`PostgresStore::append_in_transaction`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when no connection can be opened.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let schema = &self.sql.schema;
        let mut client = self.client().await?;
        migrate(&mut client, &STORE, schema)
            .await
            .map_err(|error| match error {
                MigrationError::TooNew { found, supported } => {
                    backend(PostgresError::SchemaTooNew {
                        schema: schema.clone(),
                        found,
                        supported,
                    })
                }
                MigrationError::Refused(reason) => backend(PostgresError::NotAStore {
                    schema: schema.clone(),
                    reason,
                }),
                MigrationError::Database(error) => backend(error),
            })
    }

    /// Appends inside the caller's transaction, for an outbox: the events commit (or
    /// roll back) with whatever else the transaction writes.
    ///
    /// The checks and results are those of [`EventStore::append`]. The transaction holds
    /// the store's append lock from this call until it ends, so every other append waits
    /// for it: keep it short. Run it at `READ COMMITTED` (the default). A failed check
    /// (conflict, stream type, duplicate id) leaves the transaction usable; a database
    /// error aborts it. Take the connection from [`PostgresStore::client`] or any
    /// connection to the same database.
    ///
    /// ```no_run
    /// # async fn run(store: factum::store::PostgresStore, events: Vec<factum::envelope::NewEvent>) -> Result<(), Box<dyn std::error::Error>> {
    /// use factum::store::ExpectedVersion;
    ///
    /// let mut client = store.client().await?;
    /// let tx = client.transaction().await?;
    /// store
    ///     .append_in_transaction(&tx, "Order-1", "Order", ExpectedVersion::NoStream, &events)
    ///     .await?;
    /// tx.execute("INSERT INTO outbox (topic) VALUES ($1)", &[&"order-placed"]).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`EventStore::append`]; a unique violation (a writer that bypassed factum) is
    /// reported as [`StoreError::Conflict`] or [`StoreError::DuplicateEventId`] and, being
    /// a database error, aborts the transaction.
    pub async fn append_in_transaction(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, StoreError> {
        let batch = Batch::new(stream_id, stream_type, expected, events)?;
        match transaction
            .query_one(batch.sql(&self.sql), &batch.params())
            .await
        {
            Ok(row) => batch.outcome(expected, &row),
            Err(error) => Err(self.append_error(&batch, expected, error).await),
        }
    }

    /// The error of a failed `factum_append` call: unique violations become the
    /// conflict or duplicate they stand for.
    async fn append_error(
        &self,
        batch: &Batch<'_>,
        expected: ExpectedVersion,
        error: tokio_postgres::Error,
    ) -> StoreError {
        match unique_violation(&error) {
            Some("events_event_id_key") => StoreError::DuplicateEventId {
                stream_id: batch.stream_id.to_owned(),
                event_id: batch.event_ids[0],
            },
            Some(_) => StoreError::Conflict {
                stream_id: batch.stream_id.to_owned(),
                expected,
                actual: self.stream_version(batch.stream_id).await.ok().flatten(),
            },
            None => backend(error),
        }
    }

    /// The log's newest position, 0 when it is empty.
    async fn newest_position(&self) -> Result<u64, StoreError> {
        let rows = self.query(&self.sql.newest, &[]).await?;
        let newest: Option<i64> = match rows.first() {
            Some(row) => row
                .try_get(0)
                .map_err(|error| corrupt("", 0, format_args!("newest position: {error}")))?,
            None => None,
        };
        Ok(newest
            .and_then(|newest| u64::try_from(newest).ok())
            .unwrap_or(0))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(backend)?;
        client.query(&statement, params).await.map_err(backend)
    }
}

impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let batch = Batch::new(stream_id, stream_type, expected, &events)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(batch.sql(&self.sql))
            .await
            .map_err(backend)?;
        let params = batch.params();
        let mut attempt = 1;
        loop {
            match client.query_one(&statement, &params).await {
                Ok(row) => return batch.outcome(expected, &row),
                // Only a writer bypassing the lock can cause this; run again, so the
                // answer is the function's (idempotent, conflict with the actual version).
                Err(error)
                    if unique_violation(&error).is_some() && attempt < UNIQUE_VIOLATION_RETRIES =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(self.append_error(&batch, expected, error).await),
            }
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 || stream_id.contains('\0') {
            return Ok(Vec::new());
        }
        let from = to_i64(from_version.max(1));
        let end = from.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self
            .query(&self.sql.read_stream, &[&stream_id, &from, &end])
            .await?;
        let mut expected = from_version.max(1);
        rows.iter()
            .map(|row| {
                let event = decode_row(row)?;
                check_gapless(
                    stream_id,
                    expected,
                    event.stream_version,
                    Some(event.position),
                )?;
                expected += 1;
                Ok(event)
            })
            .collect()
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(&self.sql.read_all, &[&to_i64(after), &limit])
            .await?;
        rows.iter().map(decode_row).collect()
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
        if stream_id.contains('\0') {
            return Ok(());
        }
        let client = self.client().await.map_err(VisitError::Store)?;
        let statement = client
            .prepare_cached(&self.sql.read_stream)
            .await
            .map_err(|error| VisitError::Store(backend(error)))?;
        // One record, refilled for every row: its strings keep their buffers.
        let mut record = RecordedEvent {
            event_id: Uuid::nil(),
            stream_id: stream_id.to_owned(),
            stream_type: String::new(),
            stream_version: 0,
            position: 0,
            name: String::new(),
            schema_version: 0,
            payload: empty_payload(),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            metadata: Metadata::default(),
        };
        let mut next = to_i64(from_version.max(1));
        loop {
            let end = next.saturating_add(VISIT_PAGE);
            let rows = client
                .query(&statement, &[&stream_id, &next, &end])
                .await
                .map_err(|error| VisitError::Store(backend(error)))?;
            for row in &rows {
                let version: i64 = row.try_get(3).map_err(|error| {
                    VisitError::Store(corrupt_at(
                        stream_id,
                        0,
                        position_of(row),
                        format_args!("stream_version: {error}"),
                    ))
                })?;
                record.stream_version = u64::try_from(version).map_err(|_| {
                    VisitError::Store(corrupt_at(
                        stream_id,
                        0,
                        position_of(row),
                        format_args!("stream_version {version} is negative"),
                    ))
                })?;
                check_gapless(
                    stream_id,
                    u64::try_from(next).unwrap_or(0),
                    record.stream_version,
                    position_of(row),
                )
                .map_err(VisitError::Store)?;
                fill_record(row, &mut record).map_err(VisitError::Store)?;
                visit(&record).map_err(VisitError::Visitor)?;
                next = version.saturating_add(1);
            }
            // A range that is not filled to its end holds the stream's last event.
            if next < end || end == i64::MAX {
                return Ok(());
            }
        }
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        let limit = limit.max(1);
        // No stored name holds NUL (PostgreSQL text cannot), and the server would refuse
        // the parameter.
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !name.contains('\0'))
            .collect();
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &self.sql.read_filtered,
                &[&to_i64(after), &names, &limit_sql],
            )
            .await?;
        let mut page = FilteredPage {
            events: Vec::with_capacity(rows.len()),
            scanned_to: after,
        };
        let mut head = None;
        for row in &rows {
            let newest: Option<i64> = row
                .try_get(10)
                .map_err(|error| corrupt("", 0, format_args!("newest position: {error}")))?;
            head = newest.and_then(|newest| u64::try_from(newest).ok());
            // The row of an empty page carries only the head.
            let position: Option<i64> = row
                .try_get(0)
                .map_err(|error| corrupt("", 0, format_args!("position: {error}")))?;
            if position.is_some() {
                page.events.push(decode_row(row)?);
            }
        }
        page.scanned_to = match page.events.last() {
            Some(last) if page.events.len() == limit => last.position,
            _ => head.unwrap_or(0),
        }
        .max(after);
        Ok(page)
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        let rows = self.query(&self.sql.head, &[]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let position: i64 = row
            .try_get(0)
            .map_err(|error| corrupt("", 0, format_args!("newest position: {error}")))?;
        let position = u64::try_from(position).map_err(|_| {
            corrupt(
                "",
                0,
                format_args!("newest position {position} is negative"),
            )
        })?;
        let timestamp = row.try_get(1).map_err(|error| {
            corrupt_at("", 0, Some(position), format_args!("occurred_at: {error}"))
        })?;
        Ok(Some(Head {
            position,
            timestamp,
        }))
    }

    async fn wait_for_events(&self, after: u64, timeout: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.notifier.ensure_listening();
        let mut notified = self.notifier.state.subscribe();
        loop {
            let state = *notified.borrow_and_update();
            if state.position > after {
                return Ok(());
            }
            if !state.listening {
                // No announcements while the listener is (re)connecting: look directly.
                let newest = self.newest_position().await?;
                self.notifier.raise(newest);
                if newest > after {
                    return Ok(());
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let until = if state.listening {
                deadline
            } else {
                deadline.min(now + POLL_INTERVAL)
            };
            // The sender lives in `self.notifier`, so `changed` cannot fail.
            let _ = tokio::time::timeout_at(until, notified.changed()).await;
        }
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        if stream_id.contains('\0') {
            return Ok(None);
        }
        let rows = self.query(&self.sql.stream_version, &[&stream_id]).await?;
        let version: Option<i64> = match rows.first() {
            Some(row) => row
                .try_get(0)
                .map_err(|error| corrupt(stream_id, 0, error))?,
            None => None,
        };
        version
            .map(|version| {
                u64::try_from(version).map_err(|_| {
                    corrupt(
                        stream_id,
                        0,
                        format_args!("stream_version {version} is negative"),
                    )
                })
            })
            .transpose()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        crate::store::limits::check_snapshot(&snapshot)?;
        self.query(
            &self.sql.save_snapshot,
            &[
                &snapshot.stream_id,
                &to_i64(snapshot.stream_version),
                &i64::from(snapshot.schema_version),
                &snapshot.state.get(),
                &snapshot.taken_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        if stream_id.contains('\0') {
            return Ok(None);
        }
        let rows = self.query(&self.sql.load_snapshot, &[&stream_id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let version: i64 = row
            .try_get(0)
            .map_err(|error| corrupt(stream_id, 0, format_args!("snapshot version: {error}")))?;
        let stream_version = u64::try_from(version).map_err(|_| {
            corrupt(
                stream_id,
                0,
                format_args!("snapshot version {version} is negative"),
            )
        })?;
        let fail = |column: &str, error: &dyn fmt::Display| {
            corrupt(
                stream_id,
                stream_version,
                format_args!("snapshot {column}: {error}"),
            )
        };
        let schema_version: i64 = row.try_get(1).map_err(|e| fail("schema_version", &e))?;
        let schema_version = u32::try_from(schema_version).map_err(|_| {
            fail(
                "schema_version",
                &format_args!("{schema_version} is out of range"),
            )
        })?;
        let state: Json<&RawValue> = row.try_get(2).map_err(|e| fail("state", &e))?;
        let state = state.0.to_owned();
        let taken_at = row.try_get(3).map_err(|e| fail("taken_at", &e))?;
        Ok(Some(Snapshot {
            stream_id: stream_id.to_owned(),
            stream_version,
            schema_version,
            state,
            taken_at,
        }))
    }
}

/// What the listening connection knows, shared with waiting followers.
#[derive(Debug, Clone, Copy, Default)]
struct Notified {
    /// Whether the listening connection is up: every commit since the newest position
    /// it read at `LISTEN` time is then announced to it.
    listening: bool,
    /// The highest position known to have committed.
    position: u64,
}

/// The store's one listening connection (opened on the first wait, re-opened after a
/// failure) and the highest position it was told about, fanned out to every waiter
/// through a `watch` channel.
struct Notifier {
    pg: tokio_postgres::Config,
    /// `LISTEN "<channel>"`.
    listen: String,
    /// `SELECT max(position) ..`, read right after `LISTEN`: commits before it are in
    /// the answer, commits after it are announced.
    newest: String,
    state: watch::Sender<Notified>,
    /// The listening task, if one was started; restarted when it has ended (its runtime
    /// shut down).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Notifier {
    fn new(pg: tokio_postgres::Config, listen: String, newest: String) -> Self {
        Self {
            pg,
            listen,
            newest,
            state: watch::Sender::new(Notified::default()),
            task: Mutex::new(None),
        }
    }

    /// Raises the known position (never lowers it), waking waiters.
    fn raise(&self, position: u64) {
        self.state.send_if_modified(|state| {
            let newer = position > state.position;
            state.position = state.position.max(position);
            newer
        });
    }

    /// Starts the listening task unless it runs. Outside a tokio runtime there is none,
    /// and waiters poll.
    fn ensure_listening(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *task = Some(runtime.spawn(listen_forever(Arc::downgrade(self))));
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // The last handle of the store is gone: close the listening connection.
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// The listening task: holds one connection that `LISTEN`s, re-opening it (with a
/// growing pause) whenever it fails, until the store is dropped.
async fn listen_forever(notifier: Weak<Notifier>) {
    let mut backoff = POLL_INTERVAL;
    loop {
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let (pg, listen, newest) = (
            strong.pg.clone(),
            strong.listen.clone(),
            strong.newest.clone(),
        );
        drop(strong);
        let started = tokio::time::Instant::now();
        let ended = listen_once(&notifier, &pg, &listen, &newest).await;
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        // Waiters fall back to polling until the connection is back.
        strong.state.send_modify(|state| state.listening = false);
        drop(strong);
        if let Err(error) = ended {
            tracing::warn!(error = %crate::error::Report(&error), "factum: the PostgreSQL listening connection failed; re-opening it");
        }
        if started.elapsed() > LISTENER_HEARTBEAT {
            backoff = POLL_INTERVAL;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTENER_MAX_BACKOFF);
    }
}

/// One listening connection, until it fails (or the store is dropped).
async fn listen_once(
    notifier: &Weak<Notifier>,
    pg: &tokio_postgres::Config,
    listen: &str,
    newest: &str,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = pg.connect(NoTls).await?;
    // The connection delivers notifications only while it is polled: this half polls it
    // (and so also carries the client's queries), the other half talks through the
    // client.
    let receiving = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    let Some(notifier) = notifier.upgrade() else {
                        return Ok(());
                    };
                    // A payload that is not a position (a stranger's NOTIFY on our
                    // channel) still means "look again".
                    match notification.payload().parse::<u64>() {
                        Ok(position) => notifier.raise(position),
                        Err(_) => notifier.state.send_modify(|_| {}),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    };
    let talking = async {
        client.batch_execute(listen).await?;
        let row = client.query_one(newest, &[]).await?;
        let position: Option<i64> = row.try_get(0)?;
        let Some(strong) = notifier.upgrade() else {
            return Ok(());
        };
        strong.state.send_modify(|state| {
            state.listening = true;
            state.position = state
                .position
                .max(position.and_then(|p| u64::try_from(p).ok()).unwrap_or(0));
        });
        drop(strong);
        loop {
            tokio::time::sleep(LISTENER_HEARTBEAT).await;
            match tokio::time::timeout(LISTENER_HEARTBEAT, client.simple_query("")).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => {
                    tracing::warn!("factum: the PostgreSQL listening connection stopped answering");
                    return Ok(());
                }
            }
        }
    };
    tokio::select! {
        ended = receiving => ended,
        ended = talking => ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["public", "factum_test_1", "_x", "A"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "pg_x",
            "PG_x",
            "a-b",
            "a\"b",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    /// Every released migration, as it runs for the schema `public`: a migration is only
    /// ever added, never edited (an edit would change what existing databases ran, not
    /// what they hold). Editing one fails here; a new one adds a snapshot.
    #[test]
    fn released_migrations_are_frozen() {
        pin("postgres_migration", "public", MIGRATIONS);
    }

    /// Every released migration of the read-model catalog, as it runs for its schema;
    /// frozen as the store's are.
    #[test]
    fn released_catalog_migrations_are_frozen() {
        pin(
            "postgres_catalog_migration",
            crate::projection::postgres::CATALOG_SCHEMA,
            super::CATALOG_MIGRATIONS,
        );
    }

    /// Every released migration of the process store, as it runs for a manager's schema;
    /// frozen as the store's are.
    #[test]
    fn released_process_migrations_are_frozen() {
        pin(
            "postgres_process_migration",
            "order_fulfilment__v0",
            super::PROCESS_MIGRATIONS,
        );
    }

    /// Pins the text of each migration, rendered for `schema`, as the snapshot
    /// `{prefix}_{version}`.
    fn pin(prefix: &str, schema: &str, migrations: &[(i32, &str, &str)]) {
        for (version, description, sql) in migrations {
            insta::assert_snapshot!(
                format!("{prefix}_{version}"),
                render(
                    sql,
                    &quote_ident(schema),
                    lock_key(schema),
                    &channel(schema)
                ),
                description
            );
        }
    }

    #[test]
    fn the_append_functions_take_the_append_lock() {
        let lock = format!("pg_advisory_xact_lock({APPEND_LOCK_CLASS}, {{{{lock_key}}}})");
        for (version, _, sql) in &MIGRATIONS[1..] {
            assert_eq!(sql.matches(&lock).count(), 2, "migration {version}: {lock}");
        }
    }

    #[test]
    fn lock_keys_differ_between_schemas() {
        assert_ne!(lock_key("public"), lock_key("factum_test_1"));
        assert_eq!(lock_key("public"), lock_key("public"));
    }
}
