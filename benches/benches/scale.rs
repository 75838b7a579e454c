//! Stores of up to 10 million events, on SQLite and PostgreSQL: whether any step's cost
//! per event grows with the store's size.
//!
//! The bench grows one store per backend step by step (10k → 100k → 1M → 10M events;
//! `SCALE_SIZES` chooses, `10k,100k,1M` by default) and, at each size, measures:
//!
//! - **fill**: the appends that grew the store to the size, timed per decade: one commit
//!   per care task with its four events (created, assigned, noted, completed; the domain
//!   of the catch-up bench), and among them, in commits of 100 notes, the events of one
//!   long stream (`Task-long`: a fifth of the store, at most 100,000 events). On
//!   PostgreSQL its row notes the WAL bytes, full-page images and blocks read per event
//!   (`pg_stat_wal`, `pg_stat_database`), to tell where a rise in its cost comes from.
//! - **append**: 2,000 single-event commits (a note; a twentieth of the store when that
//!   is less), each to a task picked at random across the whole store, its version
//!   checked (`ExpectedVersion::Exact`), as commands do.
//! - **loads**: `Repository::load` of a 100-event stream (written first, so it sits at
//!   the start of the log) from its events and from its snapshot, 100 loads each; the
//!   long stream loaded from its events without a limit, then with
//!   `MaxEventsToLoad::snapshot(1_000)` after its snapshot was deleted (the first load
//!   replays every event and saves a snapshot; then 100 loads start from it), and with
//!   `MaxEventsToLoad::refuse(1_000)` (refused once past 1,001 events); the loads that
//!   replay it run three times each, and the median is reported.
//! - **catch-up**: a task-board projection (an SQL statement or two per event into a
//!   read model of the same backend, pages of 500) catching up with the events appended
//!   since the last size, so every event is applied once and the rate compares across
//!   sizes; and, up to `SCALE_FULL_CATCH_UP_MAX` events (default 1M), rebuilt from the
//!   first event into a reset read model.
//! - **peak memory**: the process's resident high-water mark (`VmHWM`) during each
//!   step, reset before it by writing `5` to `/proc/self/clear_refs` (checked to work
//!   at start). PostgreSQL's server processes are not counted; SQLite's page cache is.
//!
//! Every step checks what it got (versions, states, the refusal, events applied).
//! Results go to `target/scale/` (under `CARGO_TARGET_DIR` when set; `SCALE_OUT`
//! chooses): `scale.csv`, `scale.md` (a table per backend, rewritten after every size)
//! and `scale.png` (throughput against the store's size, drawn with plotters; the text
//! needs a TrueType font: DejaVu Sans from `fonts-dejavu-core`, or `SCALE_FONT`).
//!
//! Run (PostgreSQL needs `--features postgres` and a server at `FACTUM_POSTGRES_URL`:
//! `eval "$(scripts/postgres.sh start)"`; the bench works in a database of its own on
//! it, `factum_scale`, dropped and created afresh by every run):
//!
//! ```sh
//! SCALE_SIZES=10k,100k,1M,10M cargo bench -p factum-benches --features postgres --bench scale
//! ```
//!
//! `SCALE_BACKENDS=sqlite` (or `postgres`) runs one backend; `SCALE_FULL_CATCH_UP_MAX=10M`
//! rebuilds the projection at 10M too. `SCALE_REPLOT=path/scale.csv` measures nothing: it
//! draws `scale.md` and `scale.png` again beside that CSV (rows of several runs may be
//! joined into one). Under `cargo test` (no `--bench` argument) it runs once at 10k into
//! `target/scale-test/`; with the `postgres` feature and `CI=true` a missing server is an
//! error, not a skip.

#[path = "scale/domain.rs"]
mod domain;
#[cfg(feature = "postgres")]
#[path = "scale/postgres.rs"]
mod postgres;
#[path = "scale/report.rs"]
mod report;
#[cfg(feature = "postgres")]
#[allow(dead_code)]
#[path = "shared/pg.rs"]
mod shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use factum::prelude::*;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{ProjectionRunner, Projector, ReadModel, Target};
use factum::repository::{MaxEventsToLoad, SnapshotPolicy};
use factum::store::SqliteStore;
use rusqlite::params;

use crate::domain::*;
use crate::report::{Measure, Row, size_name};

/// The longest the long stream gets.
const LONG_MAX: u64 = 100_000;
/// The max events to load of the long stream's limited loads.
const MAX_EVENTS: u64 = 1_000;
/// Events in the ordinary stream.
const ORDINARY: u64 = 100;
/// Events per page of the projection and per read-model transaction.
const PAGE: usize = 500;

/// What the run does, from its arguments and environment.
struct Config {
    sizes: Vec<u64>,
    backends: Vec<String>,
    out: PathBuf,
    full_catch_up_max: u64,
    loads: usize,
}

/// `10k`, `1M`, `250000`: a size.
fn parse_size(text: &str) -> u64 {
    let text = text.trim();
    let (digits, factor) = match text.to_ascii_lowercase() {
        t if t.ends_with('k') => (t[..t.len() - 1].to_owned(), 1_000),
        t if t.ends_with('m') => (t[..t.len() - 1].to_owned(), 1_000_000),
        t => (t, 1),
    };
    let size = digits
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("a size like 10k, 1M or 250000, not `{text}`"));
    size * factor
}

impl Config {
    fn from_env() -> Self {
        // `cargo bench` passes `--bench`; `cargo test --benches` does not.
        let bench = std::env::args().any(|arg| arg == "--bench");
        let default_sizes = if bench { "10k,100k,1M" } else { "10k" };
        let mut sizes: Vec<u64> = std::env::var("SCALE_SIZES")
            .unwrap_or_else(|_| default_sizes.to_owned())
            .split(',')
            .map(parse_size)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        assert!(
            sizes.first().is_some_and(|first| *first >= 1_000),
            "SCALE_SIZES: every size is at least 1k"
        );
        let backends = std::env::var("SCALE_BACKENDS")
            .unwrap_or_else(|_| "sqlite,postgres".to_owned())
            .split(',')
            .map(|backend| backend.trim().to_owned())
            .collect();
        let out = std::env::var_os("SCALE_OUT").map_or_else(
            || target_dir().join(if bench { "scale" } else { "scale-test" }),
            PathBuf::from,
        );
        let full_catch_up_max =
            std::env::var("SCALE_FULL_CATCH_UP_MAX").map_or(1_000_000, |text| parse_size(&text));
        Self {
            sizes,
            backends,
            out,
            full_catch_up_max,
            loads: if bench { 100 } else { 10 },
        }
    }
}

/// The target directory this bench was built into (`target/release/deps/scale-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's path");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// The process's peak resident memory, reset between steps.
mod peak {
    /// Resets the high-water mark to the resident memory now; returns that (MiB).
    pub fn reset() -> f64 {
        std::fs::write("/proc/self/clear_refs", "5")
            .expect("reset the peak resident memory (/proc/self/clear_refs)");
        status("VmRSS:")
    }

    /// `VmHWM` of /proc/self/status, in MiB.
    pub fn mib() -> f64 {
        status("VmHWM:")
    }

    /// A field of /proc/self/status given in kB, in MiB.
    fn status(field: &str) -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
        kib as f64 / 1024.0
    }

    /// Checks that a reset lowers the mark: 128 MiB touched and freed, then reset.
    pub fn check() {
        let block = vec![1u8; 128 << 20];
        std::hint::black_box(&block);
        drop(block);
        let before = mib();
        let after = reset().max(mib());
        assert!(
            after + 64.0 < before,
            "writing 5 to /proc/self/clear_refs did not reset VmHWM ({before:.0} MiB, then {after:.0} MiB)"
        );
    }
}

/// A store, a projection that follows it, and what only its backend can do.
trait Backend {
    type Store: EventStore + Clone + 'static;
    const NAME: &'static str;

    fn store(&self) -> &Self::Store;

    /// Deletes the stream's snapshot, if any.
    async fn delete_snapshot(&mut self, stream_id: &str);

    /// Catches the projection up with the log; returns the events it applied.
    async fn catch_up(&mut self) -> u64;

    /// Empties the projection's read model (its checkpoint back to 0).
    async fn reset_projection(&mut self);

    /// What the backend did since the last call, per event of `events` (empty when it
    /// tells nothing): where the fill's time went.
    async fn since_last(&mut self, events: u64) -> String;
}

/// The stream id of task `n`.
fn task_stream(n: u64) -> String {
    format!("{STREAM_TYPE}-t{n}")
}

/// What the bench wrote so far, and how.
struct Filler {
    metadata: Metadata,
    /// Events in the store.
    events: u64,
    /// Task streams written: `Task-t0` … `Task-t{next_task - 1}`.
    next_task: u64,
    /// The version of each task stream that is not at 4.
    versions: HashMap<u64, u64>,
    /// Events in the long stream.
    long: u64,
    /// Events the projection has applied.
    projected: u64,
    rng: u64,
}

impl Filler {
    fn new() -> Self {
        Self {
            metadata: metadata(),
            events: 0,
            next_task: 0,
            versions: HashMap::new(),
            long: 0,
            projected: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// xorshift64*: the same tasks every run.
    fn below(&mut self, bound: u64) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }

    fn expected(version: u64) -> ExpectedVersion {
        match version {
            0 => ExpectedVersion::NoStream,
            version => ExpectedVersion::Exact(version),
        }
    }

    /// The 100-event stream, in commits of 10.
    async fn ordinary<S: EventStore>(&mut self, store: &S) {
        for first in (0..ORDINARY).step_by(10) {
            let events = (first..first + 10)
                .map(|n| task_event(u64::MAX, n, &self.metadata))
                .collect();
            store
                .append(
                    &format!("{STREAM_TYPE}-ordinary"),
                    STREAM_TYPE,
                    Self::expected(first),
                    events,
                )
                .await
                .expect("append to the ordinary stream");
        }
        self.events += ORDINARY;
    }

    /// Appends until the store holds `size` events, the long stream growing to `long`
    /// events among them; returns the commits.
    async fn fill<S: EventStore>(&mut self, store: &S, size: u64, long: u64) -> u64 {
        let (start, long_start) = (self.events, self.long);
        let (to_add, long_add) = (size - start, long.saturating_sub(long_start));
        assert!(long_add <= to_add, "the long stream fits in the fill");
        let mut commits = 0;
        while self.events < size {
            let (done, long_done) = (self.events - start, self.long - long_start);
            // The long stream's commits keep pace with the rest.
            if long_done < long_add && long_done * to_add <= done * long_add {
                let count = 100.min(long_add - long_done).min(size - self.events);
                let events = (self.long..self.long + count)
                    .map(|n| task_event(u64::MAX - 1, n, &self.metadata))
                    .collect();
                store
                    .append(
                        &format!("{STREAM_TYPE}-long"),
                        STREAM_TYPE,
                        Self::expected(self.long),
                        events,
                    )
                    .await
                    .expect("append to the long stream");
                self.long += count;
                self.events += count;
            } else {
                let task = self.next_task;
                self.next_task += 1;
                let count = 4.min(size - self.events);
                let events = (0..count)
                    .map(|n| task_event(task, n, &self.metadata))
                    .collect();
                store
                    .append(
                        &task_stream(task),
                        STREAM_TYPE,
                        ExpectedVersion::NoStream,
                        events,
                    )
                    .await
                    .expect("append a task");
                if count < 4 {
                    self.versions.insert(task, count);
                }
                self.events += count;
            }
            commits += 1;
        }
        commits
    }

    /// `commits` single-note commits to random tasks, versions checked.
    async fn append<S: EventStore>(&mut self, store: &S, commits: u64) {
        for _ in 0..commits {
            let task = self.below(self.next_task);
            let version = self.versions.get(&task).copied().unwrap_or(4);
            let outcome = store
                .append(
                    &task_stream(task),
                    STREAM_TYPE,
                    ExpectedVersion::Exact(version),
                    vec![note(task, &self.metadata)],
                )
                .await
                .expect("append a note");
            assert_eq!(outcome.stream_version, version + 1);
            self.versions.insert(task, version + 1);
            self.events += 1;
        }
    }
}

/// How long a step took, and the memory it needed.
#[derive(Debug, Clone, Copy)]
struct Took {
    seconds: f64,
    /// `VmHWM` during the step.
    peak_mib: f64,
    /// `VmHWM` during the step less `VmRSS` when it started: what the step added.
    rise_mib: f64,
}

impl Took {
    /// The run of median time among `runs`, with the highest peak of them all.
    fn median(mut runs: Vec<Took>) -> Took {
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        let peak_mib = runs.iter().map(|took| took.peak_mib).fold(0.0, f64::max);
        let rise_mib = runs.iter().map(|took| took.rise_mib).fold(0.0, f64::max);
        Took {
            peak_mib,
            rise_mib,
            ..runs[runs.len() / 2]
        }
    }
}

/// Times `step`, with the peak memory during it.
async fn timed<T>(step: impl Future<Output = T>) -> (T, Took) {
    let start_mib = peak::reset();
    let start = Instant::now();
    let value = step.await;
    let seconds = start.elapsed().as_secs_f64();
    let peak_mib = peak::mib();
    let took = Took {
        seconds,
        peak_mib,
        rise_mib: (peak_mib - start_mib).max(0.0),
    };
    (value, took)
}

/// How many times each load of the long stream runs (the median is reported).
const LONG_RUNS: usize = 3;

/// Grows `backend`'s store through every size, measuring at each; `on_size` gets the
/// rows so far after each size.
async fn run<B: Backend>(
    backend: &mut B,
    config: &Config,
    mut on_size: impl FnMut(&[Row]),
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut filler = Filler::new();
    filler.ordinary(backend.store()).await;
    for &size in &config.sizes {
        let label = size_name(size);
        let mut row = |measure, events, ops, took: Took, note: String| {
            let row = Row {
                backend: B::NAME,
                size,
                measure,
                events,
                ops,
                seconds: took.seconds,
                peak_mib: took.peak_mib,
                rise_mib: took.rise_mib,
                note,
            };
            println!(
                "{:10} {:>4}  {:55} {:>10} {:>8}  {:9.4} s  {:12.1} {}  {:8.2} µs/event  peak {:5.0} MiB (+{:.0})  {}",
                B::NAME,
                label,
                measure.label(),
                events,
                ops,
                took.seconds,
                row.rate(),
                if measure.in_events() {
                    "events/s"
                } else {
                    "loads/s "
                },
                row.micros_per_event(),
                took.peak_mib,
                took.rise_mib,
                row.note
            );
            rows.push(row);
        };
        let store = backend.store().clone();

        // Fill up to the size.
        let long = LONG_MAX.min(size / 5);
        let before = filler.events;
        if size > before {
            backend.since_last(0).await;
            let (commits, took) = timed(filler.fill(&store, size, long)).await;
            let server = backend.since_last(size - before).await;
            row(
                Measure::Fill,
                size - before,
                commits,
                took,
                format!("from {before}{server}"),
            );
        }
        assert_eq!(
            store
                .head()
                .await
                .expect("the head")
                .map(|head| head.position),
            Some(filler.events),
            "the store holds the events written"
        );

        // Single-event commits across the store.
        let commits = 2_000.min(size / 20);
        let ((), took) = timed(filler.append(&store, commits)).await;
        row(Measure::Append, commits, commits, took, String::new());

        // The 100-event stream, from its events and from its snapshot.
        let plain = Repository::<Task, B::Store>::new(store.clone());
        let loads = config.loads as u64;
        let (_, took) = timed(async {
            for _ in 0..loads {
                let loaded = plain.load("ordinary").await.expect("load");
                assert_eq!((loaded.version, loaded.state.notes), (ORDINARY, 97));
            }
        })
        .await;
        row(
            Measure::LoadStream,
            ORDINARY * loads,
            loads,
            took,
            String::new(),
        );
        let snapshots = Repository::<Task, B::Store>::new(store.clone())
            .with_snapshots(SnapshotPolicy::every(ORDINARY));
        snapshots.load("ordinary").await.expect("load");
        let snapshot = store
            .load_snapshot(&format!("{STREAM_TYPE}-ordinary"))
            .await
            .expect("read the snapshot")
            .expect("a snapshot of the 100-event stream");
        assert_eq!(snapshot.stream_version, ORDINARY);
        let (_, took) = timed(async {
            for _ in 0..loads {
                let loaded = snapshots.load("ordinary").await.expect("load");
                assert_eq!((loaded.version, loaded.state.notes), (ORDINARY, 97));
            }
        })
        .await;
        row(
            Measure::LoadStreamSnapshot,
            ORDINARY * loads,
            loads,
            took,
            String::new(),
        );

        // The long stream: without a limit, then over the max events to load; each
        // load runs LONG_RUNS times.
        let long_id = format!("{STREAM_TYPE}-long");
        let expected = (filler.long, filler.long - 3);
        let long_note = format!("{} events", filler.long);
        let mut runs = Vec::new();
        for _ in 0..LONG_RUNS {
            let (loaded, took) = timed(plain.load("long")).await;
            let loaded = loaded.expect("load the long stream");
            assert_eq!((loaded.version, loaded.state.notes), expected);
            runs.push(took);
        }
        row(
            Measure::LoadLong,
            filler.long,
            1,
            Took::median(runs),
            long_note.clone(),
        );
        let limited = Repository::<Task, B::Store>::new(store.clone())
            .with_max_events_to_load(MaxEventsToLoad::snapshot(MAX_EVENTS))
            .expect("Task takes snapshots");
        let mut first = Vec::new();
        for _ in 0..LONG_RUNS {
            backend.delete_snapshot(&long_id).await;
            let (loaded, took) = timed(limited.load("long")).await;
            let loaded = loaded.expect("load the long stream");
            assert_eq!((loaded.version, loaded.state.notes), expected);
            let snapshot = store
                .load_snapshot(&long_id)
                .await
                .expect("read the snapshot")
                .expect("the load over the limit saved a snapshot");
            assert_eq!(snapshot.stream_version, filler.long);
            first.push(took);
        }
        row(
            Measure::LoadLongMaxFirst,
            filler.long,
            1,
            Took::median(first),
            long_note.clone(),
        );
        let (_, took) = timed(async {
            for _ in 0..loads {
                let loaded = limited.load("long").await.expect("load the long stream");
                assert_eq!((loaded.version, loaded.state.notes), expected);
            }
        })
        .await;
        row(
            Measure::LoadLongMaxNext,
            filler.long * loads,
            loads,
            took,
            long_note.clone(),
        );
        backend.delete_snapshot(&long_id).await;
        let refusing = Repository::<Task, B::Store>::new(store.clone())
            .with_max_events_to_load(MaxEventsToLoad::refuse(MAX_EVENTS))
            .expect("refusing needs no snapshots");
        let mut runs = Vec::new();
        for _ in 0..LONG_RUNS {
            let (refused, took) = timed(refusing.load("long")).await;
            match refused {
                Err(RepositoryError::MaxEventsToLoadExceeded { events, limit, .. }) => {
                    assert_eq!((events, limit), (filler.long, MAX_EVENTS));
                }
                other => panic!(
                    "loading {} events over a max of {MAX_EVENTS} was not refused: {:?}",
                    filler.long,
                    other.map(|loaded| loaded.version)
                ),
            }
            runs.push(took);
        }
        row(
            Measure::LoadLongRefused,
            MAX_EVENTS + 1,
            1,
            Took::median(runs),
            long_note,
        );

        // The projection: what is new, then (where affordable) everything.
        let new = filler.events - filler.projected;
        let (applied, took) = timed(backend.catch_up()).await;
        assert_eq!(applied, new, "the catch-up applied every new event");
        filler.projected = filler.events;
        row(
            Measure::CatchUp,
            applied,
            1,
            took,
            format!("up to {}", filler.events),
        );
        if size <= config.full_catch_up_max {
            backend.reset_projection().await;
            let (applied, took) = timed(backend.catch_up()).await;
            assert_eq!(applied, filler.events, "the rebuild applied every event");
            row(Measure::FullCatchUp, applied, 1, took, String::new());
        }
        on_size(&rows);
    }
    rows
}

// SQLite: the store in a temporary directory, the read model beside it.

/// The task board, into a SQLite read model.
struct TaskBoard;

#[projection(name = "scale_task_board", version = 1)]
impl TaskBoard {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(TABLES)?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(INSERT_TASK))?
            .execute(params![e.stream_id(), e.title])?;
        Ok(())
    }

    #[on]
    async fn assigned(
        &mut self,
        e: &Recorded<TaskAssigned>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(ASSIGN_TASK))?
            .execute(params![e.stream_id(), e.member])?;
        Ok(())
    }

    #[on]
    async fn noted(
        &mut self,
        e: &Recorded<TaskNoted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(NOTE_TASK))?
            .execute(params![e.stream_id()])?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(&sqlite(COMPLETE_TASK))?
            .execute(params![e.stream_id(), e.minutes])?;
        tx.prepare_cached(&sqlite(COUNT_COMPLETION))?
            .execute(params![e.stream_id()])?;
        Ok(())
    }
}

const SQLITE_TARGET: Target = Target {
    name: "scale_task_board",
    version: 1,
};

struct Sqlite {
    path: PathBuf,
    store: SqliteStore,
    read_models: SqliteReadModel,
    runner: ProjectionRunner<SqliteStore>,
    projector: Projector<TaskBoard>,
}

impl Sqlite {
    async fn open(dir: &Path) -> Self {
        let path = dir.join("events.sqlite3");
        let store = SqliteStore::open(&path).await.expect("open the store");
        let read_models = SqliteReadModel::open(dir.join("read-models"))
            .await
            .expect("open the read models");
        let runner = ProjectionRunner::new(store.clone()).batch_size(PAGE);
        let projector = runner.projector(TaskBoard, read_models.clone());
        Self {
            path,
            store,
            read_models,
            runner,
            projector,
        }
    }
}

impl Backend for Sqlite {
    type Store = SqliteStore;
    const NAME: &'static str = "SQLite";

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn delete_snapshot(&mut self, stream_id: &str) {
        let connection = rusqlite::Connection::open(&self.path).expect("open the store's file");
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        connection
            .execute(
                "DELETE FROM snapshots WHERE stream_id = ?1",
                params![stream_id],
            )
            .expect("delete the snapshot");
    }

    async fn catch_up(&mut self) -> u64 {
        self.runner
            .catch_up(&mut self.projector)
            .await
            .expect("catch up")
            .applied
    }

    async fn reset_projection(&mut self) {
        self.read_models
            .reset(SQLITE_TARGET)
            .await
            .expect("reset the read model");
        self.projector = self.runner.projector(TaskBoard, self.read_models.clone());
    }

    async fn since_last(&mut self, _events: u64) -> String {
        String::new()
    }
}

/// Writes the CSV, the tables and the plot of `rows` into `out`.
fn write_outputs(out: &Path, rows: &[Row]) {
    std::fs::create_dir_all(out).expect("create the output directory");
    std::fs::write(out.join("scale.csv"), report::csv(rows)).expect("write scale.csv");
    std::fs::write(out.join("scale.md"), report::markdown(rows)).expect("write scale.md");
    report::plot(rows, &out.join("scale.png")).expect("draw scale.png");
}

fn main() {
    // Tables and plot drawn again from the CSV of an earlier run (or of several runs
    // joined), measuring nothing.
    if let Some(csv) = std::env::var_os("SCALE_REPLOT") {
        let csv = PathBuf::from(csv);
        let text = std::fs::read_to_string(&csv)
            .unwrap_or_else(|error| panic!("SCALE_REPLOT: read {}: {error}", csv.display()));
        let rows = report::parse_csv(&text).unwrap_or_else(|error| panic!("{error}"));
        let out = csv.parent().unwrap_or(Path::new("."));
        std::fs::write(out.join("scale.md"), report::markdown(&rows)).expect("write scale.md");
        report::plot(&rows, &out.join("scale.png")).expect("draw scale.png");
        print!("{}", report::markdown(&rows));
        return;
    }
    let config = Config::from_env();
    peak::check();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "scale: sizes {}, backends {}, results into {}",
        config
            .sizes
            .iter()
            .map(|size| size_name(*size))
            .collect::<Vec<_>>()
            .join(", "),
        config.backends.join(", "),
        config.out.display()
    );
    let mut rows: Vec<Row> = Vec::new();
    let started = Instant::now();
    if config.backends.iter().any(|backend| backend == "sqlite") {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let sqlite_rows = runtime.block_on(async {
            let mut backend = Sqlite::open(dir.path()).await;
            run(&mut backend, &config, |so_far| {
                write_outputs(&config.out, so_far)
            })
            .await
        });
        rows.extend(sqlite_rows);
    }
    if config.backends.iter().any(|backend| backend == "postgres") {
        #[cfg(feature = "postgres")]
        if let Some(url) = shared::postgres_url("scale") {
            let done = rows.clone();
            let postgres_rows = runtime.block_on(async {
                let mut backend = postgres::Postgres::fresh(&url).await;
                run(&mut backend, &config, |so_far| {
                    write_outputs(&config.out, &[done.as_slice(), so_far].concat())
                })
                .await
            });
            rows.extend(postgres_rows);
        }
        #[cfg(not(feature = "postgres"))]
        eprintln!("scale: built without the `postgres` feature; skipping PostgreSQL");
    }
    write_outputs(&config.out, &rows);
    println!(
        "scale: done in {:.0} s; {} and scale.csv, scale.png beside it",
        started.elapsed().as_secs_f64(),
        config.out.join("scale.md").display()
    );
    print!("{}", report::markdown(&rows));
}
