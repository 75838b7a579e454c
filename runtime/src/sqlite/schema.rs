//! The schemas factum keeps in SQLite files, their migrations, and the one runner that
//! applies them.
//!
//! Five schemas: the event store ([`STORE`]), the read-model catalog
//! ([`READ_MODEL_CATALOG`], `catalog.sqlite3`), the factum tables of each read-model
//! version's file ([`READ_MODEL`], beside the projection's own tables), a process
//! manager's tables ([`PROCESS_STORE`]) and the subject keys of crypto-shredding
//! ([`KEY_STORE`], in a store's file, made when a key store first opens it). Every schema
//! change is a new [`Migration`] at the end of its list, never an edit of an applied one
//! (a test pins the text of each). Opening a file applies the migrations it lacks, in
//! order, inside one write transaction (`BEGIN IMMEDIATE`, so processes opening the same
//! file at once migrate it once), and records each in the schema's version table; a file
//! that records a version newer than the code knows was written by a newer factum and is
//! refused untouched ([`SchemaError::TooNew`]).
//!
//! Each schema has a version table of its own (`factum_schema_version`,
//! `factum_catalog_version`, `factum_read_model_version`, all of one layout): its name
//! says which schema the file holds, so a file of one kind is never migrated as another.
//! A file holding another schema's version table is refused. The store's table keeps the
//! name it was released with, and one table per schema needs no column the released one
//! lacks.
//!
//! A database holding tables but no version table is refused by the store (another
//! program's database) but adopted by the read-model schemas: their first migration is
//! the DDL that factum ran before read models were versioned (`CREATE .. IF NOT
//! EXISTS`), so a catalog or version file made then is recorded at version 1 with its
//! data, and a version file holds the projection's own tables anyway. A file whose
//! recorded version lacks a table of that version is damaged, and refused.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::store::SqliteOpenError;
use super::store::connection::{Failure, WriteTransaction, retry_busy};

/// One step of a schema.
pub(crate) struct Migration {
    /// The schema version this step produces; steps are numbered 1, 2, 3 ...
    pub(crate) version: u32,
    /// What the step does, recorded with it.
    pub(crate) description: &'static str,
    /// The statements.
    pub(crate) sql: &'static str,
    /// Every table of the schema at this version (besides its version table): a file
    /// that records this version and lacks one of them is refused.
    pub(crate) tables: &'static [&'static str],
    /// Work in Rust after the statements, in their transaction (filling a new column
    /// from the rows already stored).
    pub(crate) then: Option<RustStep>,
}

/// A migration's step in Rust, run after its statements in their transaction.
pub(crate) type RustStep = fn(&Connection) -> Result<(), Failure>;

/// A schema of factum's in a SQLite file: its migrations and where they are recorded.
pub(crate) struct Schema {
    /// What a file of this schema is, in messages ("store", "read-model catalog").
    pub(crate) kind: &'static str,
    /// The table recording the applied migrations; its name tells the schema apart.
    pub(crate) version_table: &'static str,
    /// Every migration, oldest first, numbered 1, 2, 3 ...
    pub(crate) migrations: &'static [Migration],
    /// Whether a database holding tables but no version table is refused (the store:
    /// another program's) or adopted (read models: a file made before they were
    /// versioned, whose tables the first migration creates only if they are missing).
    pub(crate) adopts_unversioned: bool,
    /// The version tables of the schemas that may share a file with this one (a process
    /// manager's file holds its read-model tables and its process tables).
    pub(crate) shares_file_with: &'static [&'static str],
}

impl Schema {
    /// The newest version of the schema.
    pub(crate) const fn latest(&self) -> u32 {
        self.migrations[self.migrations.len() - 1].version
    }

    /// Panics (at compile time, in a `const`) unless the migrations are numbered 1, 2,
    /// 3 ... without gaps.
    const fn checked(self) -> Self {
        let mut index = 0;
        while index < self.migrations.len() {
            assert!(self.migrations[index].version as usize == index + 1);
            index += 1;
        }
        self
    }
}

/// The event store.
pub(crate) const STORE: Schema = Schema {
    kind: "store",
    version_table: "factum_schema_version",
    migrations: MIGRATIONS,
    adopts_unversioned: false,
    shares_file_with: &["factum_keys_version"],
}
.checked();

/// Every migration of the event store, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "streams, events and snapshots",
        sql: "
        CREATE TABLE streams (
            stream_key  INTEGER PRIMARY KEY,
            stream_id   TEXT    NOT NULL UNIQUE,
            stream_type TEXT    NOT NULL,
            version     INTEGER NOT NULL CHECK (version >= 0)
        );
        CREATE TABLE events (
            position       INTEGER PRIMARY KEY AUTOINCREMENT,
            stream_key     INTEGER NOT NULL REFERENCES streams (stream_key),
            stream_version INTEGER NOT NULL CHECK (stream_version >= 1),
            event_id       BLOB    NOT NULL UNIQUE,
            name           TEXT    NOT NULL,
            schema_version INTEGER NOT NULL,
            payload        TEXT    NOT NULL,
            metadata       TEXT,
            timestamp_s    INTEGER NOT NULL,
            timestamp_ns   INTEGER NOT NULL,
            UNIQUE (stream_key, stream_version)
        );
        CREATE TABLE snapshots (
            stream_id      TEXT    PRIMARY KEY,
            stream_version INTEGER NOT NULL,
            schema_version INTEGER NOT NULL,
            state          TEXT    NOT NULL,
            taken_at_s     INTEGER NOT NULL,
            taken_at_ns    INTEGER NOT NULL
        );
    ",
        tables: &["streams", "events", "snapshots"],
        then: None,
    },
    Migration {
        version: 2,
        description: "commands recorded once",
        // One row per recorded command, written in the transaction of its events. Ids are
        // 16-byte blobs like event ids, times whole seconds and nanoseconds like event
        // timestamps; `event_ids` is the command's event ids, 16 bytes each, in order.
        sql: "
        CREATE TABLE commands (
            command_id     BLOB    PRIMARY KEY,
            fingerprint    TEXT    NOT NULL,
            recorded_at_s  INTEGER NOT NULL,
            recorded_at_ns INTEGER NOT NULL,
            stream_id      TEXT    NOT NULL,
            stream_version INTEGER NOT NULL CHECK (stream_version >= 0),
            first_position INTEGER,
            last_position  INTEGER,
            event_ids      BLOB    NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX commands_recorded_at ON commands (recorded_at_s, recorded_at_ns);
    ",
        tables: &["streams", "events", "snapshots", "commands"],
        then: None,
    },
    Migration {
        version: 3,
        description: "events chained by hash",
        // Each event's SHA-256 over its stored bytes and its predecessor's hash (see
        // `factum::integrity::chain`); the rows stored before are hashed in Rust after
        // the columns are added.
        sql: "
        ALTER TABLE events ADD COLUMN hash BLOB;
        ALTER TABLE events ADD COLUMN predecessor BLOB;
    ",
        tables: &["streams", "events", "snapshots", "commands"],
        then: Some(super::store::integrity_backfill),
    },
    Migration {
        version: 4,
        description: "signed checkpoints",
        // Each signed tree head as its JSON (`factum::integrity::checkpoint`), by size.
        sql: "
        CREATE TABLE checkpoints (
            tree_size INTEGER PRIMARY KEY CHECK (tree_size >= 0),
            head      TEXT    NOT NULL
        );
    ",
        tables: &["streams", "events", "snapshots", "commands", "checkpoints"],
        then: None,
    },
    Migration {
        version: 5,
        description: "signatures of critical events",
        // The service's Ed25519 signature of the event's hash, for the events declared
        // `signed` (`factum::integrity::signing`); NULL for the others.
        sql: "
        ALTER TABLE events ADD COLUMN signature BLOB;
    ",
        tables: &["streams", "events", "snapshots", "commands", "checkpoints"],
        then: None,
    },
    Migration {
        version: 6,
        description: "archives",
        // One row per archive file the bodies of old events moved to (`factum::archive`):
        // the range it holds, the file as given, its SHA-256, when. The events it holds
        // keep their rows with an empty payload and no metadata.
        sql: "
        CREATE TABLE archives (
            upto        INTEGER PRIMARY KEY CHECK (upto >= 1),
            after       INTEGER NOT NULL CHECK (after >= 0 AND after < upto),
            file        TEXT    NOT NULL,
            digest      BLOB    NOT NULL,
            events      INTEGER NOT NULL,
            archived_at TEXT    NOT NULL
        );
    ",
        tables: &[
            "streams",
            "events",
            "snapshots",
            "commands",
            "checkpoints",
            "archives",
        ],
        then: None,
    },
    Migration {
        version: 7,
        description: "tags",
        // An event's tags as the JSON array of its sorted, distinct `key:value` texts
        // (`factum::tag`), NULL when it has none; and one row per tag and event, the index
        // a decision's query and condition look events up by (see
        // `factum::store::decision`). Events stored before have no tags.
        sql: "
        ALTER TABLE events ADD COLUMN tags TEXT;
        CREATE TABLE event_tags (
            tag      TEXT    NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (tag, position)
        ) WITHOUT ROWID;
    ",
        tables: &[
            "streams",
            "events",
            "snapshots",
            "commands",
            "checkpoints",
            "archives",
            "event_tags",
        ],
        then: None,
    },
];

/// The newest schema version of the store.
pub(super) const LATEST: u32 = STORE.latest();

/// The read-model catalog (`catalog.sqlite3`): which versions of each projection exist,
/// and which is active.
pub(crate) const READ_MODEL_CATALOG: Schema = Schema {
    kind: "read-model catalog",
    version_table: "factum_catalog_version",
    migrations: &[Migration {
        version: 1,
        // Adopts a catalog made before it was versioned: the DDL factum ran then.
        description: "the versions table",
        sql: "
            CREATE TABLE IF NOT EXISTS versions (
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('building', 'active', 'retired')),
                PRIMARY KEY (name, version)
            );
        ",
        tables: &["versions"],
        then: None,
    }],
    adopts_unversioned: true,
    shares_file_with: &[],
}
.checked();

/// factum's tables in the file of one projection version, beside the projection's own:
/// the checkpoint, the dead letters and the partition offsets, written in the same
/// transactions as its rows.
pub(crate) const READ_MODEL: Schema = Schema {
    kind: "read-model version",
    version_table: "factum_read_model_version",
    migrations: &[
        Migration {
            version: 1,
            // Adopts a file made before it was versioned: the DDL factum ran then.
            description: "checkpoint and dead-letter tables",
            sql: "
            CREATE TABLE IF NOT EXISTS factum_checkpoint (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                position INTEGER NOT NULL,
                updated_at TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS factum_parked (
                position INTEGER PRIMARY KEY,
                event TEXT NOT NULL,
                error TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                parked_at TEXT NOT NULL
            );
        ",
            tables: &["factum_checkpoint", "factum_parked"],
            then: None,
        },
        Migration {
            version: 2,
            // A projection fed from Kafka keeps where it stands in each partition, in the
            // transactions of its rows.
            description: "partition offsets",
            sql: "
            CREATE TABLE factum_partitions (
                topic TEXT NOT NULL,
                partition INTEGER NOT NULL,
                next_offset INTEGER NOT NULL,
                position INTEGER NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (topic, partition)
            );
        ",
            tables: &["factum_checkpoint", "factum_parked", "factum_partitions"],
            then: None,
        },
    ],
    adopts_unversioned: true,
    shares_file_with: &["factum_process_version"],
}
.checked();

/// A process manager's instances and outbox, in the file of its read model (`<NAME>.v0`)
/// beside the read-model tables, written in the same transactions as its checkpoint.
pub(crate) const PROCESS_STORE: Schema = Schema {
    kind: "process store",
    version_table: "factum_process_version",
    migrations: &[
        Migration {
            version: 1,
            // Adopts a file made before the process store was versioned, when every
            // transaction ran this DDL.
            description: "process instances and outbox",
            sql: "
            CREATE TABLE IF NOT EXISTS factum_process_instances (
                instance TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                state TEXT NOT NULL,
                correlation_id TEXT NOT NULL,
                compensations TEXT NOT NULL,
                completing INTEGER NOT NULL,
                failure TEXT,
                started_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS factum_process_outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                instance TEXT NOT NULL,
                kind TEXT NOT NULL,
                command TEXT NOT NULL,
                compensation TEXT,
                command_id TEXT NOT NULL UNIQUE,
                correlation_id TEXT NOT NULL,
                causation_id TEXT NOT NULL,
                state TEXT NOT NULL,
                outcome TEXT,
                position INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS factum_process_outbox_pending
                ON factum_process_outbox (state, instance, seq);
        ",
            tables: &["factum_process_instances", "factum_process_outbox"],
            then: None,
        },
        Migration {
            version: 2,
            // The W3C trace context of the event each command was decided on: a dispatch
            // after a crash continues that trace.
            description: "trace context of outbox commands",
            sql: "
            ALTER TABLE factum_process_outbox ADD COLUMN traceparent TEXT;
        ",
            tables: &["factum_process_instances", "factum_process_outbox"],
            then: None,
        },
    ],
    adopts_unversioned: true,
    shares_file_with: &["factum_read_model_version"],
}
.checked();

/// Every schema: a file holding the version table of one is never opened as another
/// (unless the two share files).
const SCHEMAS: [&Schema; 5] = [
    &STORE,
    &READ_MODEL_CATALOG,
    &READ_MODEL,
    &PROCESS_STORE,
    &KEY_STORE,
];

/// The subject keys of crypto-shredding (`factum::personal`, feature `personal`), in
/// the file of a store beside its tables: made when a `SqliteKeyStore` first opens the
/// file, so a store that does not use them is unchanged. A schema of its own, so it
/// never takes a number in the store's migrations.
pub(crate) const KEY_STORE: Schema = Schema {
    kind: "key store",
    version_table: "factum_keys_version",
    migrations: &[Migration {
        version: 1,
        description: "subject keys",
        // One row per data subject: its data key wrapped by the application's master
        // key, or, once forgotten, no key and who forgot the subject when. Times are
        // RFC 3339 text in UTC with microseconds.
        sql: "
            CREATE TABLE subject_keys (
                subject      TEXT PRIMARY KEY,
                wrapped_key  BLOB,
                created_at   TEXT NOT NULL,
                forgotten_at TEXT,
                forgotten_by TEXT,
                CHECK ((wrapped_key IS NULL) = (forgotten_at IS NOT NULL)),
                CHECK ((forgotten_at IS NULL) = (forgotten_by IS NULL))
            );
        ",
        tables: &["subject_keys"],
        then: None,
    }],
    // The store's file holds the store's tables and no key version table yet: the key
    // store opens only files the store has checked.
    adopts_unversioned: true,
    shares_file_with: &["factum_schema_version"],
}
.checked();

/// Why a file's schema cannot be used.
#[derive(Debug)]
pub(crate) enum SchemaError {
    /// The file records a version of the schema newer than this code knows.
    TooNew {
        /// The version the file records.
        found: u32,
        /// The newest version this code knows.
        supported: u32,
    },
    /// The file is not a database of this schema (another program's, another schema's,
    /// or missing a table of its version); the reason says which. It was not changed.
    Refused(String),
    /// SQLite failed.
    Failed(Failure),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// Checks, reading only, that the database holds `schema` (at a version this code knows)
/// or nothing at all, before anything is written to it (not even the switch to WAL), and
/// returns the version it records (0: none yet).
pub(crate) fn check_schema(
    connection: &Connection,
    schema: &Schema,
    patience: Duration,
) -> Result<u32, SchemaError> {
    retry_busy(patience, || {
        inspect(connection, schema).map_err(Failure::from)
    })
    .map_err(SchemaError::Failed)?
}

/// Brings the database's `schema` up to its newest version, or refuses a newer one or a
/// database that does not hold it (see [`SchemaError`]).
///
/// A database already at the newest version is only read: no write lock is taken, so
/// opening a file beside a long write transaction does not wait for it.
pub(crate) fn migrate_schema(
    connection: &Connection,
    schema: &Schema,
    patience: Duration,
) -> Result<(), SchemaError> {
    if check_schema(connection, schema, patience)? == schema.latest() {
        return Ok(());
    }
    // Several processes may open a new file at once: the write lock makes one of them
    // create the schema and the others find it created.
    let transaction = WriteTransaction::begin(connection, patience).map_err(SchemaError::Failed)?;
    let current = inspect(connection, schema)??;
    if current == 0 {
        connection.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                    version     INTEGER PRIMARY KEY,
                    description TEXT    NOT NULL,
                    applied_at  TEXT    NOT NULL
                )",
            schema.version_table
        ))?;
    }
    let record = format!(
        "INSERT INTO {} (version, description, applied_at)
                     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        schema.version_table
    );
    for migration in schema
        .migrations
        .iter()
        .filter(|migration| migration.version > current)
    {
        connection.execute_batch(migration.sql)?;
        if let Some(then) = migration.then {
            then(connection).map_err(SchemaError::Failed)?;
        }
        connection.execute(&record, params![migration.version, migration.description])?;
    }
    transaction.commit().map_err(SchemaError::Failed)
}

/// Checks, reading only, that the database is a factum store or holds nothing at all,
/// before anything is written to it (not even the switch to WAL).
pub(super) fn check(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    check_schema(connection, &STORE, patience)
        .map(|_| ())
        .map_err(|error| store_error(path, error))
}

/// Brings the file's store schema up to [`LATEST`], or refuses a newer one, a database
/// of another program, or a store that lacks a table of its version.
pub(super) fn migrate(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    migrate_schema(connection, &STORE, patience).map_err(|error| store_error(path, error))
}

/// What the database holds: `Ok(Ok(version))` for a database of `schema` at `version`,
/// or `Ok(Ok(0))` for one with nothing in it (or only an empty version table, or, for a
/// schema that adopts them, tables but no version table); `Ok(Err(..))` for a database
/// that is refused; `Err` if SQLite failed.
fn inspect(connection: &Connection, schema: &Schema) -> rusqlite::Result<Result<u32, SchemaError>> {
    let refused = |reason: String| Ok(Err(SchemaError::Refused(reason)));
    let version_table = schema.version_table;
    // Tables, indexes, views and triggers, but not SQLite's own (`sqlite_sequence`, the
    // automatic indexes).
    let objects: Vec<(String, String)> = connection
        .prepare_cached(
            "SELECT type, name FROM sqlite_master
             WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!'
             ORDER BY type = 'table' DESC, name",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let is_table = |name: &str| {
        objects
            .iter()
            .any(|(kind, object)| kind == "table" && object == name)
    };
    if let Some(other) = SCHEMAS.iter().find(|other| {
        other.version_table != version_table
            && !schema.shares_file_with.contains(&other.version_table)
            && is_table(other.version_table)
    }) {
        return refused(format!(
            "it is a factum {} (it holds `{}`), not a {}",
            other.kind, other.version_table, schema.kind
        ));
    }
    let others: Vec<&str> = objects
        .iter()
        .map(|(_, name)| name.as_str())
        .filter(|name| *name != version_table)
        .collect();
    if !is_table(version_table) {
        if others.is_empty() || schema.adopts_unversioned {
            return Ok(Ok(0));
        }
        return refused(format!(
            "a SQLite database without factum's schema table `{version_table}`; it holds {} \
             (it was not changed)",
            listed(&others)
        ));
    }
    let current: i64 = connection
        .prepare_cached(&format!(
            "SELECT COALESCE(MAX(version), 0) FROM {version_table}"
        ))?
        .query_row([], |row| row.get(0))?;
    let latest = schema.latest();
    if current > i64::from(latest) {
        return Ok(Err(SchemaError::TooNew {
            found: u32::try_from(current).unwrap_or(u32::MAX),
            supported: latest,
        }));
    }
    let Some(current) = u32::try_from(current).ok().filter(|version| *version > 0) else {
        if others.is_empty() || schema.adopts_unversioned {
            return Ok(Ok(0));
        }
        return refused(format!(
            "factum's schema table `{version_table}` records no version, but the database \
             holds {} (it was not changed)",
            listed(&others)
        ));
    };
    let promised = schema.migrations[current as usize - 1].tables;
    let missing: Vec<&str> = promised
        .iter()
        .copied()
        .filter(|table| !is_table(table))
        .collect();
    match missing.as_slice() {
        [] => Ok(Ok(current)),
        [table] => refused(format!(
            "its schema is at version {current}, but the table `{table}` of that version is \
             missing"
        )),
        tables => refused(format!(
            "its schema is at version {current}, but the tables {} of that version are missing",
            listed(tables)
        )),
    }
}

/// Names, quoted: "`a`", "`a` and `b`", "`a`, `b`, `c` and 2 more".
fn listed(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let quoted: Vec<String> = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("`{name}`"))
        .collect();
    match (quoted.as_slice(), names.len().saturating_sub(SHOWN)) {
        ([one], _) => one.clone(),
        ([rest @ .., last], 0) => format!("{} and {last}", rest.join(", ")),
        (shown, more) => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Brings the key schema of the store file at `path` up to its newest version (see
/// [`KEY_STORE`]).
pub(super) fn migrate_keys(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    migrate_schema(connection, &KEY_STORE, patience).map_err(|error| store_error(path, error))
}

/// A schema error of the store, as an open error.
fn store_error(path: &Path, error: SchemaError) -> SqliteOpenError {
    match error {
        SchemaError::TooNew { found, supported } => SqliteOpenError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        },
        SchemaError::Refused(reason) => SqliteOpenError::NotAStore {
            path: path.to_path_buf(),
            reason,
        },
        SchemaError::Failed(failure) => SqliteOpenError::Sqlite {
            path: path.to_path_buf(),
            source: failure.into_source(),
        },
    }
}

#[cfg(test)]
mod tests {
    /// Every released migration's text: a migration is only ever added, never edited (an
    /// edit would change what existing files ran, not what they hold). Editing one fails
    /// here; a new one adds a snapshot.
    #[test]
    fn released_migrations_are_frozen() {
        pin("sqlite", super::MIGRATIONS);
    }

    /// The read models' migrations, frozen as the store's are.
    #[test]
    fn released_read_model_migrations_are_frozen() {
        pin("sqlite_catalog", super::READ_MODEL_CATALOG.migrations);
        pin("sqlite_read_model", super::READ_MODEL.migrations);
        pin("sqlite_process_store", super::PROCESS_STORE.migrations);
        pin("sqlite_key_store", super::KEY_STORE.migrations);
    }

    /// Pins each migration's text and tables as the snapshots `{prefix}_migration_{version}`
    /// and `{prefix}_migration_{version}_tables`.
    fn pin(prefix: &str, migrations: &[super::Migration]) {
        for migration in migrations {
            insta::assert_snapshot!(
                format!("{prefix}_migration_{}", migration.version),
                migration.sql,
                migration.description
            );
            insta::assert_debug_snapshot!(
                format!("{prefix}_migration_{}_tables", migration.version),
                migration.tables
            );
        }
    }
}
