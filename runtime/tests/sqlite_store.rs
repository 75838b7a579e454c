//! What the SQLite store guarantees beyond the shared conformance suite: its schema and
//! migrations, typed errors for files that are not stores (left as they were), exact
//! timestamps, positions never reused, concurrent writers on one file, bounded streamed
//! replay, and typed errors for stored rows it cannot read.
//!
//! Run with `cargo test -p factum --features sqlite`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use factum::error::DecodeErrorKind;
use factum::prelude::*;
use factum::store::{SqliteOpenError, SqliteStore, VisitError};
use serde_json::json;
use tempfile::TempDir;

fn payload(value: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&value).expect("JSON")
}

fn tick(n: u64) -> NewEvent {
    NewEvent::new("Tick", 1, payload(json!({ "n": n })), Metadata::default())
}

fn ticks(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(tick).collect()
}

/// A temporary directory and the path of a store file in it.
fn temp_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    (dir, path)
}

/// A raw connection to the file, beside the store, for looking at and damaging rows.
fn raw(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("a raw connection");
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    connection
}

// ---------------------------------------------------------------------------------------
// Schema and migrations

#[tokio::test]
async fn opening_creates_the_schema_in_wal_mode_and_records_its_version() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    assert_eq!(store.path(), Some(path.as_path()));
    let connection = raw(&path);
    let versions: Vec<(u32, String)> = connection
        .prepare("SELECT version, description FROM factum_schema_version ORDER BY version")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|(version, _)| *version)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(SqliteStore::SCHEMA_VERSION, 7);
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|name| name != "sqlite_sequence");
    assert_eq!(
        tables,
        [
            "archives",
            "checkpoints",
            "commands",
            "event_tags",
            "events",
            "factum_schema_version",
            "snapshots",
            "streams"
        ]
    );
}

#[tokio::test]
async fn reopening_keeps_the_data_and_migrates_nothing_twice() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..3))
        .await
        .expect("append");
    // Open a second store while the first is still open, then reopen after both close.
    let second = SqliteStore::open(&path).await.expect("a second open");
    assert_eq!(second.stream_version("s").await.unwrap(), Some(3));
    drop((store, second));
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(reopened.stream_version("s").await.unwrap(), Some(3));
    reopened
        .append("s", "T", ExpectedVersion::Exact(3), ticks(3..4))
        .await
        .expect("append after reopening");
    let applied: i64 = raw(&path)
        .query_row("SELECT COUNT(*) FROM factum_schema_version", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(applied, 7, "every migration is applied once");
}

#[tokio::test]
async fn a_file_with_a_newer_schema_is_refused_untouched() {
    let (_dir, path) = temp_file();
    drop(SqliteStore::open(&path).await.expect("open"));
    raw(&path)
        .execute(
            "INSERT INTO factum_schema_version (version, description, applied_at)
             VALUES (8, 'from the future', 'tomorrow')",
            [],
        )
        .unwrap();
    let error = SqliteStore::open(&path)
        .await
        .expect_err("a newer schema is refused");
    let message = error.to_string();
    assert!(
        message.contains("schema is at version 8") && message.contains("newest known: 7"),
        "the error names both versions: {message}"
    );
    let versions: i64 = raw(&path)
        .query_row(
            "SELECT MAX(version) FROM factum_schema_version",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(versions, 8, "the refused file is left as it was");
}

#[tokio::test]
async fn options_open_a_store_with_normal_synchronous() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::options()
        .busy_timeout(std::time::Duration::from_secs(1))
        .readers(1)
        .open(&path)
        .await
        .expect("open with options");
    store
        .append("s", "T", ExpectedVersion::Any, ticks(0..2))
        .await
        .unwrap();
    // One reader connection serves many concurrent reads, one after another.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.read_stream("s", 1, 10).await })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().unwrap().len(), 2);
    }
}

// ---------------------------------------------------------------------------------------
// Files that are not stores: refused on open, left as they were

/// `path` with `suffix` appended to its file name, as SQLite names its `-wal` file.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opening `path` fails with `NotAStore` naming it; returns the reason.
async fn not_a_store(path: &Path) -> String {
    match SqliteStore::open(path).await {
        Err(error @ SqliteOpenError::NotAStore { .. }) => {
            let message = error.to_string();
            let SqliteOpenError::NotAStore {
                path: refused,
                reason,
            } = error
            else {
                unreachable!()
            };
            assert_eq!(refused, path);
            assert_eq!(
                message,
                format!("`{}` is not a factum store: {reason}", path.display())
            );
            reason
        }
        other => panic!("expected NotAStore for {}, got {other:?}", path.display()),
    }
}

/// The names in `dir` other than the store file and SQLite's files beside it: a
/// temporary file of a creation that was not cleaned up.
fn strays(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !["events.db", "events.db-wal", "events.db-shm"].contains(&name.as_str()))
        .collect();
    names.sort();
    names
}

/// A closed store file with `count` events in stream `s`, checkpointed (no `-wal` left).
async fn store_with_events(path: &Path, count: u64) {
    let store = SqliteStore::open(path).await.expect("open");
    for batch in 0..count.div_ceil(100) {
        let from = batch * 100;
        store
            .append(
                "s",
                "T",
                ExpectedVersion::Any,
                ticks(from..(from + 100).min(count)),
            )
            .await
            .expect("append");
    }
    drop(store);
    assert!(
        !sidecar(path, "-wal").exists(),
        "closing the last connection checkpoints and removes the WAL"
    );
}

#[tokio::test]
async fn a_path_where_no_file_exists_gets_a_new_store_and_no_stray_files() {
    let (dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("a new store");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..2))
        .await
        .expect("append");
    assert_eq!(store.head().await.unwrap().unwrap().position, 2);
    assert_eq!(strays(dir.path()), Vec::<String>::new());
    drop(store);
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(reopened.stream_version("s").await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opening_a_new_path_at_once_share_one_new_store() {
    let (dir, path) = temp_file();
    let opens: Vec<_> = (0..8)
        .map(|n| {
            let path = path.clone();
            tokio::spawn(async move {
                let store = SqliteStore::open(&path).await.expect("every open succeeds");
                store
                    .append(
                        &format!("s-{n}"),
                        "T",
                        ExpectedVersion::NoStream,
                        ticks(0..1),
                    )
                    .await
                    .expect("append");
            })
        })
        .collect();
    for open in opens {
        open.await.unwrap();
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.read_all(0, usize::MAX).await.unwrap().len(), 8);
    assert_eq!(strays(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn an_empty_or_short_file_is_not_a_store_and_is_left_as_it_was() {
    // The first bytes of a real store: its magic, then part of its header.
    let (_real_dir, real) = temp_file();
    store_with_events(&real, 3).await;
    let real_bytes = std::fs::read(&real).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "empty",
            Vec::new(),
            "the file is empty (0 bytes); a new store is only created where no file exists",
        ),
        (
            "one byte",
            b"S".to_vec(),
            "the file holds only 1 byte, fewer than the 100 bytes of SQLite's header",
        ),
        (
            "the magic alone",
            real_bytes[..16].to_vec(),
            "the file holds only 16 bytes, fewer than the 100 bytes of SQLite's header",
        ),
        (
            "99 bytes of a store",
            real_bytes[..99].to_vec(),
            "the file holds only 99 bytes, fewer than the 100 bytes of SQLite's header",
        ),
    ];
    for (case, bytes, expected) in cases {
        let (dir, path) = temp_file();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(not_a_store(&path).await, expected, "{case}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{case}: unchanged");
        assert!(
            !sidecar(&path, "-wal").exists(),
            "{case}: SQLite never opened it"
        );
        assert_eq!(strays(dir.path()), Vec::<String>::new(), "{case}");
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_typed_error() {
    let (_dir, path) = temp_file();
    let text = b"this is not a SQLite file, not even close; ".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let reason = not_a_store(&path).await;
    assert_eq!(
        reason,
        "the file does not begin with SQLite's header \"SQLite format 3\\0\" \
         (it begins with \"this is not a SQ\")"
    );
    assert_eq!(std::fs::read(&path).unwrap(), text, "unchanged");

    // SQLite's magic followed by garbage: SQLite itself refuses it.
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.extend(std::iter::repeat_n(0x5a, 8192 - 16));
    std::fs::write(&path, &garbage).unwrap();
    match SqliteStore::open(&path).await {
        Err(error @ SqliteOpenError::Sqlite { .. }) => assert!(
            error.to_string().contains("cannot open the SQLite store"),
            "{error}"
        ),
        other => panic!("expected a SQLite error, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "unchanged");
}

#[tokio::test]
async fn a_store_file_cut_short_is_an_error_never_a_shorter_store() {
    let (_dir, original) = temp_file();
    store_with_events(&original, 3000).await;
    let bytes = std::fs::read(&original).unwrap();
    assert!(bytes.len() > 100_000, "{} bytes", bytes.len());
    for cut in [bytes.len() / 2, bytes.len() - 4096, 4096, 100] {
        let (_dir, path) = temp_file();
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match SqliteStore::open(&path).await {
            Err(error @ SqliteOpenError::Sqlite { .. }) => {
                let report = factum::error::Report(&error).to_string();
                assert!(
                    report.contains("cannot open the SQLite store")
                        && report.contains("database disk image is malformed"),
                    "cut to {cut} bytes: {report}"
                )
            }
            other => panic!("cut to {cut} bytes: expected a SQLite error, got {other:?}"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &bytes[..cut],
            "cut to {cut} bytes: unchanged"
        );
    }
}

#[tokio::test]
async fn another_programs_database_is_refused_untouched() {
    let (_dir, path) = temp_file();
    {
        let connection = raw(&path);
        connection
            .execute_batch(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
                 CREATE INDEX users_by_name ON users (name);
                 INSERT INTO users (name) VALUES ('ada'), ('grace');",
            )
            .unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        not_a_store(&path).await,
        "a SQLite database without factum's schema table `factum_schema_version`; it holds \
         `users` and `users_by_name` (it was not changed)"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "unchanged");
    let connection = raw(&path);
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "not switched to WAL");
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["users"], "not migrated");
    let users: i64 = connection
        .query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))
        .unwrap();
    assert_eq!(users, 2);
}

#[tokio::test]
async fn a_store_missing_a_table_of_its_version_is_refused_untouched() {
    for table in [
        "events",
        "streams",
        "snapshots",
        "commands",
        "checkpoints",
        "archives",
        "event_tags",
    ] {
        let (_dir, path) = temp_file();
        store_with_events(&path, 3).await;
        raw(&path)
            .execute_batch(&format!("PRAGMA foreign_keys = OFF; DROP TABLE {table}"))
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            not_a_store(&path).await,
            format!(
                "its schema is at version 7, but the table `{table}` of that version is missing"
            )
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{table}: unchanged");
    }
}

#[tokio::test]
async fn an_empty_sqlite_database_is_given_the_schema() {
    let (_dir, path) = temp_file();
    // Another tool made the file: a valid database with no tables (one page).
    raw(&path).execute_batch("PRAGMA user_version = 7").unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    let store = SqliteStore::open(&path)
        .await
        .expect("an empty database is used");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..2))
        .await
        .expect("append");
    drop(store);
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(reopened.stream_version("s").await.unwrap(), Some(2));
}

/// Copies the store file and its `-wal` file as they are (the store still open, so
/// nothing was checkpointed: what a crash leaves) into a new directory.
fn copy_as_crashed(path: &Path) -> (TempDir, PathBuf) {
    let (dir, copy) = temp_file();
    std::fs::copy(path, &copy).unwrap();
    std::fs::copy(sidecar(path, "-wal"), sidecar(&copy, "-wal")).unwrap();
    (dir, copy)
}

/// The tables in a copy of the main file alone, without its WAL.
fn tables_without_the_wal(path: &Path) -> Vec<String> {
    let (_dir, alone) = temp_file();
    std::fs::copy(path, &alone).unwrap();
    raw(&alone)
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_fresh_store_that_crashed_before_a_checkpoint_opens_with_its_events() {
    // A store factum created: its schema is in the main file, its events in the WAL.
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..50))
        .await
        .unwrap();
    let (_copy_dir, copy) = copy_as_crashed(&path);
    drop(store);
    let recovered = SqliteStore::open(&copy).await.expect("the copy opens");
    assert_eq!(recovered.stream_version("s").await.unwrap(), Some(50));
    assert_eq!(recovered.read_all(0, usize::MAX).await.unwrap().len(), 50);

    // A file switched to WAL by another connection before the store first opened it:
    // the main file holds only SQLite's first page, the schema and the events are all in
    // the WAL.
    let (_dir, path) = temp_file();
    let other = raw(&path);
    let mode: String = other
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..50))
        .await
        .unwrap();
    let (_copy_dir, copy) = copy_as_crashed(&path);
    drop((store, other));
    assert_eq!(
        tables_without_the_wal(&copy),
        Vec::<String>::new(),
        "the main file alone holds no table"
    );
    let recovered = SqliteStore::open(&copy).await.expect("the copy opens");
    assert_eq!(recovered.stream_version("s").await.unwrap(), Some(50));
    assert_eq!(recovered.read_all(0, usize::MAX).await.unwrap().len(), 50);
}

#[tokio::test]
async fn a_wal_beside_an_empty_main_file_is_refused_and_kept() {
    // SQLite never leaves this (switching a new file to WAL writes its first page to the
    // main file first), and would delete such a WAL; it is kept for recovery.
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..5))
        .await
        .unwrap();
    let (_copy_dir, copy) = copy_as_crashed(&path);
    drop(store);
    std::fs::write(&copy, b"").unwrap();
    let wal = std::fs::read(sidecar(&copy, "-wal")).unwrap();
    assert!(!wal.is_empty());
    let reason = not_a_store(&copy).await;
    assert!(
        reason.starts_with("the file is empty (0 bytes) (the write-ahead log `")
            && reason.contains(&format!("holds {} bytes", wal.len())),
        "{reason}"
    );
    assert_eq!(std::fs::read(&copy).unwrap(), b"", "unchanged");
    assert_eq!(
        std::fs::read(sidecar(&copy, "-wal")).unwrap(),
        wal,
        "the WAL is kept"
    );
}

// ---------------------------------------------------------------------------------------
// Rows

#[tokio::test]
async fn timestamps_read_back_exactly_or_are_refused() {
    // Every store keeps timestamps to the microsecond over the years 1 to 9999 (see
    // `factum::store::limits`): SQLite could keep more, but what it accepts must read
    // back equal on every backend, PostgreSQL's `timestamptz` included.
    let store = SqliteStore::in_memory().expect("store");
    let kept: Vec<DateTime<Utc>> = vec![
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
            + chrono::TimeDelta::microseconds(123_456),
        Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
            + chrono::TimeDelta::microseconds(999_999),
        Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
            + chrono::TimeDelta::microseconds(999_999),
    ];
    let events: Vec<NewEvent> = kept
        .iter()
        .enumerate()
        .map(|(n, time)| NewEvent {
            timestamp: *time,
            ..tick(n as u64)
        })
        .collect();
    store
        .append("times", "T", ExpectedVersion::NoStream, events)
        .await
        .expect("append");
    let read: Vec<DateTime<Utc>> = store
        .read_stream("times", 1, 100)
        .await
        .unwrap()
        .iter()
        .map(|event| event.timestamp)
        .collect();
    assert_eq!(read, kept);

    let leap_second = NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
        .unwrap()
        .and_utc();
    let refused = [
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
            + chrono::TimeDelta::nanoseconds(123_456_789),
        Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
            + chrono::TimeDelta::nanoseconds(999_999_999),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::TimeDelta::seconds(1),
        leap_second,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
    ];
    for time in refused {
        let result = store
            .append(
                "times",
                "T",
                ExpectedVersion::Any,
                vec![NewEvent {
                    timestamp: time,
                    ..tick(9)
                }],
            )
            .await;
        assert!(
            matches!(
                &result,
                Err(StoreError::ValueRefused { field, .. }) if field.ends_with("timestamp")
            ),
            "{time:?} is refused, got {result:?}"
        );
    }
    assert_eq!(
        store.stream_version("times").await.unwrap(),
        Some(kept.len() as u64),
        "refused timestamps write nothing"
    );
}

#[tokio::test]
async fn payloads_and_metadata_read_back_verbatim() {
    let store = SqliteStore::in_memory().expect("store");
    // Not the shape serde_json would print: key order, spacing and number spelling are kept.
    let stored = r#"{"z":1,"a":[1.50, 2e3, -0.0],"s":"\u00e9\n\"q\"","nested":{"b":null}}"#;
    let mut event = tick(0);
    event.payload = serde_json::value::RawValue::from_string(stored.to_owned()).unwrap();
    event.metadata = Metadata {
        correlation_id: Some(uuid::Uuid::now_v7()),
        causation_id: None,
        actor: Some("Zoë 'quoted' \"actor\"".into()),
        extra: BTreeMap::from([("k".to_owned(), json!({ "deep": [1, "x"] }))]),
        ..Metadata::default()
    };
    store
        .append(
            "verbatim",
            "T",
            ExpectedVersion::NoStream,
            vec![event.clone()],
        )
        .await
        .unwrap();
    let read = store.read_stream("verbatim", 1, 1).await.unwrap();
    assert_eq!(read[0].payload.get(), stored);
    assert_eq!(read[0].metadata, event.metadata);
}

#[tokio::test]
async fn empty_stream_ids_are_data_and_nul_characters_are_refused() {
    let store = SqliteStore::in_memory().expect("store");
    store
        .append("", "T", ExpectedVersion::NoStream, ticks(0..2))
        .await
        .expect("an empty stream id is data");
    let read = store.read_stream("", 1, 10).await.unwrap();
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|event| event.stream_id.is_empty()));
    // SQLite could hold NUL, PostgreSQL's text cannot: every store refuses it alike.
    for id in ["nul\0inside", "nul\0", "\0"] {
        let result = store
            .append(id, "T", ExpectedVersion::NoStream, ticks(0..2))
            .await;
        assert!(
            matches!(
                &result,
                Err(StoreError::ValueRefused {
                    limit: factum::store::limits::Limit::NulCharacter,
                    ..
                })
            ),
            "{id:?}: {result:?}"
        );
        assert_eq!(store.stream_version(id).await.unwrap(), None, "{id:?}");
    }
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn positions_are_never_reused_after_a_delete() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    let first = store
        .append("a", "T", ExpectedVersion::NoStream, ticks(0..5))
        .await
        .unwrap();
    assert_eq!(first.last_position, 5);
    // Someone deletes the newest events by hand (the store itself never deletes).
    let raw = raw(&path);
    raw.execute("DELETE FROM events WHERE position > 2", [])
        .unwrap();
    raw.execute("UPDATE streams SET version = 2", []).unwrap();
    let next = store
        .append("b", "T", ExpectedVersion::NoStream, ticks(5..6))
        .await
        .unwrap();
    assert_eq!(
        next.last_position, 6,
        "position 3..5 are not handed out again"
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_through_separate_stores_on_one_file_lose_nothing() {
    let (_dir, path) = temp_file();
    const STORES: u64 = 4;
    const APPENDS: u64 = 60;
    const STREAMS: u64 = 3;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..STORES {
        // Each store has its own writer connection: they queue on SQLite's lock.
        let store = SqliteStore::open(&path).await.expect("open");
        tasks.spawn(async move {
            let mut conflicts = 0u64;
            for n in 0..APPENDS {
                let stream = format!("shared-{}", (writer + n) % STREAMS);
                let mut event = tick(n);
                event.metadata.extra.insert("writer".into(), json!(writer));
                loop {
                    let version = store.stream_version(&stream).await.expect("version");
                    let expected =
                        version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    match store
                        .append(&stream, "Shared", expected, vec![event.clone()])
                        .await
                    {
                        Ok(outcome) => {
                            assert!(outcome.written);
                            break;
                        }
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
            }
            conflicts
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a writer panicked");
    }
    let store = SqliteStore::open(&path).await.expect("open");
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len() as u64, STORES * APPENDS);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].position < pair[1].position)
    );
    let written: HashSet<(u64, String)> = all
        .iter()
        .map(|event| {
            (
                event.metadata.extra["writer"].as_u64().unwrap(),
                event.payload.get().to_owned(),
            )
        })
        .collect();
    assert_eq!(written.len() as u64, STORES * APPENDS, "none is duplicated");
    for stream in 0..STREAMS {
        let versions: Vec<u64> = store
            .read_stream(&format!("shared-{stream}"), 1, usize::MAX)
            .await
            .unwrap()
            .iter()
            .map(|event| event.stream_version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_writer_waits_for_the_write_lock_and_fails_typed_when_it_is_never_released() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::options()
        .busy_timeout(std::time::Duration::from_millis(50))
        .open(&path)
        .await
        .expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..1))
        .await
        .unwrap();
    // Another connection (another process, say) holds the write lock throughout.
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    match store
        .append("s", "T", ExpectedVersion::Exact(1), ticks(1..2))
        .await
    {
        Err(StoreError::Backend(error)) => {
            let sqlite = error
                .downcast_ref::<rusqlite::Error>()
                .expect("a SQLite error");
            assert_eq!(
                sqlite.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy)
            );
        }
        other => panic!("expected a busy backend error, got {other:?}"),
    }
    // Readers are not blocked by a writer (WAL).
    assert_eq!(store.read_stream("s", 1, 10).await.unwrap().len(), 1);
    other.execute_batch("COMMIT").unwrap();
    store
        .append("s", "T", ExpectedVersion::Exact(1), ticks(1..2))
        .await
        .expect("the lock is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_re_append_through_another_store_writes_nothing() {
    let (_dir, path) = temp_file();
    let one = SqliteStore::open(&path).await.expect("open");
    let two = SqliteStore::open(&path).await.expect("open");
    let batch = ticks(0..3);
    let first = one
        .append("idem", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let again = two
        .append("idem", "T", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(!again.written);
    assert_eq!(again.last_position, first.last_position);
    // With `Any`, the re-append gets past the version check and is caught by the index.
    let any = two
        .append("idem", "T", ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert_eq!((any.written, any.stream_version), (false, 3));
    let mut reordered = batch.clone();
    reordered.swap(1, 2);
    assert!(matches!(
        two.append("idem", "T", ExpectedVersion::Any, reordered)
            .await,
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert_eq!(one.read_all(0, 100).await.unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------
// Streamed replay

#[tokio::test]
async fn visiting_streams_a_long_stream_in_order_and_stops_cleanly() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::options()
        .readers(2)
        .open(&path)
        .await
        .expect("open");
    for chunk in 0..10u64 {
        let expected = match chunk {
            0 => ExpectedVersion::NoStream,
            chunk => ExpectedVersion::Exact(chunk * 1000),
        };
        store
            .append(
                "long",
                "T",
                expected,
                ticks(chunk * 1000..(chunk + 1) * 1000),
            )
            .await
            .unwrap();
    }
    let mut next = 1;
    store
        .for_each_in_stream("long", 1, |event| {
            assert_eq!(event.stream_version, next);
            assert_eq!(event.payload.get(), format!(r#"{{"n":{}}}"#, next - 1));
            next += 1;
            Ok::<_, ()>(())
        })
        .await
        .unwrap();
    assert_eq!(next, 10_001);
    // Stopping early, more often than there are reader connections: every stop hands
    // its connection back (or the next visit would wait for ever).
    for stop_at in [1u64, 7, 300, 5_000, 9_999, 2, 3] {
        let mut seen = 0;
        let stopped = store
            .for_each_in_stream("long", 1, |event| {
                seen += 1;
                if event.stream_version == stop_at {
                    Err(stop_at)
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(matches!(stopped, Err(VisitError::Visitor(at)) if at == stop_at));
        assert_eq!(seen, stop_at);
        // A replay, on its own columns, hands its connection back too.
        let mut replayed = 0;
        let stopped = store
            .replay_stream("long", 1, |event| {
                replayed += 1;
                assert_eq!(event.payload, format!(r#"{{"n":{}}}"#, replayed - 1));
                if event.stream_version == stop_at {
                    Err(stop_at)
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(matches!(stopped, Err(VisitError::Visitor(at)) if at == stop_at));
        assert_eq!(replayed, stop_at);
    }
    assert_eq!(
        store.read_stream("long", 9_990, 100).await.unwrap().len(),
        11
    );
    assert!(
        store
            .for_each_in_stream("missing", 1, |_| Err(()))
            .await
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------
// Rows that cannot be read back

/// A file with streams `good` (3 events) and `bad` (4 events), and a raw connection.
async fn damaged_store() -> (TempDir, SqliteStore, rusqlite::Connection) {
    let (dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("good", "T", ExpectedVersion::NoStream, ticks(0..3))
        .await
        .unwrap();
    store
        .append("bad", "T", ExpectedVersion::NoStream, ticks(3..7))
        .await
        .unwrap();
    let connection = raw(&path);
    (dir, store, connection)
}

/// Damages `column` of `bad`'s version 2 with `value` (an SQL expression).
fn damage(connection: &rusqlite::Connection, column: &str, value: &str) {
    let changed = connection
        .execute(
            &format!(
                "UPDATE events SET {column} = {value}
                 WHERE stream_version = 2
                   AND stream_key = (SELECT stream_key FROM streams WHERE stream_id = 'bad')"
            ),
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

fn assert_corrupt(result: Result<Vec<RecordedEvent>, StoreError>, what: &str) {
    match result {
        Err(StoreError::CorruptRow {
            stream_id,
            stream_version,
            position,
            reason,
        }) => {
            assert_eq!((stream_id.as_str(), stream_version), ("bad", 2), "{reason}");
            // "good" holds positions 1 to 3, "bad" 4 to 7.
            assert_eq!(position, Some(5), "the error names the position: {reason}");
            assert!(reason.contains(what), "the reason names {what}: {reason}");
        }
        other => panic!("expected a corrupt row ({what}), got {other:?}"),
    }
}

#[tokio::test]
async fn every_unreadable_column_is_a_corrupt_row_naming_stream_and_version() {
    for (column, value, what) in [
        ("payload", "'{not json'", "payload: not JSON"),
        ("payload", "X'FFFE'", "payload: not UTF-8"),
        ("payload", "''", "payload: not JSON"),
        ("payload", "zeroblob(3)", "payload: not JSON"),
        ("event_id", "X'0102'", "event id: 2 bytes"),
        (
            "event_id",
            "'0191a0b0-0000-7000-8000-000000000000'",
            "event id",
        ),
        ("metadata", "'{\"actor\": 7}'", "metadata"),
        ("metadata", "'[truncated'", "metadata"),
        ("timestamp_ns", "2000000000", "not a valid time"),
        ("timestamp_ns", "-1", "not a valid time"),
        ("timestamp_s", "'yesterday'", "timestamp seconds"),
        ("schema_version", "-3", "schema version"),
        ("name", "X'00FF'", "event name"),
    ] {
        let (_dir, store, connection) = damaged_store().await;
        damage(&connection, column, value);
        assert_corrupt(store.read_stream("bad", 1, 10).await, what);
        assert_corrupt(store.read_all(0, 100).await, what);
        // The rows around it and the other stream stay readable.
        assert_eq!(store.read_stream("bad", 3, 10).await.unwrap().len(), 2);
        assert_eq!(store.read_stream("bad", 1, 1).await.unwrap().len(), 1);
        assert_eq!(store.read_stream("good", 1, 10).await.unwrap().len(), 3);
        assert_eq!(store.read_all(0, 3).await.unwrap().len(), 3);
        let mut visited = Vec::new();
        let visit = store
            .for_each_in_stream("bad", 1, |event| {
                visited.push(event.stream_version);
                Ok::<_, ()>(())
            })
            .await;
        match visit {
            Err(VisitError::Store(StoreError::CorruptRow {
                stream_version: 2, ..
            })) => {}
            other => panic!("{column}: expected a corrupt row, got {other:?}"),
        }
        assert_eq!(
            visited,
            [1],
            "the events before the corrupt row are visited"
        );
        // A replay reads no event id, no metadata and no time: it checks every column it
        // reads, and a damage elsewhere leaves what it rebuilds unchanged. It hands the
        // payload over unparsed (its decoder parses it once; the repository reports text
        // that is not JSON as a corrupt row, tested below), checked to be UTF-8.
        let mut replayed = Vec::new();
        let replay = store
            .replay_stream("bad", 1, |event| {
                replayed.push((event.stream_version, event.payload.to_owned()));
                Ok::<_, ()>(())
            })
            .await;
        let versions: Vec<u64> = replayed.iter().map(|(version, _)| *version).collect();
        if ["event_id", "metadata", "timestamp_s", "timestamp_ns"].contains(&column) {
            assert!(replay.is_ok(), "{column}: {replay:?}");
            assert_eq!(versions, [1, 2, 3, 4], "{column}");
            assert_eq!(replayed[1].1, r#"{"n":4}"#, "{column}");
        } else if what == "payload: not JSON" {
            assert!(replay.is_ok(), "{value}: {replay:?}");
            assert_eq!(versions, [1, 2, 3, 4], "{value}");
            let stored: String = connection
                .query_row(
                    "SELECT CAST(payload AS TEXT) FROM events WHERE stream_version = 2
                     AND stream_key = (SELECT stream_key FROM streams WHERE stream_id = 'bad')",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(replayed[1].1, stored, "{value}: the text as stored");
            assert!(
                serde_json::from_str::<serde_json::Value>(&stored).is_err(),
                "{value}"
            );
        } else {
            match replay {
                Err(VisitError::Store(error)) => {
                    assert_corrupt(Err(error), what);
                }
                other => panic!("{column}: expected a corrupt row, got {other:?}"),
            }
            assert_eq!(versions, [1], "{column}: the events before it are replayed");
        }
    }
}

#[tokio::test]
async fn an_unreadable_snapshot_is_a_corrupt_row() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .save_snapshot(factum::envelope::Snapshot {
            stream_id: "snap".into(),
            stream_version: 4,
            schema_version: 1,
            state: payload(json!({ "n": 4 })),
            taken_at: factum::envelope::now(),
        })
        .await
        .unwrap();
    raw(&path)
        .execute("UPDATE snapshots SET state = '{oops'", [])
        .unwrap();
    match store.load_snapshot("snap").await {
        Err(StoreError::CorruptRow {
            stream_id,
            stream_version: 4,
            position: None,
            reason,
        }) => {
            assert_eq!(stream_id, "snap");
            assert!(reason.contains("snapshot: state: not JSON"), "{reason}");
        }
        other => panic!("expected a corrupt row, got {other:?}"),
    }
}

// A small aggregate, to read damaged streams through the repository.

#[event(name = "Counted")]
#[derive(Debug, PartialEq)]
pub struct Counted {
    pub by: u32,
}

#[derive(Events, Debug, PartialEq)]
pub enum CounterEvent {
    Counted(Counted),
}

#[command]
pub struct Count {
    #[aggregate_id]
    pub id: String,
    pub by: u32,
}

#[derive(Commands)]
pub enum CounterCommand {
    Count(Count),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default)]
pub struct Counter {
    total: u64,
}

#[aggregate(events = CounterEvent, commands = CounterCommand, error = Never)]
impl Counter {
    #[handle]
    fn count(&self, command: Count) -> Result<Counted, Never> {
        Ok(Counted { by: command.by })
    }

    #[apply]
    fn counted(&mut self, event: &Counted) {
        self.total += u64::from(event.by);
    }
}

#[tokio::test]
async fn the_repository_names_stream_version_and_event_of_an_undecodable_event() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    let counters = Repository::<Counter, SqliteStore>::new(store.clone());
    for id in ["unknown", "too-new", "corrupt", "garbled", "empty", "fine"] {
        for by in 1..=3 {
            counters.execute(Count { id: id.into(), by }).await.unwrap();
        }
    }
    let connection = raw(&path);
    let set = |id: &str, assignment: &str| {
        connection
            .execute(
                &format!(
                    "UPDATE events SET {assignment} WHERE stream_version = 2 AND stream_key =
                     (SELECT stream_key FROM streams WHERE stream_id = ?1)"
                ),
                [format!("Counter-{id}")],
            )
            .unwrap();
    };
    set("unknown", "name = 'Discounted'");
    set("too-new", "schema_version = 9");
    set("corrupt", "payload = '{\"by\": '");
    set("garbled", "payload = '{by: 2}'");
    set("empty", "payload = ''");

    let decode_error = |id: &str, error: RepositoryError<Never>| match error {
        RepositoryError::Decode(error) => {
            assert_eq!(error.stream_id, format!("Counter-{id}"));
            assert_eq!(error.stream_version, 2);
            error.source
        }
        other => panic!("{id}: expected a decode error, got {other:?}"),
    };
    let unknown = decode_error("unknown", counters.load("unknown").await.unwrap_err());
    assert_eq!(
        (unknown.event.as_str(), unknown.schema_version),
        ("Discounted", 1)
    );
    assert!(matches!(unknown.kind, DecodeErrorKind::UnknownEvent { .. }));
    let too_new = decode_error("too-new", counters.load("too-new").await.unwrap_err());
    assert_eq!(
        (too_new.event.as_str(), too_new.schema_version),
        ("Counted", 9)
    );
    assert!(matches!(
        too_new.kind,
        DecodeErrorKind::VersionTooNew { newest: 1 }
    ));
    // Truncated, not JSON, empty: the replay's one parse finds it, and the load reports
    // a corrupt row, as a read of whole records does.
    for id in ["corrupt", "garbled", "empty"] {
        match counters.load(id).await.unwrap_err() {
            RepositoryError::Store(StoreError::CorruptRow {
                stream_id,
                stream_version: 2,
                position,
                reason,
            }) => {
                assert_eq!(stream_id, format!("Counter-{id}"));
                // Version 1 of each stream is at the position before version 2's.
                let first = store
                    .read_stream(&stream_id, 1, 1)
                    .await
                    .unwrap()
                    .remove(0)
                    .position;
                assert_eq!(position, Some(first + 1), "{id}: {reason}");
                assert!(reason.starts_with("payload: not JSON: "), "{id}: {reason}");
                let whole = store.read_stream(&stream_id, 1, 10).await.unwrap_err();
                assert!(
                    matches!(&whole, StoreError::CorruptRow { reason, .. } if reason.starts_with("payload: not JSON: ")),
                    "{id}: a whole-record read says the same: {whole:?}"
                );
            }
            other => panic!("{id}: expected a corrupt row, got {other:?}"),
        }
    }

    // A command against a damaged stream is refused before anything is written.
    assert!(
        counters
            .execute(Count {
                id: "unknown".into(),
                by: 1
            })
            .await
            .is_err()
    );
    assert_eq!(
        store.stream_version("Counter-unknown").await.unwrap(),
        Some(3)
    );
    let fine = counters.load("fine").await.unwrap();
    assert_eq!((fine.version, fine.state.total), (3, 6));
    assert!(
        matches!(
            store.read_all(0, 100).await,
            Err(StoreError::CorruptRow {
                stream_version: 2,
                ..
            })
        ),
        "read_all stops at the corrupt payload"
    );
}

// ---------------------------------------------------------------------------------------
// Waiting for events across store handles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_wakes_on_appends_of_another_store_handle_on_the_same_file() {
    let (_dir, path) = temp_file();
    let waiter = SqliteStore::open(&path).await.expect("open");
    let writer = SqliteStore::open(&path).await.expect("a second handle");
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move {
            waiter
                .wait_for_events(0, std::time::Duration::from_secs(600))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    writer
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..1))
        .await
        .expect("append");
    // The handles share nothing in memory: the waiter's poll finds the append.
    tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("an append through another handle wakes the waiter")
        .expect("the waiter panicked")
        .expect("wait_for_events");
    assert_eq!(
        waiter.head().await.expect("head").map(|head| head.position),
        writer.head().await.expect("head").map(|head| head.position)
    );
}

#[tokio::test]
async fn a_filtered_read_of_a_corrupt_row_is_a_typed_error() {
    let (_dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("s", "T", ExpectedVersion::NoStream, ticks(0..3))
        .await
        .expect("append");
    raw(&path)
        .execute(
            "UPDATE events SET payload = 'not json' WHERE stream_version = 2",
            [],
        )
        .expect("damage a row");
    let error = store
        .read_all_filtered(0, 10, &["Tick"])
        .await
        .expect_err("a corrupt row is refused");
    assert!(
        matches!(&error, StoreError::CorruptRow { stream_id, stream_version: 2, .. } if stream_id == "s"),
        "{error:?}"
    );
    // The rows before it stay readable, and the head is still known.
    let before = store
        .read_all_filtered(0, 1, &["Tick"])
        .await
        .expect("the first row");
    assert_eq!(before.events.len(), 1);
    assert!(store.head().await.expect("head").is_some());
}

/// Moves `from`'s event at `version` into `to` with raw SQL, as a damaged `stream_key`
/// would; returns its position.
fn move_event(connection: &rusqlite::Connection, from: &str, version: i64, to: &str) -> u64 {
    connection.execute_batch("PRAGMA foreign_keys=OFF").unwrap();
    let position: i64 = connection
        .query_row(
            "SELECT position FROM events WHERE stream_version = ?2
               AND stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1)",
            rusqlite::params![from, version],
            |row| row.get(0),
        )
        .unwrap();
    connection
        .execute(
            "UPDATE events SET stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1)
             WHERE position = ?2",
            rusqlite::params![to, position],
        )
        .unwrap();
    u64::try_from(position).unwrap()
}

fn assert_corrupt_at(
    error: StoreError,
    stream: &str,
    version: u64,
    position: Option<u64>,
    what: &str,
) {
    match error {
        StoreError::CorruptRow {
            stream_id,
            stream_version,
            position: at,
            reason,
        } => {
            assert_eq!(
                (stream_id.as_str(), stream_version, at),
                (stream, version, position),
                "{reason}"
            );
            assert!(reason.contains(what), "{reason}");
        }
        other => panic!("expected a corrupt row, got {other:?}"),
    }
}

/// A store file with stream `a` (versions 1-4, positions 1-4) and `b` (1-2, positions
/// 5-6).
async fn streams_a_and_b() -> (TempDir, PathBuf, SqliteStore) {
    let (dir, path) = temp_file();
    let store = SqliteStore::open(&path).await.expect("open");
    store
        .append("a", "T", ExpectedVersion::NoStream, ticks(0..4))
        .await
        .unwrap();
    store
        .append("b", "T", ExpectedVersion::NoStream, ticks(4..6))
        .await
        .unwrap();
    (dir, path, store)
}

#[tokio::test]
async fn an_event_moved_into_another_stream_is_a_corrupt_row_in_both() {
    let (_dir, path, store) = streams_a_and_b().await;
    // a's version 3 (position 3) now claims to be b's version 3.
    let moved = move_event(&raw(&path), "a", 3, "b");
    assert_eq!(moved, 3);

    // In `a`, a gap: the events before it are read, then the error.
    assert_corrupt_at(
        store.read_stream("a", 1, 10).await.unwrap_err(),
        "a",
        3,
        None,
        "no event holds version 3",
    );
    assert_eq!(store.read_stream("a", 1, 2).await.unwrap().len(), 2);
    let mut visited = Vec::new();
    let visit = store
        .for_each_in_stream("a", 1, |event| {
            visited.push(event.stream_version);
            Ok::<_, ()>(())
        })
        .await;
    assert!(
        matches!(
            visit,
            Err(VisitError::Store(StoreError::CorruptRow {
                stream_version: 3,
                ..
            }))
        ),
        "{visit:?}"
    );
    assert_eq!(visited, [1, 2]);
    let mut replayed = Vec::new();
    let replay = store
        .replay_stream("a", 1, |event| {
            replayed.push(event.stream_version);
            Ok::<_, ()>(())
        })
        .await;
    match replay {
        Err(VisitError::Store(error)) => {
            assert_corrupt_at(error, "a", 3, None, "no event holds version 3");
        }
        other => panic!("expected a corrupt row, got {other:?}"),
    }
    assert_eq!(replayed, [1, 2], "a replay checks the versions too");
    // In `b`, an event past the stream's version.
    assert_corrupt_at(
        store.read_stream("b", 1, 10).await.unwrap_err(),
        "b",
        3,
        Some(3),
        "past the stream's version 2",
    );
    assert_eq!(store.read_stream("b", 1, 2).await.unwrap().len(), 2);
    // In the log, at its position.
    assert_corrupt_at(
        store.read_all(0, 10).await.unwrap_err(),
        "b",
        3,
        Some(3),
        "past the stream's version 2",
    );
    assert_eq!(store.read_all(0, 2).await.unwrap().len(), 2);
    assert_eq!(store.read_all(3, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_stream_missing_its_last_events_is_a_corrupt_row() {
    let (_dir, path, store) = streams_a_and_b().await;
    move_event(&raw(&path), "a", 4, "b");
    assert_corrupt_at(
        store.read_stream("a", 1, 10).await.unwrap_err(),
        "a",
        4,
        None,
        "the stream's row says version 4",
    );
    assert_eq!(store.read_stream("a", 1, 3).await.unwrap().len(), 3);
    assert_eq!(store.read_stream("a", 5, 3).await.unwrap().len(), 0);
}

#[tokio::test]
async fn an_unreadable_command_record_is_a_corrupt_row_naming_its_stream() {
    for (damage, reason) in [
        (
            "event_ids = x'00'",
            "event_ids holds 1 bytes, not 16 per id",
        ),
        ("first_position = NULL", "do not fit 2 event ids"),
        ("recorded_at_ns = -1", "is not a time"),
        (
            "fingerprint = x'00ff'",
            "fingerprint: Blob where a text belongs",
        ),
    ] {
        let (_dir, path) = temp_file();
        let damaged = SqliteStore::open(&path).await.expect("open");
        let command = factum::store::CommandRecord::new(factum::uuid::Uuid::now_v7(), "f");
        damaged
            .append_command(
                "s",
                "T",
                ExpectedVersion::NoStream,
                ticks(0..2),
                command.clone(),
            )
            .await
            .expect("append_command");
        raw(&path)
            .execute_batch(&format!("UPDATE commands SET {damage}"))
            .unwrap();
        for error in [
            damaged.command_outcome(command.command_id).await.err(),
            damaged
                .append_command("s", "T", ExpectedVersion::Any, ticks(2..3), command.clone())
                .await
                .err(),
        ] {
            match error {
                Some(StoreError::CorruptRow {
                    stream_id,
                    reason: message,
                    ..
                }) => {
                    assert_eq!(stream_id, "s", "{damage}");
                    assert!(message.contains(reason), "{damage}: {message}");
                }
                other => panic!("{damage}: expected a corrupt row, got {other:?}"),
            }
        }
        assert_eq!(
            damaged.stream_version("s").await.unwrap(),
            Some(2),
            "{damage}: nothing was written"
        );
    }
}
