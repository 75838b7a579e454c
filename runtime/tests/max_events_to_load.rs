//! The repository's max events to load, on the memory store and on a SQLite file: a load
//! over the limit is refused with a typed error (a refused command writes nothing) or
//! leaves a snapshot so the next load replays at most the limit; a load of exactly the
//! limit, or under it, changes nothing. The events are appended by commands, as in use,
//! and what a load reads is counted by a store that wraps the real one.
//!
//! Run with `cargo test -p factum --features sqlite --test max_events_to_load`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::envelope::Snapshot;
use factum::prelude::*;
use factum::repository::{MaxEventsToLoad, SnapshotPolicy, SnapshotsUnsupported};
use factum::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, CommandSession, CommandWrite,
    SqliteStore, VisitError,
};

#[event(name = "Ticked", version = 1)]
#[derive(Debug, PartialEq)]
pub struct Ticked {
    pub n: u64,
}

#[derive(Events, Debug, PartialEq)]
pub enum CounterEvent {
    Ticked(Ticked),
}

#[command]
pub struct Tick {
    #[aggregate_id]
    pub id: String,
}

/// Always rejected: a command that loads and writes nothing.
#[command]
pub struct Halt {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum CounterCommand {
    Tick(Tick),
    Halt(Halt),
}

#[derive(Debug, thiserror::Error)]
#[error("halted")]
pub struct Halted;

/// Takes snapshots.
#[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counter {
    ticks: u64,
}

#[aggregate(name = "Counter", events = CounterEvent, commands = CounterCommand, error = Halted, snapshot = 1)]
impl Counter {
    #[handle]
    fn tick(&self, _command: Tick) -> Result<Ticked, Halted> {
        Ok(Ticked { n: self.ticks + 1 })
    }

    #[handle]
    fn halt(&self, _command: Halt) -> Result<(), Halted> {
        Err(Halted)
    }

    #[apply]
    fn ticked(&mut self, event: &Ticked) {
        self.ticks = event.n;
    }
}

/// Takes no snapshots.
#[derive(Default, Debug, PartialEq)]
pub struct Plain {
    ticks: u64,
}

#[aggregate(name = "Plain", events = CounterEvent, commands = CounterCommand, error = Halted)]
impl Plain {
    #[handle]
    fn tick(&self, _command: Tick) -> Result<Ticked, Halted> {
        Ok(Ticked { n: self.ticks + 1 })
    }

    #[handle]
    fn halt(&self, _command: Halt) -> Result<(), Halted> {
        Err(Halted)
    }

    #[apply]
    fn ticked(&mut self, event: &Ticked) {
        self.ticks = event.n;
    }
}

/// A store that counts the events its loads visit (plain loads and commands' sessions),
/// passing every call on to the real store.
#[derive(Clone)]
struct Counting<S> {
    inner: S,
    visited: Arc<AtomicU64>,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            visited: Arc::default(),
        }
    }

    /// The events visited since the last call.
    fn take_visited(&self) -> u64 {
        self.visited.swap(0, Ordering::SeqCst)
    }
}

impl<S: EventStore> EventStore for Counting<S> {
    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.inner
            .append(stream_id, stream_type, expected, events)
            .await
    }

    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        self.inner
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn run_command<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        from_version: u64,
        command: CommandRecord,
        mut visit: V,
        decide: D,
    ) -> Result<CommandSession<E>, E>
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<CommandWrite, E> + Send + 'static,
    {
        let visited = Arc::clone(&self.visited);
        self.inner
            .run_command(
                stream_id,
                stream_type,
                from_version,
                command,
                move |record| {
                    visited.fetch_add(1, Ordering::SeqCst);
                    visit(record)
                },
                decide,
            )
            .await
    }

    async fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_commands(recorded_before).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), VisitError<E>>
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        self.inner
            .for_each_in_stream(stream_id, from_version, |record| {
                self.visited.fetch_add(1, Ordering::SeqCst);
                visit(record)
            })
            .await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_id).await
    }
}

const STREAM: &str = "Counter-c-1";

/// Appends `count` events to counter `c-1` by commands, through a repository without a
/// limit or snapshots.
async fn tick<S: EventStore + Clone>(store: &S, count: u64) {
    let repository = Repository::<Counter, _>::new(store.clone());
    for _ in 0..count {
        repository
            .execute(Tick { id: "c-1".into() })
            .await
            .expect("a tick");
    }
}

/// The version the stream's snapshot was taken at, if it has one.
async fn snapshot_version<S: EventStore>(store: &S) -> Option<u64> {
    store
        .load_snapshot(STREAM)
        .await
        .expect("load the snapshot")
        .map(|snapshot| snapshot.stream_version)
}

/// A store on a new SQLite file, with the directory that holds it.
async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open the SQLite store");
    (dir, store)
}

/// Each check runs on the memory store and on a SQLite file.
macro_rules! on_both_stores {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(factum::store::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (_dir, store) = super::sqlite().await;
                    super::$check(store).await;
                }
            )*
        }
    };
}

on_both_stores!(
    refuse_mode_refuses_loads_and_commands_over_the_limit,
    refuse_mode_counts_from_the_snapshot_the_load_started_from,
    snapshot_mode_leaves_a_snapshot_after_a_load_over_the_limit,
    snapshot_mode_leaves_a_snapshot_after_a_command_over_the_limit,
);

fn limited<A: Aggregate<Services = ()>, S: EventStore>(
    store: S,
    max: MaxEventsToLoad,
) -> Repository<A, S> {
    Repository::<A, S>::new(store)
        .with_max_events_to_load(max)
        .expect("the aggregate can be limited so")
}

async fn refuse_mode_refuses_loads_and_commands_over_the_limit<S: EventStore + Clone>(store: S) {
    let store = Counting::new(store);
    let counters = limited::<Counter, _>(store.clone(), MaxEventsToLoad::refuse(10));

    // Exactly the limit loads, and so does a command on it (its load replays 10).
    tick(&store, 10).await;
    store.take_visited();
    let loaded = counters.load("c-1").await.expect("10 events load");
    assert_eq!((loaded.version, loaded.state.ticks), (10, 10));
    assert_eq!(store.take_visited(), 10);
    let executed = counters
        .execute(Tick { id: "c-1".into() })
        .await
        .expect("a command whose load replays 10 events runs");
    assert_eq!(executed.version, 11);
    store.take_visited();

    // 11 events: over the limit, refused after reading at most the 11th.
    tick(&store, 1).await;
    store.take_visited();
    let refused = counters.load("c-1").await.unwrap_err();
    assert_eq!(store.take_visited(), 11, "the load stopped at the limit");
    let RepositoryError::MaxEventsToLoadExceeded {
        stream_id,
        events,
        limit,
    } = &refused
    else {
        panic!("expected the max events to load refusal, got {refused:?}");
    };
    assert_eq!((stream_id.as_str(), *events, *limit), (STREAM, 12, 10));
    assert_eq!(
        refused.to_string(),
        "stream `Counter-c-1`: loading it would replay 12 events past its snapshot, over the \
         max events to load of 10; take a snapshot of it (`Repository::with_snapshots`, or \
         `WhenExceeded::Snapshot`) or raise the limit"
    );

    // A command loads first: refused the same, and nothing is written, not even its record.
    let ctx = CommandContext::new();
    let refused = counters
        .execute_with(Tick { id: "c-1".into() }, ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(store.take_visited(), 11, "the command's load stopped too");
    assert!(
        matches!(
            &refused,
            RepositoryError::MaxEventsToLoadExceeded { stream_id, events: 12, limit: 10 }
                if stream_id == STREAM
        ),
        "{refused:?}"
    );
    assert_eq!(store.stream_version(STREAM).await.unwrap(), Some(12));
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 12);
    assert!(
        store
            .command_outcome(ctx.command_id)
            .await
            .unwrap()
            .is_none(),
        "a refused command is not recorded"
    );
    assert_eq!(snapshot_version(&store).await, None, "refusing takes none");

    // The limit is the repository's: one without it loads the stream whole.
    let unlimited = Repository::<Counter, _>::new(store.clone());
    assert_eq!(unlimited.load("c-1").await.unwrap().version, 12);

    // An aggregate that takes no snapshots can be limited by refusal.
    let plain = limited::<Plain, _>(store.clone(), MaxEventsToLoad::refuse(0));
    assert_eq!(
        plain.load("p-1").await.unwrap().version,
        0,
        "nothing to replay"
    );
    plain
        .execute(Tick { id: "p-1".into() })
        .await
        .expect("a new stream replays nothing");
    assert!(matches!(
        plain.load("p-1").await,
        Err(RepositoryError::MaxEventsToLoadExceeded {
            events: 1,
            limit: 0,
            ..
        })
    ));
}

async fn refuse_mode_counts_from_the_snapshot_the_load_started_from<S: EventStore + Clone>(
    store: S,
) {
    let store = Counting::new(store);
    // Snapshots every 5 events, so after 12 the load starts at 10 and replays 2.
    let counters = limited::<Counter, _>(store.clone(), MaxEventsToLoad::refuse(3))
        .with_snapshots(SnapshotPolicy::every(5));
    let snapshotting =
        Repository::<Counter, _>::new(store.clone()).with_snapshots(SnapshotPolicy::every(5));
    for _ in 0..12 {
        snapshotting
            .execute(Tick { id: "c-1".into() })
            .await
            .expect("a tick");
    }
    assert_eq!(snapshot_version(&store).await, Some(10));
    store.take_visited();
    let loaded = counters
        .load("c-1")
        .await
        .expect("2 events past the snapshot");
    assert_eq!((loaded.version, loaded.state.ticks), (12, 12));
    assert_eq!(store.take_visited(), 2);

    // Without loading from snapshots, the same stream is 12 events: refused.
    let whole = limited::<Counter, _>(store.clone(), MaxEventsToLoad::refuse(3));
    assert!(matches!(
        whole.load("c-1").await,
        Err(RepositoryError::MaxEventsToLoadExceeded {
            events: 12,
            limit: 3,
            ..
        })
    ));
}

async fn snapshot_mode_leaves_a_snapshot_after_a_load_over_the_limit<S: EventStore + Clone>(
    store: S,
) {
    let store = Counting::new(store);
    let counters = limited::<Counter, _>(store.clone(), MaxEventsToLoad::snapshot(10));

    // Exactly the limit: loaded, no snapshot.
    tick(&store, 10).await;
    store.take_visited();
    assert_eq!(counters.load("c-1").await.unwrap().version, 10);
    assert_eq!(store.take_visited(), 10);
    assert_eq!(snapshot_version(&store).await, None, "10 is not over 10");

    // Over it: loaded whole, then a snapshot of what was loaded.
    tick(&store, 2).await;
    store.take_visited();
    let loaded = counters.load("c-1").await.unwrap();
    assert_eq!((loaded.version, loaded.state.ticks), (12, 12));
    assert_eq!(store.take_visited(), 12);
    let snapshot = store
        .load_snapshot(STREAM)
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.stream_version, 12);
    assert_eq!(
        Counter::from_snapshot(&snapshot.state).unwrap().unwrap(),
        loaded.state
    );

    // The next load starts there; under the limit, nothing changes.
    assert_eq!(counters.load("c-1").await.unwrap(), loaded);
    assert_eq!(store.take_visited(), 0);
    tick(&store, 10).await;
    store.take_visited();
    assert_eq!(counters.load("c-1").await.unwrap().version, 22);
    assert_eq!(store.take_visited(), 10, "≤ the limit past the snapshot");
    assert_eq!(
        snapshot_version(&store).await,
        Some(12),
        "not renewed under it"
    );

    // 11 past the snapshot: renewed.
    tick(&store, 1).await;
    store.take_visited();
    assert_eq!(counters.load("c-1").await.unwrap().version, 23);
    assert_eq!(store.take_visited(), 11);
    assert_eq!(snapshot_version(&store).await, Some(23));
    assert_eq!(counters.load("c-1").await.unwrap().state.ticks, 23);
    assert_eq!(store.take_visited(), 0);
}

async fn snapshot_mode_leaves_a_snapshot_after_a_command_over_the_limit<S: EventStore + Clone>(
    store: S,
) {
    let store = Counting::new(store);
    let counters = limited::<Counter, _>(store.clone(), MaxEventsToLoad::snapshot(10));
    tick(&store, 11).await;
    assert_eq!(snapshot_version(&store).await, None);

    // A command whose load replays 11: the snapshot holds the state after its event.
    store.take_visited();
    let executed = counters.execute(Tick { id: "c-1".into() }).await.unwrap();
    assert_eq!(store.take_visited(), 11);
    assert_eq!((executed.version, executed.state.ticks), (12, 12));
    let snapshot = store
        .load_snapshot(STREAM)
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.stream_version, 12);
    assert_eq!(
        Counter::from_snapshot(&snapshot.state).unwrap().unwrap(),
        executed.state
    );
    counters.execute(Tick { id: "c-1".into() }).await.unwrap();
    assert_eq!(
        store.take_visited(),
        0,
        "the next command starts at the snapshot"
    );
    assert_eq!(
        snapshot_version(&store).await,
        Some(12),
        "1 event is under the limit"
    );

    // A rejected command's load over the limit leaves its snapshot too.
    tick(&store, 10).await; // versions 14..=23: 11 past the snapshot
    store.take_visited();
    let rejected = counters
        .execute(Halt { id: "c-1".into() })
        .await
        .unwrap_err();
    assert!(matches!(rejected, RepositoryError::Rejected(Halted)));
    assert_eq!(store.take_visited(), 11);
    assert_eq!(snapshot_version(&store).await, Some(23));
    assert_eq!(store.stream_version(STREAM).await.unwrap(), Some(23));
}

#[tokio::test]
async fn snapshot_mode_needs_an_aggregate_that_takes_snapshots() {
    let refused = Repository::<Plain, _>::new(MemoryStore::new())
        .with_max_events_to_load(MaxEventsToLoad::snapshot(100))
        .unwrap_err();
    assert_eq!(refused, SnapshotsUnsupported { aggregate: "Plain" });
    assert_eq!(
        refused.to_string(),
        "aggregate `Plain` takes no snapshots, so a load over the max events to load cannot \
         take one; declare it with `#[aggregate(snapshot = N)]`, or refuse such loads \
         (`WhenExceeded::Refuse`)"
    );
    assert!(
        Repository::<Counter, _>::new(MemoryStore::new())
            .with_max_events_to_load(MaxEventsToLoad::snapshot(100))
            .is_ok()
    );
}
