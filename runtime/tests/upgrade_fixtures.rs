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
//!
//! The read models come the same way, as made by the code of commit 2af7e19 (2026-12-06),
//! before their schemas were versioned: a SQLite read-model directory (the catalog and
//! one version's file, with the projection's table, a checkpoint and a parked event) and
//! a PostgreSQL dump of the catalog schema `factum_read_models` with one version's schema
//! and its readers' views. The same variable writes the directory and fills the database
//! `factum_read_model_fixture` (a database of its own: the catalog schema's name is
//! fixed, and other tests share the main database's), which was then dumped with
//! `pg_dump --schema=factum_read_models --schema=fixture_tally --schema=fixture_tally__v1
//! --inserts --no-owner --no-privileges`. Each test opens them with today's code, finds
//! the data, and runs the projection on.
//!
//! A process manager's SQLite file comes the same way (commit 2af7e19, before the process
//! store was versioned): a manager that decided a command and could not send it, left
//! pending; written by [`write_sqlite_process_fixture`] run with that commit's code. The
//! test opens it with today's code, finds the instance and its pending command, and
//! sends it once.

mod postgres_common;

use std::path::{Path, PathBuf};

use chrono::DateTime;
use factum::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use factum::process::{
    CommandKind, DispatchContext, DispatchError, HandlerError, OutboxState, ProcessManager,
    ProcessRunner, ProcessStates, ProcessStatus, Reaction, Route,
};
use factum::projection::postgres::{PostgresReadModel, PostgresTx};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{
    Projection, ProjectionError, ProjectionRunner, ReadModel, Retry, Target, VersionState,
};
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
                tags: Vec::new(),
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
        // Written before actors had kinds and commands tenants: they read back absent.
        ..Metadata::default()
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
    // The events stored before events were hashed were hashed when the file was migrated.
    let verification = factum::integrity::TamperEvident::verify(&store)
        .await
        .unwrap();
    assert!(verification.is_intact(), "{verification}");
    assert!(verification.events > 0);

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
    psql_file(url(), dump).await;
}

/// Runs the fixture `dump` with `psql -f` on the database at `url`, stopping at the
/// first error.
async fn psql_file(url: String, dump: &str) {
    let path = fixture(dump);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("psql")
            .arg(url)
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

// Read models made before their schemas were versioned.

const SQLITE_READ_MODELS_FIXTURE: &str = "sqlite-read-models-unversioned";
const POSTGRES_READ_MODELS_FIXTURE: &str = "postgres-read-models-unversioned.sql";
/// The database the PostgreSQL read-model fixture is written to and restored into.
const READ_MODEL_DATABASE: &str = "factum_read_model_fixture";
/// The fixture's projection, and its one version.
const TALLY: Target = Target {
    name: "fixture_tally",
    version: 1,
};

/// The events the read-model fixtures were built from, then the two the tests add: the
/// second is poison, parked by the fixture's run.
fn tally_events() -> Vec<(&'static str, NewEvent)> {
    let event = |n: u128, poison: bool| NewEvent {
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_1000 + n),
        name: "Counted".to_owned(),
        schema_version: 1,
        payload: serde_json::value::to_raw_value(&json!({ "poison": poison })).unwrap(),
        timestamp: DateTime::from_timestamp(1_700_000_100 + n as i64, 0).unwrap(),
        metadata: Metadata::default(),
        tags: Vec::new(),
    };
    vec![
        ("tally-a", event(1, false)),
        ("tally-a", event(2, true)),
        ("tally-b", event(3, false)),
        ("tally-a", event(4, false)),
        ("tally-c", event(5, false)),
    ]
}

/// How many of [`tally_events`] the fixtures saw.
const TALLIED: usize = 3;

async fn append_tally_events<S: EventStore>(store: &S, events: &[(&'static str, NewEvent)]) {
    for (stream_id, event) in events {
        store
            .append(
                stream_id,
                "Tally",
                ExpectedVersion::Any,
                vec![event.clone()],
            )
            .await
            .unwrap();
    }
}

/// Counts `Counted` events per stream in the table `tally`; refuses poison.
struct SqliteTally;

impl Projection for SqliteTally {
    const NAME: &'static str = TALLY.name;
    const VERSION: u32 = TALLY.version;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch("CREATE TABLE tally (stream TEXT PRIMARY KEY, n INTEGER NOT NULL)")?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        if event.payload.get().contains("\"poison\":true") {
            return Err(ProjectionError::msg("the tally refuses poison"));
        }
        tx.execute(
            "INSERT INTO tally (stream, n) VALUES (?1, 1)
             ON CONFLICT (stream) DO UPDATE SET n = n + 1",
            [&event.stream_id],
        )?;
        Ok(())
    }
}

/// [`SqliteTally`] on PostgreSQL.
struct PostgresTally;

impl Projection for PostgresTally {
    const NAME: &'static str = TALLY.name;
    const VERSION: u32 = TALLY.version;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = PostgresTx;

    async fn setup(&mut self, tx: &mut PostgresTx) -> Result<(), ProjectionError> {
        tx.batch_execute("CREATE TABLE tally (stream TEXT PRIMARY KEY, n BIGINT NOT NULL)")
            .await?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut PostgresTx,
    ) -> Result<(), ProjectionError> {
        if event.payload.get().contains("\"poison\":true") {
            return Err(ProjectionError::msg("the tally refuses poison"));
        }
        tx.execute(
            "INSERT INTO tally (stream, n) VALUES ($1, 1)
             ON CONFLICT (stream) DO UPDATE SET n = tally.n + 1",
            &[&event.stream_id],
        )
        .await?;
        Ok(())
    }
}

/// A runner that parks the poison event after two tries.
fn tally_runner<S: EventStore + 'static>(store: S) -> ProjectionRunner<S> {
    ProjectionRunner::new(store).retry(Retry::new(2, std::time::Duration::from_millis(1)))
}

/// The read models hold what the fixture's run left: version 1 active, its checkpoint
/// at the third event, the poison event parked.
async fn assert_holds_the_tally<M: ReadModel>(read_models: &M) {
    let versions = read_models.versions(TALLY.name).await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(
        (
            versions[0].version,
            versions[0].state,
            versions[0].checkpoint,
            versions[0].parked
        ),
        (1, VersionState::Active, TALLIED as u64, 1)
    );
    assert_eq!(read_models.checkpoint(TALLY).await.unwrap(), Some(3));
    let parked = read_models.parked(TALLY).await.unwrap();
    assert_eq!(parked.len(), 1);
    let (stream_id, poison) = &tally_events()[1];
    assert_eq!(
        (
            parked[0].event.position,
            parked[0].event.stream_id.as_str(),
            parked[0].event.event_id,
            parked[0].event.payload.get(),
            parked[0].attempts
        ),
        (2, *stream_id, poison.event_id, poison.payload.get(), 2)
    );
    assert!(
        parked[0].error.contains("the tally refuses poison"),
        "{}",
        parked[0].error
    );
}

/// The rows of a tally, by stream.
type Tally = Vec<(String, i64)>;

fn tally(rows: &[(&str, i64)]) -> Tally {
    rows.iter()
        .map(|(stream, n)| ((*stream).to_owned(), *n))
        .collect()
}

/// The version recorded in a SQLite file's version table `table`, if it has one.
fn recorded_sqlite_version(path: &Path, table: &str) -> Option<(i64, String)> {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .query_row(
            &format!("SELECT version, description FROM {table} ORDER BY version DESC LIMIT 1"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ok()
}

fn sqlite_tally(read_models_reader: &rusqlite::Connection) -> Tally {
    read_models_reader
        .prepare("SELECT stream, n FROM tally ORDER BY stream")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn write_sqlite_read_models() {
    let dir = fixture(SQLITE_READ_MODELS_FIXTURE);
    let _ = std::fs::remove_dir_all(&dir);
    let work = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(work.path().join("events.sqlite3"))
        .await
        .unwrap();
    append_tally_events(&store, &tally_events()[..TALLIED]).await;
    let read_models = SqliteReadModel::open(&dir).await.unwrap();
    let runner = tally_runner(store);
    let mut projector = runner.projector(SqliteTally, read_models.clone());
    let caught_up = runner.catch_up_and_activate(&mut projector).await.unwrap();
    assert_eq!((caught_up.applied, caught_up.parked), (2, 1));
    drop((projector, read_models, runner));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            name.to_string_lossy().ends_with(".sqlite3"),
            "only whole files are left (the write-ahead logs were folded in): {name:?}"
        );
    }
}

#[tokio::test]
async fn a_sqlite_read_model_directory_made_before_versioning_opens_and_runs_on() {
    if writing() {
        write_sqlite_read_models().await;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("read");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixture(SQLITE_READ_MODELS_FIXTURE)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let catalog = dir.join("catalog.sqlite3");
    let version_file = dir.join("fixture_tally.v1.sqlite3");
    assert_eq!(
        recorded_sqlite_version(&catalog, "factum_catalog_version"),
        None,
        "the fixture is unversioned"
    );

    let read_models = SqliteReadModel::open(&dir)
        .await
        .expect("the directory opens");
    assert_eq!(
        recorded_sqlite_version(&catalog, "factum_catalog_version"),
        Some((1, "the versions table".to_owned())),
        "the catalog is adopted at version 1"
    );
    assert_holds_the_tally(&read_models).await;
    assert_eq!(
        recorded_sqlite_version(&version_file, "factum_read_model_version"),
        Some((2, "partition offsets".to_owned())),
        "the version's file is adopted at version 1, then migrated"
    );
    let reader = read_models.reader(TALLY.name).await.unwrap();
    assert_eq!(
        sqlite_tally(&reader),
        tally(&[("tally-a", 1), ("tally-b", 1)])
    );

    // The projection runs on from its checkpoint, in the same file.
    let store = SqliteStore::open(work.path().join("events.sqlite3"))
        .await
        .unwrap();
    append_tally_events(&store, &tally_events()).await;
    let runner = tally_runner(store);
    let mut projector = runner.projector(SqliteTally, read_models.clone());
    let caught_up = runner.catch_up_and_activate(&mut projector).await.unwrap();
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (2, 0, 5)
    );
    assert_eq!(
        sqlite_tally(&reader),
        tally(&[("tally-a", 2), ("tally-b", 1), ("tally-c", 1)])
    );
    assert_eq!(read_models.parked(TALLY).await.unwrap().len(), 1);

    // The adopted directory keeps the read-model and the process-store contracts.
    let other = SqliteReadModel::open(&dir).await.unwrap();
    conformance::read_model::run_read_model_contract(read_models.clone(), other).await;
    conformance::process::run_process_contract(fresh_sqlite_stores(work.path()), read_models).await;
}

async fn tally_store(url: &str) -> PostgresStore {
    PostgresStore::builder(url)
        .schema("fixture_events")
        .pool_size(2)
        .connect()
        .await
        .unwrap()
}

async fn postgres_tally(read_models: &PostgresReadModel) -> Tally {
    read_models
        .client()
        .await
        .unwrap()
        .query(
            "SELECT stream, n FROM fixture_tally.tally ORDER BY stream",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn a_postgres_read_model_dump_made_before_versioning_restores_and_runs_on() {
    let url = postgres_common::fresh_database(READ_MODEL_DATABASE).await;
    if writing() {
        let store = tally_store(&url).await;
        append_tally_events(&store, &tally_events()[..TALLIED]).await;
        let read_models = PostgresReadModel::connect(&url).await.unwrap();
        let runner = tally_runner(store);
        let mut projector = runner.projector(PostgresTally, read_models.clone());
        let caught_up = runner.catch_up_and_activate(&mut projector).await.unwrap();
        assert_eq!((caught_up.applied, caught_up.parked), (2, 1));
        // Dump it now (see the module docs), then run again without the variable.
        return;
    }
    psql_file(url.clone(), POSTGRES_READ_MODELS_FIXTURE).await;
    let read_models = PostgresReadModel::connect(&url)
        .await
        .expect("the restored catalog opens");
    let client = read_models.client().await.unwrap();
    let recorded: Vec<(i32, String)> = client
        .query(
            "SELECT version, description FROM factum_read_models.factum_catalog_migrations \
             ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        recorded,
        [
            (1, "versions and parked tables".to_owned()),
            (2, "partition offsets".to_owned()),
            (3, "partition leases".to_owned())
        ],
        "the catalog is adopted at version 1, then migrated"
    );
    assert_holds_the_tally(&read_models).await;
    assert_eq!(
        postgres_tally(&read_models).await,
        tally(&[("tally-a", 1), ("tally-b", 1)])
    );

    // The projection runs on from its checkpoint, in the same schema.
    let store = tally_store(&url).await;
    append_tally_events(&store, &tally_events()).await;
    let runner = tally_runner(store);
    let mut projector = runner.projector(PostgresTally, read_models.clone());
    let caught_up = runner.catch_up_and_activate(&mut projector).await.unwrap();
    assert_eq!(
        (caught_up.applied, caught_up.parked, caught_up.checkpoint),
        (2, 0, 5)
    );
    assert_eq!(
        postgres_tally(&read_models).await,
        tally(&[("tally-a", 2), ("tally-b", 1), ("tally-c", 1)])
    );
    assert_eq!(read_models.parked(TALLY).await.unwrap().len(), 1);

    // The adopted catalog keeps the read-model and the process-store contracts.
    let other = PostgresReadModel::connect(&url).await.unwrap();
    conformance::read_model::run_read_model_contract(read_models.clone(), other).await;
    let counter = std::sync::atomic::AtomicU32::new(0);
    conformance::process::run_process_contract(
        || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let url = url.clone();
            Connecting(Box::pin(async move {
                PostgresStore::builder(url)
                    .schema(format!("contract_{n}"))
                    .connect()
                    .await
                    .unwrap()
            })
                as std::pin::Pin<Box<dyn Future<Output = PostgresStore>>>)
        },
        read_models,
    )
    .await;
}

// A process manager's file, made before the process store was versioned: the commit
// 2af7e19 ran the process tables' DDL in every transaction and recorded no version.

/// The directory of the process-store fixture: `events.sqlite3` and `read/`.
const SQLITE_PROCESS_FIXTURE: &str = "sqlite-process-unversioned";

/// What [`Payments`] dispatches: pay for an order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Pay {
    order: String,
}

/// One order's payment, between events.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Due {
    order: String,
}

/// Pays for each order that falls due; ends once paid. With `bank_down` every dispatch
/// fails, which leaves the command pending.
struct Payments {
    bank_down: bool,
    paid: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl ProcessManager for Payments {
    const NAME: &'static str = "fixture_payments";
    const EVENTS: &'static [&'static str] = &["PaymentDue"];
    type State = Due;
    type Command = Pay;

    fn route(&self, event: &RecordedEvent) -> Result<Route, HandlerError> {
        let due: Due = serde_json::from_str(event.payload.get())?;
        Ok(Route::Start(due.order))
    }

    async fn handle(
        &self,
        state: &mut Due,
        event: &RecordedEvent,
    ) -> Result<Reaction<Pay>, HandlerError> {
        *state = serde_json::from_str(event.payload.get())?;
        Ok(Reaction::none()
            .dispatch(Pay {
                order: state.order.clone(),
            })
            .complete())
    }

    async fn dispatch(
        &self,
        command: &Pay,
        context: &DispatchContext,
    ) -> Result<(), DispatchError> {
        if self.bank_down {
            return Err(DispatchError::Failed {
                command: "Pay".into(),
                source: "the bank is down".into(),
            });
        }
        self.paid
            .lock()
            .unwrap()
            .push((command.order.clone(), context.redelivery));
        Ok(())
    }
}

fn payment_due() -> NewEvent {
    NewEvent {
        event_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0200),
        name: "PaymentDue".to_owned(),
        schema_version: 1,
        payload: serde_json::value::to_raw_value(&json!({ "order": "o-1" })).unwrap(),
        timestamp: DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        metadata: Metadata::default(),
        tags: Vec::new(),
    }
}

/// Writes the fixture (with the code of 2af7e19): a payment fell due, the manager decided
/// to pay, and the bank was down, so the command is left pending in the outbox.
async fn write_sqlite_process_fixture() {
    let dir = fixture(SQLITE_PROCESS_FIXTURE);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("events.sqlite3")).await.unwrap();
    store
        .append(
            "Payment-o-1",
            "Payment",
            ExpectedVersion::NoStream,
            vec![payment_due()],
        )
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.join("read")).await.unwrap();
    let manager = Payments {
        bank_down: true,
        paid: Default::default(),
    };
    let mut driver = factum::process::sqlite::ProcessDriver::new(manager, read_models.clone())
        .retry(Retry::never());
    let events = store.read_all(0, 10).await.unwrap();
    let stopped = driver.apply(&events, 1).await;
    assert!(stopped.is_err(), "the dispatch fails: {stopped:?}");
    drop((driver, read_models, store));
}

#[tokio::test]
async fn a_sqlite_process_manager_file_made_before_versioning_opens_and_finishes_its_work() {
    if writing() {
        write_sqlite_process_fixture().await;
    }
    let work = tempfile::tempdir().unwrap();
    copy_dir(&fixture(SQLITE_PROCESS_FIXTURE), work.path());
    let file = work.path().join("read/fixture_payments.v0.sqlite3");
    assert_eq!(
        recorded_sqlite_version(&file, "factum_process_version"),
        None,
        "the fixture is unversioned"
    );

    let store = SqliteStore::open(work.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(work.path().join("read"))
        .await
        .expect("the directory opens");
    let states = ProcessStates::<Payments, _>::new(read_models.clone());
    let instance = states.get("o-1").await.unwrap().expect("the instance");
    assert_eq!(instance.status, ProcessStatus::Running);
    assert_eq!(
        instance.state,
        Due {
            order: "o-1".into()
        }
    );
    let history = states.history("o-1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].kind, history[0].state),
        (CommandKind::Step, OutboxState::Pending)
    );
    let pending = history[0].command_id;

    // The bank is back: the pending command is sent again, once, as a redelivery.
    let paid = std::sync::Arc::default();
    let manager = Payments {
        bank_down: false,
        paid: std::sync::Arc::clone(&paid),
    };
    let runner = ProcessRunner::new(store);
    let mut driver = runner.driver(manager, read_models.clone());
    assert_eq!(runner.catch_up(&mut driver).await.unwrap(), 1);
    assert_eq!(*paid.lock().unwrap(), [("o-1".to_owned(), true)]);
    let instance = states.get("o-1").await.unwrap().expect("the instance");
    assert_eq!(instance.status, ProcessStatus::Completed);
    let history = states.history("o-1").await.unwrap();
    assert_eq!(
        (history.len(), history[0].command_id, history[0].state),
        (1, pending, OutboxState::Done),
        "the command decided before the upgrade, now done"
    );
    assert_eq!(
        recorded_sqlite_version(&file, "factum_process_version"),
        Some((2, "trace context of outbox commands".to_owned())),
        "the process store is adopted at version 1, then migrated"
    );
    assert_eq!(
        recorded_sqlite_version(&file, "factum_read_model_version"),
        Some((2, "partition offsets".to_owned())),
        "beside the read-model tables of the same file, adopted then migrated"
    );

    // The adopted directory keeps the process-store contract.
    conformance::process::run_process_contract(fresh_sqlite_stores(work.path()), read_models).await;
}

/// Copies the files of `from` (and of its folders) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A fresh SQLite store file in `dir` per call, for the conformance suites.
fn fresh_sqlite_stores(
    dir: &Path,
) -> impl FnMut() -> Connecting<std::pin::Pin<Box<dyn Future<Output = SqliteStore>>>> {
    let dir = dir.to_owned();
    let mut made = 0;
    move || {
        made += 1;
        let path = dir.join(format!("contract-{made}.sqlite3"));
        Connecting(Box::pin(
            async move { SqliteStore::open(&path).await.unwrap() },
        ))
    }
}
