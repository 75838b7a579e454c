//! The schema and its migrations.
//!
//! Every schema change is a new [`Migration`] at the end of [`MIGRATIONS`], never an
//! edit of an applied one. Opening a store applies the migrations its file lacks, in
//! order, inside one write transaction, and records each in `factum_schema_version`; a
//! file that records a version newer than [`LATEST`] was written by a newer factum and
//! is refused untouched.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::SqliteOpenError;
use super::connection::{Failure, WriteTransaction};
use crate::store::StoreError;

/// One step of the schema.
pub(super) struct Migration {
    /// The schema version this step produces; steps are numbered 1, 2, 3 ...
    pub(super) version: u32,
    /// What the step does, recorded with it.
    pub(super) description: &'static str,
    /// The statements.
    pub(super) sql: &'static str,
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

/// Brings the file's schema up to [`LATEST`], or refuses a newer one.
pub(super) fn migrate(
    connection: &Connection,
    path: &Path,
    patience: Duration,
) -> Result<(), SqliteOpenError> {
    let failed = |failure: Failure| match failure {
        Failure::Sqlite(error) => SqliteOpenError::Sqlite {
            path: path.to_path_buf(),
            source: Box::new(error),
        },
        other => SqliteOpenError::Sqlite {
            path: path.to_path_buf(),
            source: Box::new(StoreError::from(other)),
        },
    };
    // Several processes may open a new file at once: the write lock makes one of them
    // create the schema and the others find it created.
    let transaction = WriteTransaction::begin(connection, patience).map_err(failed)?;
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS factum_schema_version (
                version     INTEGER PRIMARY KEY,
                description TEXT    NOT NULL,
                applied_at  TEXT    NOT NULL
            )",
        )
        .map_err(|error| failed(error.into()))?;
    let current: i64 = connection
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM factum_schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(|error| failed(error.into()))?;
    if current > i64::from(LATEST) {
        return Err(SqliteOpenError::SchemaTooNew {
            path: path.to_path_buf(),
            found: u32::try_from(current).unwrap_or(u32::MAX),
            supported: LATEST,
        });
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| i64::from(migration.version) > current)
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
            .map_err(|error| failed(error.into()))?;
    }
    transaction.commit().map_err(failed)
}
