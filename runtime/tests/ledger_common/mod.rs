//! A projection the bus tests share (NATS and Kafka): it records every event it applies,
//! and a second application of one event fails its handler, so a duplicate shows.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{Projection, ProjectionError, Target};
use factum::store::{EventStore, SqliteStore};
use serde_json::json;

/// The store the tests append to, `events.sqlite3` in `dir`.
pub async fn open_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir.join("events.sqlite3")).await.unwrap()
}

/// Appends `count` events to each of `streams` streams `<prefix>-<n>` (of the stream type
/// `stream_type(n)`), the streams interleaved in batches of 5; returns the last position.
pub async fn append_interleaved(
    store: &SqliteStore,
    prefix: &str,
    streams: u64,
    count: u64,
    stream_type: impl Fn(u64) -> &'static str,
) -> u64 {
    let mut last = 0;
    for batch in 0..count.div_ceil(5) {
        for stream in 0..streams {
            let events: Vec<NewEvent> = (batch * 5..((batch + 1) * 5).min(count))
                .map(event)
                .collect();
            last = store
                .append(
                    &format!("{prefix}-{stream}"),
                    stream_type(stream),
                    factum::store::ExpectedVersion::Any,
                    events,
                )
                .await
                .unwrap()
                .last_position;
        }
    }
    last
}

/// The read-model directory `name` in `dir`.
pub async fn read_models(dir: &Path, name: &str) -> SqliteReadModel {
    SqliteReadModel::open(dir.join(name)).await.unwrap()
}

/// An event whose payload is `{"n": n}`.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Ticked",
        1,
        serde_json::value::to_raw_value(&json!({ "n": n })).unwrap(),
        Metadata::default(),
    )
}

/// Records every `Ticked` event it applies; a second application of one event fails the
/// handler (the primary key), so a duplicate would show as a parked event.
pub struct Ledger;

impl Projection for Ledger {
    const NAME: &'static str = "ledger";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Ticked"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE ledger (
                 position INTEGER PRIMARY KEY,
                 event_id TEXT NOT NULL UNIQUE,
                 stream TEXT NOT NULL,
                 version INTEGER NOT NULL
             )",
        )?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.execute(
            "INSERT INTO ledger (position, event_id, stream, version) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                event.position as i64,
                event.event_id.to_string(),
                event.stream_id,
                event.stream_version as i64
            ],
        )?;
        Ok(())
    }
}

/// The ledger's target.
pub const LEDGER: Target = Target {
    name: Ledger::NAME,
    version: Ledger::VERSION,
};

/// The ledger's rows (position, event id, stream, version), by position.
pub fn ledger_rows(read_models: &SqliteReadModel) -> Vec<(i64, String, String, i64)> {
    let connection =
        rusqlite::Connection::open(read_models.path_of(LEDGER)).expect("open the ledger");
    let mut statement = connection
        .prepare("SELECT position, event_id, stream, version FROM ledger ORDER BY position")
        .expect("query the ledger");
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .and_then(Iterator::collect)
        .expect("read the ledger")
}

/// The ledger's rows so far: none while its table does not exist (before the first
/// transaction, after a reset). Opened read-only: never creates the file.
pub fn applied(models: &SqliteReadModel) -> usize {
    let read_only = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(models.path_of(LEDGER), read_only)
        .and_then(|connection| {
            connection.query_row("SELECT count(*) FROM ledger", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map_or(0, |count| count as usize)
}

/// Runs `condition` every 20 ms until it holds; fails after `limit` (a liveness bound,
/// not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < limit,
            "{what}: not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
