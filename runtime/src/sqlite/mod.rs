//! The SQLite backend, the embedded default (feature `sqlite`; SQLite is bundled): the
//! event store, the read models (one file per projection version, a catalog beside
//! them), the process store, their schemas and migrations, all in this folder.
//!
//! Everything a user names is re-exported here and, for code written before the backends
//! had a home each, where it used to live: [`SqliteStore`] also in [`crate::store`],
//! [`SqliteReadModel`] and [`SqliteTx`] also in `factum::projection::sqlite`.

mod consistency;
mod file;
mod keys;
mod process;
mod read_model;
mod schema;
mod store;

/// Re-exported: the driver a read-model handler writes through ([`SqliteTx`] dereferences
/// to its connection, inside the runner's transaction) and a query reads with.
pub use rusqlite;

pub use keys::SqliteKeyStore;
pub use read_model::{SqliteReadModel, SqliteTx};
pub use store::{SqliteOpenError, SqliteOptions, SqliteStore, Synchronous};

/// Runs `work` with `PRAGMA secure_delete = ON` (the connection's own setting restored
/// after), then `PRAGMA wal_checkpoint(TRUNCATE)`; returns what `work` returned and
/// whether the checkpoint finished (readers can keep it from finishing).
///
/// Why: SQLite deletes by marking space free, so deleted bytes (a forgotten subject's
/// wrapped key, a read model's copy of their data) stay in the page, in a free page and
/// in the WAL's copies of the page until reused. `secure_delete` zeroes the freed space
/// in the pages this write produces; the checkpoint copies them into the file and
/// truncates the WAL, which held the pages as they were.
fn scrubbing<T, E: From<rusqlite::Error>>(
    connection: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, E>,
) -> Result<(T, bool), E> {
    let previous: i64 = connection.query_row("PRAGMA secure_delete", [], |row| row.get(0))?;
    connection.execute_batch("PRAGMA secure_delete = ON")?;
    let done = work(connection);
    connection.execute_batch(&format!("PRAGMA secure_delete = {previous}"))?;
    let done = done?;
    let (busy, _, _): (i64, i64, i64) =
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok((done, busy == 0))
}
