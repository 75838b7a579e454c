//! The schema and its migrations.
//!
//! Every schema change is a new [`Migration`] at the end of [`MIGRATIONS`], never an
//! edit of an applied one. Opening a store applies the migrations its file lacks, in
//! order, inside one write transaction, and records each in `factum_schema_version`; a
//! file that records a version newer than [`LATEST`] was written by a newer factum and
//! is refused untouched.
//!
//! A database is migrated only if it is a factum store or holds nothing at all: one that
//! holds other tables but no `factum_schema_version` belongs to another program, and one
//! whose recorded version lacks a table that version has is damaged. Both are refused
//! ([`SqliteOpenError::NotAStore`]), [`check`]ed before the file is switched to WAL and
//! again inside the migration's write transaction.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::SqliteOpenError;
use super::connection::{Failure, WriteTransaction, retry_busy};
use crate::store::StoreError;

/// One step of the schema.
pub(super) struct Migration {
    /// The schema version this step produces; steps are numbered 1, 2, 3 ...
    pub(super) version: u32,
    /// What the step does, recorded with it.
    pub(super) description: &'static str,
    /// The statements.
    pub(super) sql: &'static str,
    /// Every table of the schema at this version (besides `factum_schema_version`): a file
    /// that records this version and lacks one of them is refused.
    pub(super) tables: &'static [&'static str],
}

/// Every migration, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[Migration {
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
}];

/// The newest schema version.
pub(super) const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const _: () = {
    // The migrations are numbered 1, 2, 3 ... without gaps.
    let mut index = 0;
    while index < MIGRATIONS.len() {
        assert!(MIGRATIONS[index].version as usize == index + 1);
        index += 1;
    }
};

/// The name of the table that records the applied migrations.
const VERSION_TABLE: &str = "factum_schema_version";

/// Checks, reading only, that the database is a factum store or holds nothing at all,
/// before anything is written to it (not even the switch to WAL).
pub(super) fn check(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    retry_busy(patience, || {
        inspect(connection, path).map_err(Failure::from)
    })
    .map_err(|failure| failed(path, failure))?
    .map(|_| ())
}

/// Brings the file's schema up to [`LATEST`], or refuses a newer one, a database of
/// another program, or a store that lacks a table of its version.
pub(super) fn migrate(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    // Several processes may open a new file at once: the write lock makes one of them
    // create the schema and the others find it created.
    let transaction =
        WriteTransaction::begin(connection, patience).map_err(|error| failed(path, error))?;
    let sqlite = |error: rusqlite::Error| failed(path, error.into());
    let current = inspect(connection, path).map_err(sqlite)??;
    if current == 0 {
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS factum_schema_version (
                    version     INTEGER PRIMARY KEY,
                    description TEXT    NOT NULL,
                    applied_at  TEXT    NOT NULL
                )",
            )
            .map_err(sqlite)?;
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version > current)
    {
        connection
            .execute_batch(migration.sql)
            .and_then(|()| {
                connection.execute(
                    "INSERT INTO factum_schema_version (version, description, applied_at)
                     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    params![migration.version, migration.description],
                )
            })
            .map_err(sqlite)?;
    }
    transaction.commit().map_err(|error| failed(path, error))
}

/// What the database holds: `Ok(Ok(version))` for a factum store at `version`, or
/// `Ok(Ok(0))` for a database with nothing in it (or only an empty version table);
/// `Ok(Err(..))` for a database that is refused; `Err` if SQLite failed.
fn inspect(connection: &Connection, path: &Path) -> rusqlite::Result<Result<u32, SqliteOpenError>> {
    let not_a_store = |reason: String| {
        Ok(Err(SqliteOpenError::NotAStore {
            path: path.to_path_buf(),
            reason,
        }))
    };
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
    let others: Vec<&str> = objects
        .iter()
        .map(|(_, name)| name.as_str())
        .filter(|name| *name != VERSION_TABLE)
        .collect();
    if !is_table(VERSION_TABLE) {
        if others.is_empty() {
            return Ok(Ok(0));
        }
        return not_a_store(format!(
            "a SQLite database without factum's schema table `{VERSION_TABLE}`; it holds {} \
             (it was not changed)",
            listed(&others)
        ));
    }
    let current: i64 = connection.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM factum_schema_version",
        [],
        |row| row.get(0),
    )?;
    if current > i64::from(LATEST) {
        return Ok(Err(SqliteOpenError::SchemaTooNew {
            path: path.to_path_buf(),
            found: u32::try_from(current).unwrap_or(u32::MAX),
            supported: LATEST,
        }));
    }
    let Some(current) = u32::try_from(current).ok().filter(|version| *version > 0) else {
        if others.is_empty() {
            return Ok(Ok(0));
        }
        return not_a_store(format!(
            "factum's schema table `{VERSION_TABLE}` records no version, but the database \
             holds {} (it was not changed)",
            listed(&others)
        ));
    };
    let promised = MIGRATIONS[current as usize - 1].tables;
    let missing: Vec<&str> = promised
        .iter()
        .copied()
        .filter(|table| !is_table(table))
        .collect();
    match missing.as_slice() {
        [] => Ok(Ok(current)),
        [table] => not_a_store(format!(
            "its schema is at version {current}, but the table `{table}` of that version is \
             missing"
        )),
        tables => not_a_store(format!(
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

/// A failed step of opening, as an open error.
fn failed(path: &Path, failure: Failure) -> SqliteOpenError {
    match failure {
        Failure::Sqlite(error) => SqliteOpenError::Sqlite {
            path: path.to_path_buf(),
            source: Box::new(error),
        },
        other => SqliteOpenError::Sqlite {
            path: path.to_path_buf(),
            source: Box::new(StoreError::from(other)),
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
        for migration in super::MIGRATIONS {
            insta::assert_snapshot!(
                format!("sqlite_migration_{}", migration.version),
                migration.sql,
                migration.description
            );
            insta::assert_debug_snapshot!(
                format!("sqlite_migration_{}_tables", migration.version),
                migration.tables
            );
        }
    }
}
