//! The care-task part of the main job: a shift on a care ward on the embedded SQLite
//! store, with the three projections running side by side and answering queries.
//!
//! The events stay in a SQLite file and the read models in a directory beside it, so a
//! second run finds both: every projection resumes from its checkpoint and applies only
//! what was recorded since. Used by the `care-tasks` binary and by `factum-demo`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use factum::application::{Application, ApplicationError};
use factum::prelude::*;
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{
    Lag, ProjectionHandle, ProjectionRunner, ReadModel, ReadModelError, RunnerError, Target,
    progress_bar,
};
use factum::query::{Consistency, PageRequest, QueryRunner};
use factum::store::{SqliteOpenError, SqliteStore};
use serde_json::json;

use crate::projections::coordinator_task_list::{self, CoordinatorTaskList};
use crate::projections::daily_analytics::DailyAnalytics;
use crate::projections::member_task_history::{HistoryKind, MemberTaskHistory};
use crate::queries::{
    FindOpenTasksByAssignee, FindOpenTasksByCoordinator, GetDailyAnalytics, GetMemberHistory,
    GetTaskById,
};
use crate::{AssignTask, CARE_TEAM, COORDINATOR, CompleteTask, CreateTask, Task, TaskCommand};

/// Where the care-task job keeps its data, and whose history it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The SQLite file holding the events; created if missing.
    pub db: PathBuf,
    /// The directory of the read models; `None`: beside the events file (see
    /// [`read_models_beside`]).
    pub read_models: Option<PathBuf>,
    /// The member whose history is shown.
    pub member: String,
    /// The archives of the store (`factum archive`) its archived events are read from.
    pub archives: Vec<PathBuf>,
}

impl Options {
    /// The events in `db`, the read models beside it, and amira's history.
    pub fn new(db: impl Into<PathBuf>) -> Self {
        Self {
            db: db.into(),
            read_models: None,
            member: "amira".to_owned(),
            archives: Vec::new(),
        }
    }

    /// The event store, with its archives: archived events read back from them.
    pub async fn open_store(&self) -> Result<SqliteStore, DemoError> {
        let mut options = SqliteStore::options();
        for path in &self.archives {
            let path = path.clone();
            let archive = tokio::task::spawn_blocking(move || factum::archive::Archive::open(path))
                .await
                .map_err(|error| DemoError::Scenario(error.to_string()))??;
            options = options.archive(archive);
        }
        Ok(options.open(&self.db).await?)
    }
}

/// The read-model directory beside an events file: `care-tasks.sqlite3` →
/// `care-tasks.read-models`.
pub fn read_models_beside(db: &Path) -> PathBuf {
    let stem = db
        .file_stem()
        .map_or_else(|| "care-tasks".into(), |stem| stem.to_string_lossy());
    db.with_file_name(format!("{stem}.read-models"))
}

/// Why the job stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A query was not answered.
    #[error(transparent)]
    Ask(#[from] factum::query::QueryError),
    /// The audit record could not be read.
    #[error(transparent)]
    Audit(#[from] factum::authorization::AuditError),
    /// The scenario did not go as it must.
    #[error("the scenario went wrong: {0}")]
    Scenario(String),
    /// The event store's file could not be opened.
    #[error("opening the event store")]
    OpenStore(#[from] SqliteOpenError),
    /// An archive given could not be opened.
    #[error("opening an archive of the event store")]
    Archive(#[from] factum::archive::ArchiveError),
    /// The event store failed.
    #[error("the event store failed")]
    Store(#[from] StoreError),
    /// Running a command failed for another reason than the task's refusal.
    #[error("running a command failed")]
    Command(#[from] ApplicationError),
    /// The application's aggregates do not fit together.
    #[error("building the application")]
    Build(#[from] factum::application::BuildError),
    /// A read-model directory or file failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// A projection stopped.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The Prometheus recorder could not be installed (another recorder is).
    #[error("installing the Prometheus recorder")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// A query on a read model failed.
    #[error("querying a read model failed")]
    Query(#[from] rusqlite::Error),
    /// The HTTP client failed.
    #[error("the HTTP client failed")]
    Http(#[from] reqwest::Error),
    /// The HTTP server could not be started.
    #[error("serving over HTTP")]
    Serve(#[source] std::io::Error),
    /// An event could not be written down as JSON.
    #[error("encoding the run marker failed")]
    Json(#[from] serde_json::Error),
    /// A command the scenario expects to be refused was accepted.
    #[error("`{command}` should have been refused but recorded {events}")]
    NotRefused {
        /// The command's name.
        command: &'static str,
        /// What it recorded.
        events: String,
    },
}

/// The three projections, running.
struct Running {
    handles: Vec<ProjectionHandle<SqliteStore>>,
}

impl Running {
    async fn wait_for(&mut self, position: u64) -> Result<(), DemoError> {
        for handle in &mut self.handles {
            handle.wait_for(position).await?;
        }
        Ok(())
    }

    async fn print_lag(&self) -> Result<(), DemoError> {
        for handle in &self.handles {
            let lag = handle.lag().await?;
            println!("{:<22} {}", handle.name(), describe_lag(&lag));
        }
        Ok(())
    }

    async fn stop(self) -> Result<(), DemoError> {
        for handle in self.handles {
            handle.stop().await?;
        }
        Ok(())
    }
}

/// Rebuilds the three projections from the start of the log, one after the other, with a
/// progress bar and ETA on the terminal (hidden when stderr is not one), then prints what
/// each applied. Readers get "not active" for a projection while it rebuilds.
pub async fn rebuild(options: &Options) -> Result<(), DemoError> {
    let read_models_dir = options
        .read_models
        .clone()
        .unwrap_or_else(|| read_models_beside(&options.db));
    let store = options.open_store().await?;
    let read_models = SqliteReadModel::open(&read_models_dir).await?;
    let runner = ProjectionRunner::new(store);
    let rebuilt = [
        (
            CoordinatorTaskList::NAME,
            runner
                .rebuild(CoordinatorTaskList, read_models.clone(), progress_bar())
                .await?,
        ),
        (
            MemberTaskHistory::NAME,
            runner
                .rebuild(MemberTaskHistory, read_models.clone(), progress_bar())
                .await?,
        ),
        (
            DailyAnalytics::NAME,
            runner
                .rebuild(DailyAnalytics, read_models.clone(), progress_bar())
                .await?,
        ),
    ];
    for (name, caught_up) in rebuilt {
        println!(
            "rebuilt {name:<22} {} events applied, {} parked, checkpoint {}",
            caught_up.applied, caught_up.parked, caught_up.checkpoint
        );
    }
    Ok(())
}

/// Runs the care-task job: starts the projections from their checkpoints, runs this
/// run's shift, shows the refused commands, and prints what each projection answers.
pub async fn run(options: &Options) -> Result<(), DemoError> {
    let read_models_dir = options
        .read_models
        .clone()
        .unwrap_or_else(|| read_models_beside(&options.db));
    let store = options.open_store().await?;
    let read_models = SqliteReadModel::open(&read_models_dir).await?;
    println!(
        "store: SQLite file {}; read models in {}",
        options.db.display(),
        read_models_dir.display()
    );
    let head_before = log_head(&store).await?;
    let run = start_run(&store).await?;
    println!("care-task run {run}: the store holds {head_before} events from earlier runs");

    section("1. Three projections of the same events start side by side");
    let head = log_head(&store).await?;
    for target in [
        target::<CoordinatorTaskList>(),
        target::<MemberTaskHistory>(),
        target::<DailyAnalytics>(),
    ] {
        match read_models.checkpoint(target).await? {
            Some(checkpoint) => println!(
                "{:<22} v{}: resumed from checkpoint {checkpoint} (head of the log: {head})",
                target.name, target.version
            ),
            None => println!(
                "{:<22} v{}: no checkpoint yet, builds from the start (head of the log: {head})",
                target.name, target.version
            ),
        }
    }
    let runner = ProjectionRunner::new(store.clone()).idle_wait(Duration::from_millis(250));
    let mut running = Running {
        handles: vec![
            runner.spawn(CoordinatorTaskList, read_models.clone()),
            runner.spawn(MemberTaskHistory, read_models.clone()),
            runner.spawn(DailyAnalytics, read_models.clone()),
        ],
    };
    running.wait_for(head).await?;
    println!("all three caught up with the head of the log (position {head}):");
    running.print_lag().await?;

    section(&format!(
        "2. The shift of run {run}, recorded while they run (through the application)"
    ));
    let app = crate::application(store.clone())?;
    let now = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    for (actor, command) in shift(run, now) {
        run_command(&app, command, actor).await?;
    }
    let last_position = log_head(&store).await?;
    println!("\nlag right after the last command (the projections apply it in the background):");
    running.print_lag().await?;

    section("3. The task's invariants refuse bad commands (nothing is written)");
    for (actor, command) in refused(run, now) {
        let name = command.command_name();
        match app.execute_set(command, on_the_ward(actor)).await {
            Err(error) => match error.rejection::<crate::TaskError>() {
                Some(reason) => println!("{name:<12} refused: {reason}"),
                None => return Err(error.into()),
            },
            Ok(outcome) => {
                return Err(DemoError::NotRefused {
                    command: name,
                    events: format!("{:?}", outcome.event_ids),
                });
            }
        }
    }

    who_may_do_what(&app, &store, &read_models, run, now).await?;

    running.wait_for(last_position).await?;
    section("4. The coordinator's task list (coordinator_task_list)");
    let reader = read_models.reader(coordinator_task_list::NAME).await?;
    for task in coordinator_task_list::task_list(&reader)? {
        let status = match &task.completed {
            Some(done) => format!(
                "[done] by {} at {}, took {}",
                done.by,
                done.at.format("%H:%M"),
                duration(task.age(now))
            ),
            None => format!(
                "[open] {}, age {}{}",
                task.assignee.as_deref().map_or_else(
                    || "unassigned".to_owned(),
                    |member| format!("with {member}")
                ),
                duration(task.age(now)),
                if task.is_overdue(now) {
                    ", OVERDUE"
                } else {
                    ""
                }
            ),
        };
        println!(
            "{:<10} {:<26} for {:<24} due {}  {status}",
            task.task_id,
            task.title,
            task.care_recipient,
            task.due.format("%Y-%m-%d %H:%M")
        );
    }

    let queries = QueryRunner::new(store.clone(), read_models.clone());
    section("5. Queries: typed, paged, each answer with its freshness");
    let mine = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "dana".to_owned(),
                page: PageRequest::first(3)?,
            },
            Consistency::Any,
        )
        .await?;
    println!(
        "FindOpenTasksByCoordinator dana, page {} of {} ({} open in all; {}):",
        mine.value.page,
        mine.value.pages(),
        mine.value.total,
        describe_freshness(&mine.freshness)
    );
    for task in &mine.value.items {
        println!(
            "  {:<10} {:<26} due {}",
            task.task_id,
            task.title,
            task.due.format("%Y-%m-%d %H:%M")
        );
    }
    let chloe = queries
        .ask(
            FindOpenTasksByAssignee {
                member: "chloe".to_owned(),
                page: PageRequest::first(3)?,
            },
            Consistency::Any,
        )
        .await?;
    println!(
        "FindOpenTasksByAssignee chloe: {} open in all, page 1 holds {}",
        chloe.value.total,
        chloe
            .value
            .items
            .iter()
            .map(|task| task.task_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let history = queries
        .ask(
            GetMemberHistory {
                member: options.member.clone(),
                page: PageRequest::first(8)?,
            },
            Consistency::Any,
        )
        .await?;
    println!(
        "\nGetMemberHistory {}, newest first, page 1 of {} ({} entries; {}):",
        options.member,
        history.value.pages(),
        history.value.total,
        describe_freshness(&history.freshness)
    );
    if history.value.items.is_empty() {
        println!("  {} has no history", options.member);
    }
    for entry in &history.value.items {
        let what = match &entry.kind {
            HistoryKind::Assigned { from: None } => "assigned".to_owned(),
            HistoryKind::Assigned { from: Some(from) } => format!("took over from {from}"),
            HistoryKind::ReassignedAway { to } => format!("reassigned to {to}"),
            HistoryKind::Completed { note: None } => "completed".to_owned(),
            HistoryKind::Completed { note: Some(note) } => format!("completed: \"{note}\""),
        };
        println!(
            "  {}  {:<10} {:<26} {what}",
            entry.at.format("%Y-%m-%d %H:%M"),
            entry.task_id,
            entry.title
        );
    }

    let analytics = queries
        .ask(
            GetDailyAnalytics {
                page: PageRequest::first(7)?,
            },
            Consistency::Any,
        )
        .await?;
    println!(
        "\nGetDailyAnalytics, newest day first, page 1 of {} ({}):",
        analytics.value.pages(),
        describe_freshness(&analytics.freshness)
    );
    let today = analytics
        .value
        .items
        .iter()
        .find(|day| day.day == now.date_naive());
    println!(
        "today, {}: {} created, {} completed, average completion time {}",
        now.date_naive(),
        today.map_or(0, |day| day.created),
        today.map_or(0, |day| day.completed),
        today
            .and_then(|day| day.average_completion_seconds())
            .map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.0} s"))
    );
    for day in &analytics.value.items {
        println!(
            "  {}: created {:>3}, completed {:>3}, average {}",
            day.day,
            day.created,
            day.completed,
            day.average_completion_seconds()
                .map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.0} s"))
        );
    }

    section("6. The same service over HTTP, driven by a real client");
    crate::over_http::drive(&store, &read_models, run, now).await?;

    section("7. Where each projection stands");
    running.print_lag().await?;
    running.stop().await?;
    println!(
        "\ncare-task run {run} done; run again and each projection resumes from its checkpoint"
    );
    Ok(())
}

fn target<P: Projection>() -> Target {
    Target {
        name: P::NAME,
        version: P::VERSION,
    }
}

async fn log_head(store: &SqliteStore) -> Result<u64, DemoError> {
    Ok(store.head().await?.map_or(0, |head| head.position))
}

/// Counts this run in a stream of its own: its version is the run number.
async fn start_run(store: &SqliteStore) -> Result<u64, DemoError> {
    let started = NewEvent::new(
        "RunStarted",
        1,
        serde_json::value::to_raw_value(&json!({ "program": "care-tasks" }))?,
        Metadata::default(),
    );
    let outcome = store
        .append(
            "example-runs",
            "ExampleRun",
            ExpectedVersion::Any,
            vec![started],
        )
        .await?;
    Ok(outcome.stream_version)
}

/// The coordinator of the ward.
fn dana() -> Actor {
    Actor::new(COORDINATOR, "dana")
}

/// A member of the care team.
fn member(id: &str) -> Actor {
    Actor::new(CARE_TEAM, id)
}

/// A context on ward 3, issued by `actor`.
fn on_the_ward(actor: Actor) -> CommandContext {
    CommandContext::new().actor(actor).tenant("ward-3")
}

/// This run's shift: four tasks, one reassigned, two completed, two left open.
fn shift(run: u64, now: DateTime<Utc>) -> Vec<(Actor, TaskCommand)> {
    let id = |n: u32| format!("T-{run:03}-{n}");
    let ago = |minutes: i64| now - TimeDelta::minutes(minutes);
    let later = |minutes: i64| now + TimeDelta::minutes(minutes);
    let create = |n, title: &str, recipient: &str, created: i64, due: DateTime<Utc>| {
        create_task(id(n), title, recipient, ago(created), due)
    };
    vec![
        (
            dana(),
            create(
                1,
                "Morning medication round",
                "Mrs. Jansen (room 12)",
                180,
                ago(60),
            ),
        ),
        (dana(), assign(id(1), "amira", ago(170))),
        (
            member("amira"),
            complete(id(1), "amira", ago(120), Some("all doses taken")),
        ),
        (
            dana(),
            create(
                2,
                "Wound dressing change",
                "Mr. Okafor (room 4)",
                150,
                ago(30),
            ),
        ),
        (dana(), assign(id(2), "ben", ago(140))),
        (dana(), assign(id(2), "amira", ago(90))),
        (member("amira"), complete(id(2), "amira", ago(35), None)),
        (
            dana(),
            create(3, "Help with lunch", "Mrs. Jansen (room 12)", 60, later(90)),
        ),
        (dana(), assign(id(3), "chloe", ago(55))),
        (
            dana(),
            create(
                4,
                "Book physiotherapy",
                "Mr. Okafor (room 4)",
                20,
                later(24 * 60),
            ),
        ),
    ]
}

/// Commands this run's tasks must refuse, each issued by someone the policy lets ask.
fn refused(run: u64, now: DateTime<Utc>) -> Vec<(Actor, TaskCommand)> {
    let id = |n: u32| format!("T-{run:03}-{n}");
    vec![
        (member("amira"), complete(id(1), "amira", now, None)),
        (dana(), assign(id(1), "ben", now)),
        (
            member("chloe"),
            complete(id(3), "chloe", now - TimeDelta::hours(5), None),
        ),
        (dana(), complete(id(4), "ben", now, None)),
        (dana(), assign(id(3), "ben", now - TimeDelta::hours(5))),
        (
            dana(),
            create_task(id(4), "Book physiotherapy", "Mr. Okafor (room 4)", now, now),
        ),
        (
            dana(),
            create_task(
                id(5),
                "Night check",
                "Mrs. Jansen (room 12)",
                now,
                now - TimeDelta::hours(1),
            ),
        ),
        (dana(), assign(format!("T-{run:03}-404"), "ben", now)),
    ]
}

/// Section 3b: commands from the wire (by name, as JSON) through the application: a
/// retried command answered from its record, an unknown kind of actor and a missing actor
/// refused by the application's rules, a denial by the task policy in the audit record,
/// and a query that waits for its own write.
async fn who_may_do_what(
    app: &Application<SqliteStore>,
    store: &SqliteStore,
    read_models: &SqliteReadModel,
    run: u64,
    now: DateTime<Utc>,
) -> Result<(), DemoError> {
    section("3b. Who may do what: commands by name from JSON, with an actor, through the policy");
    let task_id = format!("T-{run:03}-P");
    let create = json!({
        "task_id": task_id,
        "title": "Blood pressure check",
        "care_recipient": "Mrs. Jansen (room 12)",
        "due": now + TimeDelta::hours(1),
        "at": now,
    })
    .to_string();
    let ctx = on_the_ward(dana());
    let created = app.execute_json("CreateTask", &create, ctx.clone()).await?;
    // A client that lost the answer sends the command again, with the same command id.
    let retried = app.execute_json("CreateTask", &create, ctx).await?;
    let stream_version = store.stream_version(&created.stream_id).await?;
    if (&retried.event_ids, retried.position, stream_version)
        != (&created.event_ids, created.position, Some(1))
    {
        return Err(DemoError::Scenario(format!(
            "a retried command was not answered from its record: {retried:?}, stream at {stream_version:?}"
        )));
    }
    println!(
        "retried create of {task_id}: answered from its record (version {}, position {}, event {}), recorded once",
        created.version,
        created.position.unwrap_or_default(),
        created.event_ids[0]
    );
    app.execute_set(assign(task_id.clone(), "amira", now), on_the_ward(dana()))
        .await?;
    let completion = |by: &str| {
        json!({ "task_id": task_id, "completed_by": by, "at": now, "note": "120/80" }).to_string()
    };
    for (who, ctx) in [
        ("ben, not the assignee,", on_the_ward(member("ben"))),
        ("fay, a relative,", on_the_ward(Actor::new("family", "fay"))),
        ("someone without an actor", CommandContext::new()),
    ] {
        match app
            .execute_json("CompleteTask", &completion("ben"), ctx)
            .await
        {
            Err(refused) => println!("{who} completing: {}", factum::error::Report(&refused)),
            Ok(outcome) => {
                return Err(DemoError::Scenario(format!(
                    "{who} completing amira's task must be refused, got {outcome:?}"
                )));
            }
        }
    }
    let audit = factum::authorization::denials(store, &created.stream_id).await?;
    println!(
        "the audit record of {task_id} holds {} denial(s): {}",
        audit.len(),
        audit
            .iter()
            .map(|denial| format!(
                "{} by {} `{}` at {}: {}",
                denial.command,
                denial.actor_kind.as_deref().unwrap_or("-"),
                denial.actor.as_deref().unwrap_or("-"),
                denial.issued_at.format("%H:%M"),
                denial.reason
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let amira = on_the_ward(member("amira"));
    let completed = app
        .execute_json("CompleteTask", &completion("amira"), amira.clone())
        .await?;
    // The completion's answer was lost on the way: the client sends it again, same id.
    let again = app
        .execute_json("CompleteTask", &completion("amira"), amira)
        .await?;
    let events = store.stream_version(&created.stream_id).await?;
    if (&again.event_ids, again.version, events)
        != (&completed.event_ids, completed.version, Some(3))
    {
        return Err(DemoError::Scenario(format!(
            "a retried completion was not answered from its record: {again:?}, stream at {events:?}"
        )));
    }
    println!(
        "retried completion of {task_id}: the same answer (version {}, event {}), one TaskCompleted in the stream",
        again.version, again.event_ids[0]
    );
    let position = completed.position.unwrap_or_default();
    let queries = QueryRunner::new(store.clone(), read_models.clone());
    let answer = queries
        .ask(
            GetTaskById {
                task_id: task_id.clone(),
            },
            Consistency::at_least(position, Duration::from_secs(10)),
        )
        .await?;
    let status = match answer
        .value
        .as_ref()
        .and_then(|task| task.completed.as_ref())
    {
        Some(done) => format!("[done] by {}", done.by),
        None => "[open]".to_owned(),
    };
    println!(
        "GetTaskById {task_id}, at least position {position}: {status} ({})",
        describe_freshness(&answer.freshness)
    );
    Ok(())
}

fn create_task(
    task_id: String,
    title: &str,
    care_recipient: &str,
    at: DateTime<Utc>,
    due: DateTime<Utc>,
) -> TaskCommand {
    CreateTask {
        task_id,
        title: title.to_owned(),
        care_recipient: care_recipient.to_owned(),
        due,
        at,
    }
    .into()
}

fn assign(task_id: String, member: &str, at: DateTime<Utc>) -> TaskCommand {
    AssignTask {
        task_id,
        member: member.to_owned(),
        at,
    }
    .into()
}

fn complete(task_id: String, member: &str, at: DateTime<Utc>, note: Option<&str>) -> TaskCommand {
    CompleteTask {
        task_id,
        completed_by: member.to_owned(),
        at,
        note: note.map(str::to_owned),
    }
    .into()
}

/// Runs a command as `actor` and prints what it recorded.
async fn run_command(
    app: &Application<SqliteStore>,
    command: TaskCommand,
    actor: Actor,
) -> Result<(), DemoError> {
    let name = command.command_name();
    let who = actor.id.clone();
    let outcome = app.execute_set(command, on_the_ward(actor)).await?;
    let executed = outcome
        .executed::<Task>()
        .ok_or_else(|| DemoError::Scenario(format!("{name} did not go to a task")))?;
    let recorded: Vec<&str> = executed
        .events
        .iter()
        .map(|event| event.event_name())
        .collect();
    println!(
        "{who:<6} {name:<12} -> {:<14} {} now at version {}",
        recorded.join(", "),
        executed.stream_id,
        executed.version
    );
    Ok(())
}

/// `read model at position 41, 0 event(s) behind the log, fresh`.
fn describe_freshness(freshness: &factum::query::Freshness) -> String {
    format!(
        "read model at position {}, {} event(s) behind the log, {}{}",
        freshness.position,
        freshness.lag_events,
        if freshness.stale { "stale" } else { "fresh" },
        if freshness.rebuilding {
            ", a new version rebuilding"
        } else {
            ""
        }
    )
}

fn describe_lag(lag: &Lag) -> String {
    format!(
        "checkpoint {:>4}, head {:>4}: {} {} and {:.3} s behind",
        lag.checkpoint,
        lag.head,
        lag.events,
        if lag.events == 1 { "event" } else { "events" },
        lag.seconds
    )
}

/// `2h 05m`, `35m`.
fn duration(delta: TimeDelta) -> String {
    let minutes = delta.num_minutes().max(0);
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes}m"),
        (hours, minutes) => format!("{hours}h {minutes:02}m"),
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}
