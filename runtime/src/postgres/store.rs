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
use crate::store::decision::AppendCondition;
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

/// Where the hash columns start in a row selected with the store's columns (after the
/// event's own, tags last).
pub(super) const HASH_COLUMN: usize = 11;
/// Where a row of `factum_read_matching` holds the position the read went to (after the
/// event's columns and its hash columns, which it always selects), and the settled head
/// when that position is one (after it).
pub(super) const READ_MATCHING_READ_TO: usize = HASH_COLUMN + 3;
/// Rows per page when a stream is visited.
pub(super) const VISIT_PAGE: i64 = 4096;
/// How often [`EventStore::append`] re-runs after a unique violation (a concurrent append
/// of the same event id to another stream, or a writer bypassing the functions) before
/// reporting it as a conflict.
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
///   The function `factum_append_command` takes the command's lock (an advisory lock on a
///   hash of its id), looks the id up (status 5: recorded already, nothing written), then
///   runs `factum_append` (or, for a command without events, checks the expected version
///   and the stream type under the stream's lock) and inserts the record, all in one
///   transaction. Submissions of one id queue on its lock, so each finds the record of
///   the one before; the primary key is
///   the backstop for a writer that bypasses the lock (its violation re-runs the call,
///   which then finds the record). See [`crate::store::commands`].
/// - `events.tags` and `event_tags (tag, position) PRIMARY KEY` (since schema version
///   14): an event's tags as the JSON array of its sorted, distinct `key:value` texts
///   (`NULL` without tags; the hash covers that text), and one row per tag, written by
///   `factum_decide` with the event. See *Decisions* below.
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
/// 1. takes the stream's lock (a transaction-level advisory lock on a hash of the schema
///    and the stream id): appends to one stream queue, appends to others do not;
/// 2. takes the store's append lock shared (`pg_advisory_xact_lock_shared(FACTUM,
///    key)`; `key` is a hash of the schema name, so stores in other schemas do not
///    contend): concurrent appends do not wait for each other, an append inside a
///    caller's transaction takes it exclusively (see below);
/// 3. looks the batch's event ids up: all stored as this exact batch with the same
///    expectation is an idempotent re-append (`written: false`); otherwise any stored id
///    is [`StoreError::DuplicateEventId`];
/// 4. reads the stream's head and checks the expected version, then the stream type (the
///    order [`MemoryStore`](crate::store::MemoryStore) checks them in); a failed check
///    returns a status row and writes nothing (an id repeated inside the batch, and every
///    [limit](crate::store::limits), is refused before the call, as every store does);
/// 5. takes its positions (the position lock, below) and inserts the rows with
///    one `INSERT .. SELECT FROM unnest(..)` (or one `VALUES` row), in batch order.
///
/// The commit follows, side by side with other appends' commits, which PostgreSQL
/// flushes to disk together.
///
/// Each function runs these steps in one body (entering a PL/pgSQL function per step,
/// and a trigger per row, cost more server time than the steps themselves; BENCHMARKS.md,
/// "Append on PostgreSQL") and computes each event's hash (`factum::integrity::chain`)
/// itself, chained from the stream's head it read for step 4, before the insert. A
/// trigger hashes rows inserted without one.
///
/// `runtime/tests/postgres_store.rs` runs 1,500 random appends (new batches, re-appended
/// batches, reused and repeated ids, every expectation, wrong stream types) against this
/// store and [`MemoryStore`](crate::store::MemoryStore) and requires identical answers,
/// positions included.
///
/// Every check runs under the stream's lock, held until the commit, so the check and the
/// insert are race-free: two writers of one stream cannot both see version 4 and both
/// write version 5. The
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
/// Here an append, before it takes any position, takes a lock of its own, shared, keyed
/// by the last position taken so far `k` (the sequence's last value), and holds it until
/// its transaction ends; every position it then takes is above `k`. A reader asks for the
/// **settled head** (`factum_settled_head()`), in three steps: the last position taken
/// `q`; the keys of those locks held at that moment (low 32 bits in the key; the rest is
/// that of the nearest such value at or below `q`; a key up to 2^31 ahead of `q` belongs
/// to an append that read the sequence after `q` was read, whose positions are all above
/// `q`, and is left out), whose minimum `m` bounds from below
/// every position an append in flight may still commit; then, in a new snapshot, the
/// newest visible event at or below `min(q, m)`. An append that commits a position at or
/// below that bound took it before `q` was read, so it had taken its lock before the
/// look: it either still held it then (and its position is above its key, hence above
/// `m`: a contradiction), or had ended, and its commit is visible in the later snapshot.
/// So **every event at or below the settled head that will ever commit is visible**.
///
/// Reads of the log ask for it, then read up to it: [`EventStore::read_all`],
/// [`EventStore::read_all_filtered`] (whose `scanned_to` never passes it),
/// [`EventStore::head`], [`EventStore::wait_for_events`], the leaves of signed
/// checkpoints, the cut of an archive. Only this store's appends hold its followers back,
/// not other transactions of the cluster. (An append would have to stay open while four
/// billion positions are taken for its key's high bits to be read wrong.) The locks live
/// on the primary: follow the log there, not on a streaming replica, which sees no
/// locks and could read past an append still to commit.
///
/// Appends come in two modes:
///
/// - **Concurrent** (every append of the store's own, each its own transaction): the
///   append lock shared, so they neither wait for nor block each other; their positions
///   are taken one by one from the sequence, so a batch's positions are in order but may
///   interleave with another append's.
/// - **Held** ([`PostgresStore::append_in_transaction`], and any call in a transaction
///   that has written before): the append lock exclusively until the transaction ends,
///   so it starts once every concurrent append in flight has ended, and none starts
///   until it has ended; its positions are one consecutive block. It takes no stream's
///   lock: with the append lock, none is needed.
///
/// Positions are also in settling order, which is the store contract: a follower that
/// reads `position > checkpoint` up to the settled head and checkpoints the last
/// position it read never skips an event. `runtime/tests/postgres_follower.rs` holds a
/// concurrent append open between its insert and its commit: the next append does not
/// wait for it, and followers read nothing past it until it commits; 32 writers of all
/// kinds and two followers agree on every event.
///
/// The proof needs every writer to go through the append functions: a plain `INSERT INTO
/// events` that bypasses them reopens the trap. Write through the store (or
/// [`PostgresStore::append_in_transaction`]), never around it. Reads of the log need
/// `READ COMMITTED` (PostgreSQL's default), where each statement of the settled head's
/// function takes its own snapshot.
///
/// Gaps in the positions remain possible and are harmless: a transaction that takes
/// positions and then aborts (a crash, a constraint violation, a rollback of a caller's
/// transaction) burns its sequence values, because `nextval` is not transactional. Its
/// positions never become visible, and once it has ended its lock no longer holds the
/// settled head back. Followers must therefore treat positions as ordered, not as
/// dense.
///
/// The cost: a read of the log is two round trips (the settled head, then the rows), and
/// a follower sees an append once every append that took a lower position has ended,
/// not just its own commit. A stream's own reads ([`EventStore::read_stream`],
/// [`EventStore::stream_version`], loading an aggregate) see every commit at once. Held
/// appends block every other append until their transaction ends: keep such
/// transactions short. BENCHMARKS.md ("Append on PostgreSQL") has the throughput of
/// concurrent writers against raw inserts.
///
/// Lock order is the same everywhere (a command's lock, the tags' locks in key order, a
/// stream's lock, the append lock, the position lock), a concurrent append waits for
/// nothing once it holds the append lock, and a held append takes no stream lock, so appends do not deadlock on each
/// other; a transaction that appends several times through
/// [`PostgresStore::append_in_transaction`] holds the append lock from its first append
/// on. Such a transaction must run at `READ COMMITTED`, where each statement of the
/// function sees every commit made before it took the lock.
///
/// # Decisions: tag locks, never check-then-insert
///
/// A batch with tags, or under a decision's condition
/// ([`DecisionStore::append_if`](crate::store::decision::DecisionStore::append_if)), goes
/// to `factum_decide` (untagged appends keep the functions above). Checking a condition
/// with a `SELECT` and then inserting, at `READ COMMITTED`, lets two deciders both find
/// no conflicting event and both commit (the race Marten shipped); serializable
/// transactions would need every append to run serializable. Here locks order the
/// writers instead: every tagged append takes an advisory lock per tag of its batch,
/// **shared** (tagged appends to other streams still run side by side), and a decision
/// takes the lock of every tag of its condition **exclusively**, all in key order before
/// the stream's lock. An event a condition matches carries every tag of one of its
/// items, so its writer and the decision exclude each other: whichever locks second runs
/// its statements after the first committed, and the condition's check, a statement run
/// once the locks are granted, sees the first's event. A condition with an item without
/// tags (names only) could match an event of any tags: it takes the append lock
/// exclusively, as a held append does, so no append is in flight while it checks.
/// Idempotency is checked before the condition (a stored batch is answered as
/// written, never as a failed condition); the condition first looks, in one statement,
/// for any row of its items' first tags in `event_tags` after its position (none: nothing
/// matches, the common case), and only then walks each item's rows, checking its other
/// tags and names: it costs what was stored since the decision's read, not what the
/// store holds.
///
/// [`DecisionStore::read_matching`](crate::store::decision::DecisionStore) (one call of
/// `factum_read_matching`) first finds the position it reads to, `read_to`, such that no
/// event the query matches at or below it commits later, unseen by the decision and
/// passed by its condition; its reads come after, in later snapshots. When every item
/// has tags, it takes their locks exclusively and the append lock shared, as a
/// condition does: once granted, every writer of a matching event (which holds its tags'
/// locks shared, or the append lock exclusively, from before it takes positions until
/// it ends) has ended, and any later one takes positions above the sequence's last
/// value, which is `read_to`. The locks last only for the read. Otherwise `read_to` is
/// the settled head. The read then collects, in one statement, the rows of each item's
/// first tag up to `read_to` (with items without tags, each item walks as the condition
/// does), fetches those events (only those of the items' names when every item names
/// some), and keeps the ones the query matches. Only a settled head is passed on to
/// followers: a position found under tag locks may lie above an append of other tags
/// still in flight.
/// `runtime/tests/postgres_conformance.rs` races sixteen deciders on sixteen connections
/// for a course's last seat, a hundred times; without the exclusive locks, fifteen of
/// them took it.
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
/// [`EventStore::read_all_filtered`] reads the matches (`position > $1 AND position <=
/// <settled head> AND name = ANY($2) ORDER BY position LIMIT $3`); its `scanned_to` is
/// the settled head, or the last match of a full page.
///
/// [`EventStore::wait_for_events`] sleeps on `LISTEN/NOTIFY`. A concurrent append cannot
/// notify inside its transaction (PostgreSQL serialises the commits of notifying
/// transactions, which would serialise the appends again), so after its commit the store
/// hands the position to an announcing task, which sends `pg_notify('factum_events_
/// <schema>', <position>)` on a connection of its own (`factum announcer <schema>` in
/// `pg_stat_activity`), coalescing a burst into one notification and committing without
/// waiting for the disk. Held appends notify inside their transaction, delivered at
/// commit. Each store opens one listening connection (named `factum listener <schema>`
/// in `pg_stat_activity` unless the configuration names the application) on its first
/// wait. On `LISTEN` and on every notification it asks for the settled head, and fans it
/// out to every waiter through a `watch` channel; while events stand beyond the settled
/// head (appends still to end, whose announcements may never come if their process
/// died) it asks again every 50 ms. A failed connection is re-opened with a growing pause
/// (up to 5 s), a silent one is caught by the same question every 30 s, and while it is
/// down waiters poll the settled head every 50 ms; no wait outlasts its timeout.
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
    /// `factum_decide`: an append with tags or under a decision's condition.
    pub(super) decide: String,
    /// `factum_decide_command`: a command's append with tags or under a condition.
    pub(super) decide_command: String,
    pub(super) command_outcome: String,
    pub(super) prune_commands: String,
    pub(super) read_stream: String,
    pub(super) read_all: String,
    pub(super) stream_version: String,
    pub(super) save_snapshot: String,
    pub(super) load_snapshot: String,
    pub(super) read_filtered: String,
    /// The position and time of the event at a (settled) position.
    pub(super) head: String,
    /// The newest settled position (`factum_settled_head`).
    pub(super) settled_head: String,
    /// A decision's read: the events a query matches up to the position it finds, each
    /// with it (`factum_read_matching`; the hash columns always, the position at
    /// [`READ_MATCHING_READ_TO`]).
    pub(super) read_matching: String,
    /// The newest settled position and the newest position.
    pub(super) newest: String,
    pub(super) listen: String,
}

impl Sql {
    fn new(schema: &str, check_hashes: bool) -> Self {
        let s = quote_ident(schema);
        let columns = if check_hashes {
            "position, stream_id, stream_type, stream_version, event_id, name, \
             schema_version, payload, occurred_at, metadata, tags, hash, predecessor, signature"
        } else {
            "position, stream_id, stream_type, stream_version, event_id, name, \
             schema_version, payload, occurred_at, metadata, tags"
        };
        Self {
            schema: schema.to_owned(),
            check_hashes,
            verify_page: format!(
                "SELECT position, stream_id, stream_type, stream_version, event_id, name, \
                        schema_version, payload::text, metadata::text, occurred_at, hash, \
                        predecessor, tags \
                 FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            // Leaves only up to a settled position ($2): a checkpoint's tree must never
            // miss an event that commits later at a lower position.
            leaves: format!(
                "SELECT position, hash, name, signature FROM {s}.events \
                 WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
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
                 FROM {s}.factum_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            append_one: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_append_one($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            append_command: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type, \
                        o_first_position \
                 FROM {s}.factum_append_command($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                                                $12, $13)"
            ),
            decide: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type \
                 FROM {s}.factum_decide($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                                        $13, $14, $15, $16, $17, $18, $19, $20)"
            ),
            decide_command: format!(
                "SELECT o_status, o_stream_version, o_last_position, o_event_id, o_existing_type, \
                        o_first_position \
                 FROM {s}.factum_decide_command($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                                                $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                                                $21, $22)"
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
            // Up to a settled position ($2), which followers may read without skipping.
            read_all: format!(
                "SELECT {columns} FROM {s}.events WHERE position > $1 AND position <= $2 \
                 ORDER BY position LIMIT $3"
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
            read_filtered: format!(
                "SELECT {columns} FROM {s}.events \
                 WHERE position > $1 AND position <= $2 AND name = ANY($3) \
                 ORDER BY position LIMIT $4"
            ),
            head: format!("SELECT position, occurred_at FROM {s}.events WHERE position = $1"),
            settled_head: format!("SELECT {s}.factum_settled_head()"),
            read_matching: format!(
                "SELECT {}, r.o_read_to, r.o_settled \
                 FROM {s}.factum_read_matching($1, $2, $3, $4, $5, $6) r",
                [
                    "position",
                    "stream_id",
                    "stream_type",
                    "stream_version",
                    "event_id",
                    "name",
                    "schema_version",
                    "payload",
                    "occurred_at",
                    "metadata",
                    "tags",
                    "hash",
                    "predecessor",
                    "signature",
                ]
                .map(|column| format!("(r.o_event).{column}"))
                .join(", ")
            ),
            newest: format!(
                "SELECT {s}.factum_settled_head(), (SELECT max(position) FROM {s}.events)"
            ),
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
                channel(&config.schema),
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
            .query_one(batch.sql(&self.sql), &batch.params(true))
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

    /// The newest settled position (0: none), asked of the database: every read of the
    /// log asks first, then reads up to it (one more round trip, so that a read after an
    /// append sees it). The notifier keeps the newest one known, and waiting followers
    /// wake when it rises.
    pub(super) async fn refresh_settled(&self) -> Result<u64, StoreError> {
        let rows = self.query(&self.sql.settled_head, &[]).await?;
        let settled: Option<i64> = match rows.first() {
            Some(row) => row
                .try_get(0)
                .map_err(|error| corrupt("", 0, format_args!("settled position: {error}")))?,
            None => None,
        };
        let settled = settled
            .and_then(|settled| u64::try_from(settled).ok())
            .unwrap_or(0);
        self.notifier.raise(settled);
        Ok(self.notifier.settled().max(settled))
    }

    /// Tells waiting followers of a settled head found by a read of its own.
    pub(super) fn raise_settled(&self, settled: u64) {
        self.notifier.raise(settled);
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
    pub(super) fn decode(
        &self,
        row: &Row,
        hash_column: usize,
    ) -> Result<RecordedEvent, StoreError> {
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
    /// transaction (the append is its first statement, so it runs concurrently; the
    /// stream's lock holds other appends to the stream back until the commit): a critical
    /// event is never stored without its signature, and is unsettled until then.
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

    pub(super) async fn query(
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
    /// `outcome`, announced to followers if it wrote: a concurrent append's transaction
    /// does not notify (see the type's documentation).
    fn announced(
        &self,
        outcome: Result<AppendOutcome, StoreError>,
    ) -> Result<AppendOutcome, StoreError> {
        if let Ok(AppendOutcome {
            written: true,
            last_position,
            ..
        }) = outcome
        {
            self.notifier.announce(last_position);
        }
        outcome
    }

    /// A command's append, announced to followers if it wrote events.
    fn announced_command(&self, outcome: CommandOutcome) -> CommandAppend {
        if let Some(last) = outcome.last_position {
            self.notifier.announce(last);
        }
        CommandAppend::Appended(outcome)
    }

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
    pub(super) async fn append_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: Option<&AppendCondition>,
    ) -> Result<AppendOutcome, StoreError> {
        let batch = Batch::new(stream_id, stream_type, expected, &events)?.under(condition);
        if let Some(signer) = self.signer_for(&events) {
            let row = self
                .append_signed(
                    batch.sql(&self.sql),
                    &batch.params(false),
                    &batch,
                    expected,
                    signer,
                )
                .await?;
            return self.announced(batch.outcome(expected, &row));
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(batch.sql(&self.sql))
            .await
            .map_err(backend)?;
        let params = batch.params(false);
        let mut attempt = 1;
        loop {
            match client.query_one(&statement, &params).await {
                Ok(row) => return self.announced(batch.outcome(expected, &row)),
                // A concurrent append of the same event id to another stream (or a writer
                // bypassing the functions) causes this; run again, so the
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
        self.append_command_under(stream_id, stream_type, expected, events, command, None)
            .await
    }

    /// A command's append, under a decision's `condition` when one is given.
    pub(super) async fn append_command_under(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
        condition: Option<&AppendCondition>,
    ) -> Result<CommandAppend, StoreError> {
        let batch = Batch::of_command(stream_id, stream_type, expected, &events, &command)?
            .under(condition);
        if let Some(signer) = self.signer_for(&events) {
            let row = self
                .append_signed(
                    batch.command_sql(&self.sql),
                    &batch.command_params(&command),
                    &batch,
                    expected,
                    signer,
                )
                .await?;
            if let Some(outcome) = batch.command_outcome(expected, &row, &command)? {
                return Ok(self.announced_command(outcome));
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
            .prepare_cached(batch.command_sql(&self.sql))
            .await
            .map_err(backend)?;
        let params = batch.command_params(&command);
        let mut attempt = 1;
        loop {
            let row = match client.query_one(&statement, &params).await {
                Ok(row) => row,
                // A concurrent append of the same event id to another stream (or a writer
                // bypassing the functions) causes this; run again, so that the
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
                return Ok(self.announced_command(outcome));
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
                let event = self.decode(row, HASH_COLUMN)?;
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
        let settled = self.refresh_settled().await?;
        if settled <= after {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &self.sql.read_all,
                &[&to_i64(after), &to_i64(settled), &limit],
            )
            .await?;
        rows.iter()
            .map(|row| self.decode(row, HASH_COLUMN))
            .collect()
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
                self.fill(row, HASH_COLUMN, &mut record)
                    .map_err(VisitError::Store)?;
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
        let settled = self.refresh_settled().await?;
        if settled <= after {
            return Ok(FilteredPage {
                events: Vec::new(),
                scanned_to: after,
            });
        }
        let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &self.sql.read_filtered,
                &[&to_i64(after), &to_i64(settled), &names, &limit_sql],
            )
            .await?;
        let events = rows
            .iter()
            .map(|row| self.decode(row, HASH_COLUMN))
            .collect::<Result<Vec<_>, _>>()?;
        // Every match up to the settled position is in a page that is not full.
        let scanned_to = match events.last() {
            Some(last) if events.len() == limit => last.position,
            _ => settled,
        };
        Ok(FilteredPage { events, scanned_to })
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        let settled = self.refresh_settled().await?;
        if settled == 0 {
            return Ok(None);
        }
        let rows = self.query(&self.sql.head, &[&to_i64(settled)]).await?;
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
                let newest = self.refresh_settled().await?;
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
