//! Stores written by an earlier release open with today's code, read back equal, and keep
//! the contract: a SQLite file and a PostgreSQL dump made by the code of 2026-12-06
//! (SQLite schema 1, PostgreSQL schema 3), committed under `tests/fixtures/`.
//!
//! Each fixture comes twice: with the events of [`fixture_events`] and a snapshot (read
//! back field by field), and empty (the conformance suite runs on copies of it). They
//! were written by this file: `FACTUM_WRITE_FIXTURES=1 cargo test -p factum --features
//! sqlite,postgres,conformance --test upgrade_fixtures` writes the SQLite files and the
//! PostgreSQL schemas `factum_fixture` and `factum_fixture_empty`, which were then dumped
//! with `pg_dump --schema=<schema> --inserts --no-owner --no-privileges`. Never
//! regenerate them after a schema change: they stand for databases already in use.

mod postgres_common;

use std::path::{Path, PathBuf};

use chrono::DateTime;
use factum::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use factum::store::{EventStore, ExpectedVersion, PostgresStore, SqliteStore};
use factum::testing::conformance::{self, Connecting};
use postgres_common::{raw_client, url};
use serde_json::json;
use uuid::Uuid;

const SQLITE_FIXTURE: &str = "sqlite-schema-1.sqlite3";
const SQLITE_EMPTY_FIXTURE: &str = "sqlite-schema-1-empty.sqlite3";
const POSTGRES_FIXTURE: &str = "postgres-schema-3.sql";
const POSTGRES_EMPTY_FIXTURE: &str = "postgres-schema-3-empty.sql";
const POSTGRES_SCHEMA: &str = "factum_fixture";
const POSTGRES_EMPTY_SCHEMA: &str = "factum_fixture_empty";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn writing() -> bool {
    std::env::var("FACTUM_WRITE_FIXTURES").is_ok_and(|value| value == "1")
}

/// The events the fixtures hold: three streams, every kind of metadata, timestamps
/// before and after the epoch, an older schema version, all fixed.
fn fixture_events() -> Vec<(&'static str, Vec<NewEvent>)> {
    let id = |n: u128| Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n);
    let at = |seconds: i64, micros: u32| DateTime::from_timestamp(seconds, micros * 1_000).unwrap();
    let event =
        |n: u128, name: &str, version: u32, payload: serde_json::Value, timestamp, metadata| {
            NewEvent {
                event_id: id(n),
                name: name.to_owned(),
                schema_version: version,
                payload: serde_json::value::to_raw_value(&payload).unwrap(),
                timestamp,
                metadata,
            }
        };
    let command = Metadata {
        correlation_id: Some(id(100)),
        causation_id: Some(id(101)),
        actor: Some("zoë@example.org".to_owned()),
        extra: [
            ("tenant".to_owned(), json!("acme")),
            ("tags".to_owned(), json!(["a", "b"])),
        ]
        .into_iter()
        .collect(),
    };
    vec![
        (
            "Order-1",
            vec![
                event(
                    1,
                    "OrderPlaced",
                    1,
                    json!({ "customer_id": "c-1" }),
                    at(1_700_000_000, 123_456),
                    command.clone(),
                ),
                event(
                    2,
                    "ItemAdded",
                    2,
                    json!({ "sku": "mug", "qty": 2, "price": 12.5 }),
                    at(1_700_000_001, 0),
                    command.clone(),
                ),
            ],
        ),
        (
            "Order-2",
            vec![event(
                3,
                "OrderPlaced",
                2,
                json!({ "customer_id": "c-2", "currency": "EUR" }),
                at(-1, 999_999),
                Metadata::default(),
            )],
        ),
        (
            "Order-1",
            vec![event(
                4,
                "OrderConfirmed",
                1,
                json!({}),
                at(1_700_000_002, 500_000),
                Metadata {
                    actor: Some("NUL \u{0} and \"quotes\"".to_owned()),
                    ..Metadata::default()
                },
            )],
        ),
        (
            "Task-α",
            vec![
                event(
                    5,
                    "TaskCreated",
                    1,
                    json!({ "title": "Wound dressing — 日本語", "nested": { "list": [1, null, "x"] } }),
                    at(253_402_300_799, 999_999),
                    Metadata::default(),
                ),
                event(
                    6,
                    "TaskCompleted",
                    1,
                    json!({ "by": "ben" }),
                    at(-62_135_596_800, 0),
                    Metadata::default(),
                ),
            ],
        ),
    ]
}

fn fixture_snapshot() -> Snapshot {
    Snapshot {
        stream_id: "Order-1".to_owned(),
        stream_version: 3,
        schema_version: 2,
        state: serde_json::value::to_raw_value(
            &json!({ "status": "Confirmed", "lines": { "mug": 2 } }),
        )
        .unwrap(),
        taken_at: DateTime::from_timestamp(1_700_000_003, 250_000_000).unwrap(),
    }
}

async fn write_events<S: EventStore>(store: &S) {
    for (stream_id, events) in fixture_events() {
        let stream_type = stream_id.split('-').next().unwrap();
        store
            .append(stream_id, stream_type, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    store.save_snapshot(fixture_snapshot()).await.unwrap();
}

/// The store holds exactly [`fixture_events`] and [`fixture_snapshot`], as written.
async fn assert_holds_the_fixture<S: EventStore>(store: &S) {
    let all: Vec<RecordedEvent> = store.read_all(0, 100).await.unwrap();
    let written: Vec<(&str, NewEvent)> = fixture_events()
        .into_iter()
        .flat_map(|(stream_id, events)| events.into_iter().map(move |event| (stream_id, event)))
        .collect();
    assert_eq!(all.len(), written.len(), "every event reads back");
    let mut versions = std::collections::HashMap::new();
    for (index, (read, (stream_id, sent))) in all.iter().zip(&written).enumerate() {
        let version = versions.entry(*stream_id).or_insert(0u64);
        *version += 1;
        assert_eq!(read.position, index as u64 + 1, "position");
        assert_eq!(read.stream_id, *stream_id);
        assert_eq!(read.stream_type, stream_id.split('-').next().unwrap());
        assert_eq!(read.stream_version, *version, "{stream_id}");
        assert_eq!(read.event_id, sent.event_id);
        assert_eq!(read.name, sent.name);
        assert_eq!(read.schema_version, sent.schema_version);
        assert_eq!(read.payload.get(), sent.payload.get());
        assert_eq!(read.timestamp, sent.timestamp);
        assert_eq!(read.metadata, sent.metadata);
    }
    let snapshot = store
        .load_snapshot("Order-1")
        .await
        .unwrap()
        .expect("the snapshot");
    let expected = fixture_snapshot();
    assert_eq!(
        (
            snapshot.stream_version,
            snapshot.schema_version,
            snapshot.state.get(),
            snapshot.taken_at
        ),
        (
            expected.stream_version,
            expected.schema_version,
            expected.state.get(),
            expected.taken_at
        )
    );
    // And it takes new events where the old ones end.
    let next = store
        .append(
            "Order-1",
            "Order",
            ExpectedVersion::Exact(3),
            vec![conformance::tick(1)],
        )
        .await
        .unwrap();
    assert_eq!(
        (next.stream_version, next.last_position),
        (4, written.len() as u64 + 1)
    );
}

/// A copy of a fixture file in `dir`.
fn copy_of(name: &str, dir: &Path) -> PathBuf {
    let copy = dir.join(name);
    std::fs::copy(fixture(name), &copy).unwrap_or_else(|error| panic!("{name}: {error}"));
    copy
}

async fn write_sqlite_fixture(name: &str, with_events: bool) {
    let path = fixture(name);
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(&path).await.unwrap();
    if with_events {
        write_events(&store).await;
    }
    drop(store);
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists(),
        "the write-ahead log was folded into the file on close"
    );
}

#[tokio::test]
async fn a_sqlite_file_of_schema_1_opens_reads_back_and_keeps_the_contract() {
    if writing() {
        write_sqlite_fixture(SQLITE_FIXTURE, true).await;
        write_sqlite_fixture(SQLITE_EMPTY_FIXTURE, false).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(copy_of(SQLITE_FIXTURE, dir.path()))
        .await
        .expect("a file of schema 1 opens");
    assert_holds_the_fixture(&store).await;

    let mut copies = 0;
    conformance::run_contract(|| {
        copies += 1;
        let dir = dir.path().join(format!("empty-{copies}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = copy_of(SQLITE_EMPTY_FIXTURE, &dir);
        Connecting(async move {
            SqliteStore::open(path)
                .await
                .expect("an empty file of schema 1 opens")
        })
    })
    .await;
}

/// Restores a dump over its schema the way an operator would: `psql -f`, stopping at the
/// first error (a plain-SQL dump holds psql's `\restrict` commands, which only psql reads).
async fn restore(dump: &str, schema: &str) {
    raw_client()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
    let path = fixture(dump);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .arg(url())
            .args(["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| {
        panic!("running psql (installed with PostgreSQL by scripts/postgres.sh): {error}")
    });
    assert!(
        output.status.success(),
        "restoring {dump} with psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn connect(schema: &str) -> PostgresStore {
    PostgresStore::builder(url())
        .schema(schema)
        .pool_size(4)
        .connect()
        .await
        .unwrap_or_else(|error| panic!("schema {schema}: {error}"))
}

#[tokio::test]
async fn a_postgres_dump_of_schema_3_restores_reads_back_and_keeps_the_contract() {
    if writing() {
        for (schema, with_events) in [(POSTGRES_SCHEMA, true), (POSTGRES_EMPTY_SCHEMA, false)] {
            postgres_common::drop_schema(schema).await;
            let store = connect(schema).await;
            if with_events {
                write_events(&store).await;
            }
        }
        // Dump them now (see the module docs), then run again without the variable.
        return;
    }
    restore(POSTGRES_FIXTURE, POSTGRES_SCHEMA).await;
    let store = connect(POSTGRES_SCHEMA).await;
    assert_holds_the_fixture(&store).await;

    conformance::run_contract(|| {
        Connecting(async {
            restore(POSTGRES_EMPTY_FIXTURE, POSTGRES_EMPTY_SCHEMA).await;
            connect(POSTGRES_EMPTY_SCHEMA).await
        })
    })
    .await;
}
