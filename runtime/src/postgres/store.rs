//! The PostgreSQL event store. The design, and why it is so, is documented on
//! [`PostgresStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::value::RawValue;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::envelope::{NewEvent, RecordedEvent, Snapshot};
use crate::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion,
    FilteredPage, Head, StoreError, VisitError,
};

use super::append::{Batch, unique_violation};
use super::config::PostgresConfig;
use super::error::{PostgresError, backend, pool_error};
use super::migrate::{
    MigrationError, SCHEMA_VERSION, STORE, channel, migrate, quote_ident, validate_schema,
};
use super::notifier::Notifier;
use super::rows::{
    blank_record, check_gapless, corrupt, corrupt_at, decode_command, decode_row, fill_record,
    position_of, to_i64,
};

/// Rows per page when a stream is visited.
pub(super) const VISIT_PAGE: i64 = 4096;
/// How often [`EventStore::append`] re-runs after a unique violation (another writer
/// bypassing the lock) before reporting it as a conflict.
pub(super) const UNIQUE_VIOLATION_RETRIES: usize = 3;
/// How often a waiting follower polls the newest position while the listening connection
/// is down.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the listening connection proves it is alive (a silently dropped connection
/// would otherwise only be noticed by TCP keepalives, after hours).
pub(super) const LISTENER_HEARTBEAT: Duration = Duration::from_secs(30);
/// The longest pause between attempts to re-open the listening connection.
pub(super) const LISTENER_MAX_BACKOFF: Duration = Duration::from_secs(5);

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
/// - `commands` (since schema version 4): one row per command recorded by
///   [`EventStore::append_command`] (`command_id uuid PRIMARY KEY`, `fingerprint`,
///   `recorded_at timestamptz`, the stream, its version after the command, the first and
///   last positions, `event_ids uuid[]`), indexed by `recorded_at` for `prune_commands`.
///   The function `factum_append_command` takes the append lock, looks the id up (status
///   5: recorded already, nothing written), then runs `factum_append`'s checks and
///   inserts (or, for a command without events, checks the expected version and the
///   stream type) and inserts the record, all in one transaction. Submissions of one id
///   queue on the lock, so each finds the record of the one before; the primary key is
///   the backstop for a writer that bypasses the lock (its violation re-runs the call,
///   which then finds the record). See [`crate::store::commands`].
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
    /// Signs critical events on append, checks them on read.
    signer: Option<crate::integrity::EventSigner>,
    /// Where archived events' bodies are read from (`PostgresConfig::archive`).
    pub(super) archives: crate::archive::Archives,
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
pub(super) struct Sql {
    pub(super) schema: String,
    /// Whether reads select the hash columns and check them (see
    /// `PostgresConfig::check_hashes`): after the event columns, or after the head in
    /// `read_filtered`.
    pub(super) check_hashes: bool,
    /// One page of the log for `verify`, every column as stored.
    pub(super) verify_page: String,
    /// One page of leaves (position, hash, name, signature).
    pub(super) leaves: String,
    /// The unsigned events among the ids of a batch (position, hash, name).
    pub(super) unsigned: String,
    /// Stores an event's signature.
    pub(super) sign: String,
    /// Stores a checkpoint (size, JSON), replacing one of the same size.
    pub(super) save_checkpoint: String,
    /// Every checkpoint (size, JSON), by size.
    pub(super) checkpoints: String,
    pub(super) append: String,
    pub(super) append_one: String,
    pub(super) append_command: String,
    pub(super) command_outcome: String,
    pub(super) prune_commands: String,
    pub(super) read_stream: String,
    pub(super) read_all: String,
    pub(super) stream_version: String,
    pub(super) save_snapshot: String,
    pub(super) load_snapshot: String,
    pub(super) read_filtered: String,
    pub(super) head: String,
    pub(super) newest: String,
    pub(super) listen: String,
}

impl Sql {
    fn new(schema: &str, check_hashes: bool) -> Self {
        let s = quote_ident(schema);
        let columns = if check_hashes {
            "position, stream_id, stream_type, stream_version, event_id, name, \
             schema_version, payload, occurred_at, metadata, hash, predecessor, signature"
        } else {
            "position, stream_id, stream_type, stream_version, event_id, name, \
             schema_version, payload, occurred_at, metadata"
        };
        let filtered_hashes = if check_hashes {
            ", e.hash, e.predecessor, e.signature"
        } else {
            ""
        };
        Self {
            schema: schema.to_owned(),
            check_hashes,
            verify_page: format!(
                "SELECT position, stream_id, stream_type, stream_version, event_id, name, \
                        schema_version, payload::text, metadata::text, occurred_at, hash, \
                        predecessor \
                 FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            leaves: format!(
                "SELECT position, hash, name, signature FROM {s}.events WHERE position > $1 \
                 ORDER BY position LIMIT $2"
            ),
            unsigned: format!(
                "SELECT position, hash, name FROM {s}.events \
                 WHERE event_id = ANY($1) AND signature IS NULL ORDER BY position"
            ),
            sign: format!("UPDATE {s}.events SET signature = $2 WHERE position = $1"),
            save_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (tree_size, head) VALUES ($1, $2) \
                 ON CONFLICT (tree_size) DO UPDATE SET head = EXCLUDED.head"
            ),
            checkpoints: format!("SELECT tree_size, head FROM {s}.checkpoints ORDER BY tree_size"),
            append: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            append_one: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_append_one($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            append_command: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type, \
                        o_first_position \
                 FROM {s}.factum_append_command($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                                                $12, $13)"
            ),
            command_outcome: format!(
                "SELECT fingerprint, recorded_at, stream_id, stream_version, first_position, \
                        last_position, event_ids \
                 FROM {s}.commands WHERE command_id = $1"
            ),
            prune_commands: format!("DELETE FROM {s}.commands WHERE recorded_at < $1"),
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
                        e.name, e.schema_version, e.payload, e.occurred_at, e.metadata, h.head\
                        {filtered_hashes} \
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
        let pg = config.pg.map_err(|source| {
            backend(PostgresError::InvalidConfig {
                what: "cannot parse the connection string",
                source: Box::new(source),
            })
        })?;
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
            .map_err(|source| {
                backend(PostgresError::InvalidConfig {
                    what: "cannot build the connection pool",
                    source: Box::new(source),
                })
            })?;
        let checks = config.check_hashes || config.signer.is_some();
        let sql = Arc::new(Sql::new(&config.schema, checks));
        let store = Self {
            signer: config.signer,
            archives: config.archives,
            pool,
            notifier: Arc::new(Notifier::new(
                pg_for_listener,
                sql.listen.clone(),
                sql.newest.clone(),
            )),
            sql,
        };
        store.migrate().await?;
        super::archive::check_attached(&store).await?;
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

    /// The size on disk in bytes of the store's tables in its schema, with their indexes
    /// and TOAST data (`pg_total_relation_size`). For
    /// [`telemetry::record_store_size`](crate::telemetry::record_store_size).
    pub async fn size_on_disk(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::int8
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'm')",
                &[&self.schema()],
            )
            .await
            .map_err(backend)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

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

    /// The record of the command `command_id`, read on `client`.
    async fn load_command(
        &self,
        client: &deadpool_postgres::Object,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let statement = client
            .prepare_cached(&self.sql.command_outcome)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&statement, &[&command_id])
            .await
            .map_err(backend)?;
        rows.first()
            .map(|row| decode_command(row, command_id))
            .transpose()
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

    /// The store's statements.
    pub(super) fn sql(&self) -> &Sql {
        &self.sql
    }

    /// Checks the row's hash when the store checks hashes on read (see
    /// `PostgresConfig::check_hashes`), and a critical event's signature when it signs
    /// events; `hash_column`: where the hash columns start. An archived body comes from
    /// the store's archives.
    fn checked(
        &self,
        row: &Row,
        hash_column: usize,
        body: Option<&crate::archive::ArchivedEvent>,
    ) -> Result<(), StoreError> {
        if self.sql.check_hashes {
            super::integrity::check_hash(row, hash_column, self.signer.as_ref(), body)
        } else {
            Ok(())
        }
    }

    /// The event of a row selected with the store's columns, checked (see
    /// [`checked`](Self::checked)), its body read from the archives when it is archived.
    fn decode(&self, row: &Row, hash_column: usize) -> Result<RecordedEvent, StoreError> {
        let body = super::archive::archived_body(row, &self.archives)?;
        self.checked(row, hash_column, body.as_ref())?;
        decode_row(row, body.as_ref())
    }

    /// [`decode`](Self::decode) into `record`, whose stream id and version are set.
    fn fill(
        &self,
        row: &Row,
        hash_column: usize,
        record: &mut RecordedEvent,
    ) -> Result<(), StoreError> {
        let body = super::archive::archived_body(row, &self.archives)?;
        self.checked(row, hash_column, body.as_ref())?;
        fill_record(row, record, body.as_ref())
    }

    /// The signer, when `events` hold a critical event.
    fn signer_for(&self, events: &[NewEvent]) -> Option<&crate::integrity::EventSigner> {
        self.signer
            .as_ref()
            .filter(|signer| events.iter().any(|event| signer.signs(&event.name)))
    }

    /// Runs an append statement and signs the critical events it wrote, in one
    /// transaction (the append lock, taken by the statement, is held to the commit): a
    /// critical event is never stored without its signature.
    async fn append_signed(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        batch: &Batch<'_>,
        expected: ExpectedVersion,
        signer: &crate::integrity::EventSigner,
    ) -> Result<Row, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        let statement = transaction.prepare_cached(sql).await.map_err(backend)?;
        let row = match transaction.query_one(&statement, params).await {
            Ok(row) => row,
            Err(error) => {
                drop(transaction);
                return Err(self.append_error(batch, expected, error).await);
            }
        };
        let unsigned = transaction
            .prepare_cached(&self.sql.unsigned)
            .await
            .map_err(backend)?;
        let sign = transaction
            .prepare_cached(&self.sql.sign)
            .await
            .map_err(backend)?;
        for event in transaction
            .query(&unsigned, &[&batch.event_ids])
            .await
            .map_err(backend)?
        {
            let name: &str = event.try_get(2).map_err(backend)?;
            if !signer.signs(name) {
                continue;
            }
            let position: i64 = event.try_get(0).map_err(backend)?;
            let hash: &[u8] = event.try_get(1).map_err(backend)?;
            let hash = crate::integrity::EventHash::try_from(hash).map_err(|_| {
                backend(PostgresError::UnexpectedReply(format!(
                    "the event at position {position} was stored without a hash"
                )))
            })?;
            let signature = signer.sign(&hash);
            transaction
                .execute(&sign, &[&position, &signature.as_slice()])
                .await
                .map_err(backend)?;
        }
        transaction.commit().await.map_err(backend)?;
        Ok(row)
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

/// The appends themselves; the trait's methods measure them (see `crate::telemetry`).
impl PostgresStore {
    async fn append_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let batch = Batch::new(stream_id, stream_type, expected, &events)?;
        if let Some(signer) = self.signer_for(&events) {
            let row = self
                .append_signed(
                    batch.sql(&self.sql),
                    &batch.params(),
                    &batch,
                    expected,
                    signer,
                )
                .await?;
            return batch.outcome(expected, &row);
        }
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

    async fn append_command_unmeasured(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        let batch = Batch::of_command(stream_id, stream_type, expected, &events, &command)?;
        if let Some(signer) = self.signer_for(&events) {
            let row = self
                .append_signed(
                    &self.sql.append_command,
                    &batch.command_params(&command),
                    &batch,
                    expected,
                    signer,
                )
                .await?;
            if let Some(outcome) = batch.command_outcome(expected, &row, &command)? {
                return Ok(CommandAppend::Appended(outcome));
            }
            let client = self.client().await?;
            if let Some(stored) = self.load_command(&client, command.command_id).await? {
                return Ok(CommandAppend::AlreadyExecuted(stored));
            }
            return Err(backend(PostgresError::UnexpectedReply(format!(
                "command {} is recorded, but its record was pruned at once",
                command.command_id
            ))));
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.append_command)
            .await
            .map_err(backend)?;
        let params = batch.command_params(&command);
        let mut attempt = 1;
        loop {
            let row = match client.query_one(&statement, &params).await {
                Ok(row) => row,
                // Only a writer bypassing the lock can cause this; run again, so that the
                // answer is the function's (the record it finds, or the conflict).
                Err(error)
                    if unique_violation(&error).is_some() && attempt < UNIQUE_VIOLATION_RETRIES =>
                {
                    attempt += 1;
                    continue;
                }
                Err(error) => return Err(self.append_error(&batch, expected, error).await),
            };
            if let Some(outcome) = batch.command_outcome(expected, &row, &command)? {
                return Ok(CommandAppend::Appended(outcome));
            }
            // Recorded already. The record is read (on this connection: a pool of one
            // has no other) after the function's transaction ended; only a prune in
            // between can take it away, and then the command runs again.
            if let Some(stored) = self.load_command(&client, command.command_id).await? {
                return Ok(CommandAppend::AlreadyExecuted(stored));
            }
        }
    }
}

impl crate::store::StreamCatalog for PostgresStore {
    async fn streams(
        &self,
        filter: crate::store::StreamFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::store::StreamInfo>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT stream_id, min(stream_type), max(stream_version) FROM {}.events
             WHERE stream_id > $1 AND ($2::text IS NULL OR stream_type = $2)
               AND ($4::text IS NULL OR strpos(stream_id, $4) > 0)
             GROUP BY stream_id ORDER BY stream_id LIMIT $3",
            quote_ident(self.schema())
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &sql,
                &[
                    &after.unwrap_or_default(),
                    &filter.stream_type,
                    &limit,
                    &filter.contains,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| crate::store::StreamInfo {
                stream_id: row.get(0),
                stream_type: row.get(1),
                version: row.get::<_, i64>(2).max(0) as u64,
            })
            .collect())
    }
}

impl EventStore for PostgresStore {
    crate::telemetry::measured_appends!("postgresql");

    async fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        let client = self.client().await?;
        self.load_command(&client, command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let bound = crate::store::commands::prune_bound(recorded_before);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.prune_commands)
            .await
            .map_err(backend)?;
        client.execute(&statement, &[&bound]).await.map_err(backend)
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
                let event = self.decode(row, 10)?;
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
        rows.iter().map(|row| self.decode(row, 10)).collect()
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
        let mut record = blank_record(stream_id, 0);
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
                self.fill(row, 10, &mut record).map_err(VisitError::Store)?;
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
                page.events.push(self.decode(row, 11)?);
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
