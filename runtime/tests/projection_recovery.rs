//! A spawned projection outlives store hiccups: a read of the log that fails (a connection
//! reset, a busy database) is retried with backoff, the failure kept for
//! `ProjectionHandle::last_error`, and the projection catches up once the store answers
//! again. A failure that retrying cannot cure — a poison event with `OnPoison::Stop` —
//! still ends it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use factum::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{
    OnPoison, Projection, ProjectionError, ProjectionRunner, Retry, RunnerError,
};
use factum::store::{
    AppendOutcome, EventStore, ExpectedVersion, FilteredPage, Head, SqliteStore, StoreError,
    VisitError,
};

/// A `SqliteStore` whose filtered reads of the log fail while `failures` is above zero
/// (each failure counts it down).
#[derive(Clone)]
struct Flaky {
    inner: SqliteStore,
    failures: Arc<AtomicU32>,
    reads: Arc<AtomicU32>,
}

impl Flaky {
    fn new(inner: SqliteStore) -> Self {
        Self {
            inner,
            failures: Arc::new(AtomicU32::new(0)),
            reads: Arc::new(AtomicU32::new(0)),
        }
    }

    fn fail_next(&self, times: u32) {
        self.failures.store(times, Ordering::SeqCst);
    }

    fn remaining(&self) -> u32 {
        self.failures.load(Ordering::SeqCst)
    }
}

impl EventStore for Flaky {
    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: factum::store::CommandRecord,
    ) -> Result<factum::store::CommandAppend, StoreError> {
        self.inner
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn command_outcome(
        &self,
        command_id: factum::uuid::Uuid,
    ) -> Result<Option<factum::store::CommandOutcome>, StoreError> {
        self.inner.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_commands(recorded_before).await
    }

    fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        self.inner.append(stream_id, stream_type, expected, events)
    }

    fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.read_stream(stream_id, from_version, limit)
    }

    fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        visit: F,
    ) -> impl Future<Output = Result<(), VisitError<E>>> + Send
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        self.inner
            .for_each_in_stream(stream_id, from_version, visit)
    }

    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        self.inner.read_all(after, limit)
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let failed = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failed {
            return Err(StoreError::Backend("connection reset by peer".into()));
        }
        self.inner.read_all_filtered(after, limit, names).await
    }

    fn head(&self) -> impl Future<Output = Result<Option<Head>, StoreError>> + Send {
        self.inner.head()
    }

    fn wait_for_events(
        &self,
        after: u64,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.wait_for_events(after, timeout)
    }

    fn stream_version(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.inner.stream_version(stream_id)
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.save_snapshot(snapshot)
    }

    fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner.load_snapshot(stream_id)
    }
}

/// Counts `Counted` events per stream; one whose payload says `poison` always fails.
struct Counts;

impl Projection for Counts {
    const NAME: &'static str = "counts";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["Counted"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch("CREATE TABLE counts (stream TEXT PRIMARY KEY, n INTEGER NOT NULL);")?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        let payload: serde_json::Value = serde_json::from_str(event.payload.get())?;
        if payload["poison"].as_bool() == Some(true) {
            return Err(ProjectionError::msg("poisoned"));
        }
        tx.execute(
            "INSERT INTO counts (stream, n) VALUES (?1, 1)
             ON CONFLICT (stream) DO UPDATE SET n = n + 1",
            [&event.stream_id],
        )?;
        Ok(())
    }
}

fn counted(poison: bool) -> NewEvent {
    NewEvent::new(
        "Counted",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({ "poison": poison })).unwrap(),
        Metadata::default(),
    )
}

async fn append(store: &impl EventStore, stream: &str, events: Vec<NewEvent>) -> u64 {
    store
        .append(stream, "Counter", ExpectedVersion::Any, events)
        .await
        .unwrap()
        .last_position
}

async fn count(read_models: &SqliteReadModel, stream: &str) -> Option<i64> {
    use rusqlite::OptionalExtension;
    let reader = read_models.reader("counts").await.unwrap();
    reader
        .query_row("SELECT n FROM counts WHERE stream = ?1", [stream], |row| {
            row.get(0)
        })
        .optional()
        .unwrap()
}

#[tokio::test]
async fn a_spawned_projection_retries_store_failures_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = Flaky::new(
        SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .unwrap(),
    );
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    append(&store, "a", vec![counted(false), counted(false)]).await;

    let runner = ProjectionRunner::new(store.clone()).idle_wait(Duration::from_millis(20));
    let mut handle = runner.spawn(Counts, read_models.clone());
    handle.wait_for(2).await.unwrap();
    assert!(handle.last_error().is_none());

    // The store fails the next reads: the projection keeps its task and says why it waits.
    store.fail_next(3);
    let last = append(&store, "a", vec![counted(false)]).await;
    let error = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(error) = handle.last_error() {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the failure is visible while it retries");
    // Its cause is its source, whole.
    let error = factum::error::Report(&*error).to_string();
    assert!(
        error.contains("connection reset by peer"),
        "last_error: {error}"
    );
    assert!(
        !handle.is_finished(),
        "a store failure ended the projection"
    );

    // Once the store answers again, it catches up.
    let reached = tokio::time::timeout(Duration::from_secs(10), handle.wait_for(last))
        .await
        .expect("the projection caught up after the store recovered")
        .unwrap();
    assert!(reached >= last);
    assert_eq!(store.remaining(), 0, "every failure was retried");
    assert_eq!(count(&read_models, "a").await, Some(3));
    // The error stays for diagnostics after recovery.
    assert!(handle.last_error().is_some());

    // And it keeps following the log live.
    let later = append(&store, "b", vec![counted(false)]).await;
    tokio::time::timeout(Duration::from_secs(5), handle.wait_for(later))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count(&read_models, "b").await, Some(1));
    handle.stop().await.unwrap();
}

#[tokio::test]
async fn a_stop_request_ends_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = Flaky::new(
        SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .unwrap(),
    );
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    append(&store, "a", vec![counted(false)]).await;
    // Fails for good: the backoff grows to seconds.
    store.fail_next(u32::MAX);

    let runner = ProjectionRunner::new(store.clone());
    let handle = runner.spawn(Counts, read_models.clone());
    tokio::time::timeout(Duration::from_secs(5), async {
        while store.reads.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("it kept retrying");
    assert!(!handle.is_finished());
    assert!(handle.last_error().is_some());
    tokio::time::timeout(Duration::from_secs(1), handle.stop())
        .await
        .expect("a stop request ends the backoff")
        .unwrap();
}

#[tokio::test]
async fn a_poison_event_with_on_poison_stop_still_ends_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = Flaky::new(
        SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .unwrap(),
    );
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .unwrap();
    let last = append(
        &store,
        "a",
        vec![counted(false), counted(true), counted(false)],
    )
    .await;

    let runner = ProjectionRunner::new(store.clone())
        .retry(Retry::new(2, Duration::from_millis(1)))
        .on_poison(OnPoison::Stop)
        .idle_wait(Duration::from_millis(20));
    let mut handle = runner.spawn(Counts, read_models.clone());
    let error = tokio::time::timeout(Duration::from_secs(5), handle.wait_for(last))
        .await
        .expect("the poison event ended the task")
        .unwrap_err();
    assert!(
        matches!(error, RunnerError::Poisoned { position: 2, .. }),
        "{error}"
    );
    assert!(handle.is_finished());
    // Not retried: ending the task is not a transient failure.
    assert!(handle.last_error().is_none());
}
