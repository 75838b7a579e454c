//! The raw baseline of the SQLite append benches: an append written by hand with
//! rusqlite, the statements `SqliteStore::append` runs (`BEGIN IMMEDIATE`, read the
//! stream row, insert or update it, insert the events with their JSON metadata,
//! `COMMIT`), with cached prepared statements. It does not compute the events' hash
//! chain (the `hash` and `predecessor` columns stay empty).
//!
//! Included by `append_sqlite.rs` and `sealed_sqlite.rs`.

use factum::prelude::*;
use rusqlite::{Connection, OptionalExtension, params};

/// The same append, by hand: returns the stream's new version.
pub fn raw_append(
    connection: &Connection,
    stream_id: &str,
    stream_type: &str,
    expected: u64,
    events: &[NewEvent],
) -> u64 {
    connection
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]))
        .expect("begin");
    let stream: Option<(i64, i64)> = connection
        .prepare_cached("SELECT stream_key, version FROM streams WHERE stream_id = ?1")
        .and_then(|mut select| {
            select
                .query_row(params![stream_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .expect("select");
    let version = stream.map_or(0, |(_, version)| version as u64);
    assert_eq!(version, expected, "the expected version");
    let last = version + events.len() as u64;
    let key = match stream {
        Some((key, _)) => {
            connection
                .prepare_cached("UPDATE streams SET version = ?2 WHERE stream_key = ?1")
                .and_then(|mut update| update.execute(params![key, last as i64]))
                .expect("update");
            key
        }
        None => {
            connection
                .prepare_cached(
                    "INSERT INTO streams (stream_id, stream_type, version) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut insert| insert.execute(params![stream_id, stream_type, last as i64]))
                .expect("insert stream");
            connection.last_insert_rowid()
        }
    };
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO events (stream_key, stream_version, event_id, name, schema_version,
                                 payload, metadata, timestamp_s, timestamp_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .expect("prepare");
    for (offset, event) in events.iter().enumerate() {
        let metadata = serde_json::to_string(&event.metadata).expect("metadata");
        insert
            .execute(params![
                key,
                (version + 1 + offset as u64) as i64,
                event.event_id.as_bytes().as_slice(),
                event.name,
                event.schema_version,
                event.payload.get(),
                metadata,
                event.timestamp.timestamp(),
                event.timestamp.timestamp_subsec_nanos(),
            ])
            .expect("insert event");
    }
    connection
        .prepare_cached("COMMIT")
        .and_then(|mut commit| commit.execute([]))
        .expect("commit");
    last
}
