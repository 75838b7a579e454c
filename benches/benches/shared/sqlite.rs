//! What the SQLite benches' raw baselines share: their connection, set up as
//! `SqliteStore::open` sets up its writer.
//!
//! Included by `append_sqlite.rs`, `execute_sqlite.rs` and `http_sqlite.rs`.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// The raw baseline's connection: the settings `SqliteStore::open` gives its writer
/// (WAL, `synchronous = FULL`, foreign keys on, a 5 s busy timeout).
pub fn raw_connection(path: &Path) -> Connection {
    let connection = Connection::open(path).expect("open");
    connection
        .busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .expect("foreign_keys");
    connection
}
