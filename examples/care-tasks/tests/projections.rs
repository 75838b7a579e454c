//! The three projections over one scripted scenario: their answers, rebuilds that give
//! the same answers, and all three running side by side with their lag.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use factum::prelude::*;
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ProjectionRunner, ReadModel, Target};
use factum::store::SqliteStore;
use factum_example_care_tasks::projections::coordinator_task_list::{
    self, CoordinatorTaskList, TaskListEntry,
};
use factum_example_care_tasks::projections::daily_analytics::{self, DailyAnalytics, DailyFigures};
use factum_example_care_tasks::projections::member_task_history::{
    self, HistoryEntry, HistoryKind, MemberTaskHistory,
};
use factum_example_care_tasks::{AssignTask, CompleteTask, CreateTask, Task, TaskCommand};

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, hour, minute, 0)
        .single()
        .expect("a valid time")
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, day).expect("a valid date")
}

fn create(id: &str, title: &str, created: DateTime<Utc>, due: DateTime<Utc>) -> TaskCommand {
    CreateTask {
        task_id: id.into(),
        title: title.into(),
        care_recipient: "Mrs. Jansen (room 12)".into(),
        due,
        at: created,
    }
    .into()
}

fn assign(id: &str, member: &str, time: DateTime<Utc>) -> TaskCommand {
    AssignTask {
        task_id: id.into(),
        member: member.into(),
        at: time,
    }
    .into()
}

fn complete(id: &str, member: &str, time: DateTime<Utc>, note: Option<&str>) -> TaskCommand {
    CompleteTask {
        task_id: id.into(),
        completed_by: member.into(),
        at: time,
        note: note.map(Into::into),
    }
    .into()
}

/// Two days on the ward. T-1 and T-2 are done on the 10th (1 h and 2.5 h), T-3 is
/// created late on the 10th and done on the 11th (3 h); T-4 and T-5 stay open.
fn first_shift() -> Vec<TaskCommand> {
    vec![
        create("T-1", "Medication round", at(10, 8, 0), at(10, 10, 0)),
        assign("T-1", "amira", at(10, 8, 5)),
        complete("T-1", "amira", at(10, 9, 0), Some("all doses taken")),
        create("T-2", "Wound dressing", at(10, 8, 30), at(10, 12, 0)),
        assign("T-2", "ben", at(10, 8, 40)),
        assign("T-2", "amira", at(10, 10, 0)),
        complete("T-2", "amira", at(10, 11, 0), None),
        create("T-3", "Night check", at(10, 22, 0), at(11, 8, 0)),
        assign("T-3", "chloe", at(10, 22, 10)),
        complete("T-3", "chloe", at(11, 1, 0), None),
    ]
}

fn second_shift() -> Vec<TaskCommand> {
    vec![
        create("T-4", "Help with lunch", at(11, 7, 0), at(11, 12, 0)),
        assign("T-4", "ben", at(11, 7, 10)),
        create("T-5", "Book physiotherapy", at(11, 7, 30), at(12, 9, 0)),
    ]
}

struct Ward {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    read_models: SqliteReadModel,
    tasks: Repository<Task, SqliteStore>,
}

impl Ward {
    async fn open() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("the event store opens");
        let read_models = SqliteReadModel::open(dir.path().join("read-models"))
            .await
            .expect("the read-model directory opens");
        let tasks = Repository::new(store.clone());
        Self {
            _dir: dir,
            store,
            read_models,
            tasks,
        }
    }

    /// Runs the commands and returns the head of the log after them.
    async fn record(&self, commands: Vec<TaskCommand>) -> u64 {
        for command in commands {
            self.tasks
                .execute_with(
                    command,
                    CommandContext::new().actor(Actor::new("coordinator", "dana")),
                )
                .await
                .expect("the scenario's commands are accepted");
        }
        self.head().await
    }

    async fn head(&self) -> u64 {
        self.store
            .head()
            .await
            .expect("the head is readable")
            .map_or(0, |head| head.position)
    }

    async fn catch_up_all(&self, runner: &ProjectionRunner<SqliteStore>) {
        let read_models = &self.read_models;
        runner
            .catch_up_and_activate(&mut runner.projector(CoordinatorTaskList, read_models.clone()))
            .await
            .expect("the task list catches up");
        runner
            .catch_up_and_activate(&mut runner.projector(MemberTaskHistory, read_models.clone()))
            .await
            .expect("the history catches up");
        runner
            .catch_up_and_activate(&mut runner.projector(DailyAnalytics, read_models.clone()))
            .await
            .expect("the analytics catch up");
    }

    async fn answers(&self) -> Answers {
        answers_of(&self.read_models).await
    }
}

/// Everything the three read models in `read_models` answer.
async fn answers_of(read_models: &SqliteReadModel) -> Answers {
    let list = read_models
        .reader(coordinator_task_list::NAME)
        .await
        .expect("the task list is active");
    let history = read_models
        .reader(member_task_history::NAME)
        .await
        .expect("the history is active");
    let analytics = read_models
        .reader(daily_analytics::NAME)
        .await
        .expect("the analytics are active");
    let members = member_task_history::members(&history).expect("members are readable");
    Answers {
        task_list: coordinator_task_list::task_list(&list).expect("the list is readable"),
        open_tasks: coordinator_task_list::open_tasks(&list).expect("the list is readable"),
        histories: members
            .iter()
            .map(|member| {
                let entries =
                    member_task_history::history(&history, member).expect("a history is readable");
                (member.clone(), entries)
            })
            .collect(),
        days: daily_analytics::days(&analytics).expect("the days are readable"),
    }
}

/// Everything the three read models answer.
#[derive(Debug, PartialEq)]
struct Answers {
    task_list: Vec<TaskListEntry>,
    open_tasks: Vec<TaskListEntry>,
    histories: Vec<(String, Vec<HistoryEntry>)>,
    days: Vec<DailyFigures>,
}

fn ids(tasks: &[TaskListEntry]) -> Vec<&str> {
    tasks.iter().map(|task| task.task_id.as_str()).collect()
}

fn entry(task_id: &str, title: &str, kind: HistoryKind, at: DateTime<Utc>) -> HistoryEntry {
    HistoryEntry {
        task_id: task_id.into(),
        title: title.into(),
        kind,
        at,
    }
}

#[tokio::test]
async fn the_projections_answer_after_a_scenario() {
    let ward = Ward::open().await;
    ward.record(first_shift()).await;
    ward.record(second_shift()).await;
    let runner = ProjectionRunner::new(ward.store.clone());
    ward.catch_up_all(&runner).await;

    // The coordinator's list: open tasks by due time, then the completed ones, flagged.
    let reader = ward
        .read_models
        .reader(coordinator_task_list::NAME)
        .await
        .unwrap();
    let open = coordinator_task_list::open_tasks(&reader).unwrap();
    assert_eq!(ids(&open), ["T-4", "T-5"]);
    assert_eq!(
        (
            open[0].assignee.as_deref(),
            open[0].due,
            open[1].assignee.as_deref()
        ),
        (Some("ben"), at(11, 12, 0), None)
    );
    assert!(open[0].is_overdue(at(11, 13, 0)) && !open[1].is_overdue(at(11, 13, 0)));
    assert_eq!(open[0].age(at(11, 9, 0)).num_minutes(), 120);
    let all = coordinator_task_list::task_list(&reader).unwrap();
    assert_eq!(ids(&all), ["T-4", "T-5", "T-1", "T-2", "T-3"]);
    let t2 = coordinator_task_list::task(&reader, "T-2")
        .unwrap()
        .unwrap();
    let done = t2.completed.clone().expect("T-2 is flagged completed");
    assert_eq!(
        (t2.assignee.as_deref(), done.by.as_str(), done.at),
        (Some("amira"), "amira", at(10, 11, 0))
    );
    assert_eq!(
        t2.age(at(12, 0, 0)).num_minutes(),
        150,
        "a done task's age is how long it took"
    );
    assert_eq!(coordinator_task_list::task(&reader, "T-404").unwrap(), None);

    // The members' histories, in order, with reassignments on both sides.
    let reader = ward
        .read_models
        .reader(member_task_history::NAME)
        .await
        .unwrap();
    assert_eq!(
        member_task_history::history(&reader, "amira").unwrap(),
        [
            entry(
                "T-1",
                "Medication round",
                HistoryKind::Assigned { from: None },
                at(10, 8, 5)
            ),
            entry(
                "T-1",
                "Medication round",
                HistoryKind::Completed {
                    note: Some("all doses taken".into())
                },
                at(10, 9, 0)
            ),
            entry(
                "T-2",
                "Wound dressing",
                HistoryKind::Assigned {
                    from: Some("ben".into())
                },
                at(10, 10, 0)
            ),
            entry(
                "T-2",
                "Wound dressing",
                HistoryKind::Completed { note: None },
                at(10, 11, 0)
            ),
        ]
    );
    assert_eq!(
        member_task_history::history(&reader, "ben").unwrap(),
        [
            entry(
                "T-2",
                "Wound dressing",
                HistoryKind::Assigned { from: None },
                at(10, 8, 40)
            ),
            entry(
                "T-2",
                "Wound dressing",
                HistoryKind::ReassignedAway { to: "amira".into() },
                at(10, 10, 0)
            ),
            entry(
                "T-4",
                "Help with lunch",
                HistoryKind::Assigned { from: None },
                at(11, 7, 10)
            ),
        ]
    );
    assert_eq!(member_task_history::history(&reader, "nobody").unwrap(), []);
    assert_eq!(
        member_task_history::members(&reader).unwrap(),
        ["amira", "ben", "chloe"]
    );

    // Per UTC day: T-3 was created on the 10th and completed on the 11th.
    let reader = ward
        .read_models
        .reader(daily_analytics::NAME)
        .await
        .unwrap();
    let tenth = daily_analytics::day(&reader, date(10)).unwrap();
    assert_eq!(
        (
            tenth.created,
            tenth.completed,
            tenth.average_completion_seconds()
        ),
        (3, 2, Some(6300.0))
    );
    let eleventh = daily_analytics::day(&reader, date(11)).unwrap();
    assert_eq!(
        (
            eleventh.created,
            eleventh.completed,
            eleventh.average_completion_seconds()
        ),
        (2, 1, Some(10800.0))
    );
    let quiet = daily_analytics::day(&reader, date(12)).unwrap();
    assert_eq!(
        (
            quiet.created,
            quiet.completed,
            quiet.average_completion_seconds()
        ),
        (0, 0, None)
    );
}

#[tokio::test]
async fn rebuilding_each_projection_gives_identical_answers() {
    let ward = Ward::open().await;
    ward.record(first_shift()).await;
    let head = ward.record(second_shift()).await;
    let runner = ProjectionRunner::new(ward.store.clone()).batch_size(4);
    ward.catch_up_all(&runner).await;
    let before = ward.answers().await;

    let mut reports = Vec::new();
    let rebuilt = runner
        .rebuild(CoordinatorTaskList, ward.read_models.clone(), |progress| {
            reports.push(progress.position)
        })
        .await
        .unwrap();
    // Every task event is one the task list handles.
    assert_eq!((rebuilt.applied, rebuilt.checkpoint), (head, head));
    assert_eq!(reports.last(), Some(&head));
    let rebuilt = runner
        .rebuild(MemberTaskHistory, ward.read_models.clone(), |_| {})
        .await
        .unwrap();
    assert_eq!((rebuilt.applied, rebuilt.checkpoint), (head, head));
    let rebuilt = runner
        .rebuild(DailyAnalytics, ward.read_models.clone(), |_| {})
        .await
        .unwrap();
    // The analytics read creations and completions only: 5 + 3 of the events.
    assert_eq!((rebuilt.applied, rebuilt.checkpoint), (8, head));

    assert_eq!(ward.answers().await, before);
}

#[tokio::test]
async fn the_three_run_side_by_side_report_their_lag_and_resume_from_checkpoints() {
    let ward = Ward::open().await;
    let first = ward.record(first_shift()).await;
    let runner = ProjectionRunner::new(ward.store.clone());
    let mut handles = vec![
        runner.spawn(CoordinatorTaskList, ward.read_models.clone()),
        runner.spawn(MemberTaskHistory, ward.read_models.clone()),
        runner.spawn(DailyAnalytics, ward.read_models.clone()),
    ];
    // Before their first catch-up they are the whole log behind.
    for handle in &handles {
        let lag = handle.lag().await.unwrap();
        assert_eq!((lag.events, lag.head), (first, first), "{}", handle.name());
        assert!(lag.seconds > 0.0, "{}: {lag:?}", handle.name());
    }
    for handle in &mut handles {
        assert_eq!(handle.wait_for(first).await.unwrap(), first);
        let lag = handle.lag().await.unwrap();
        assert_eq!((lag.events, lag.seconds, lag.checkpoint), (0, 0.0, first));
    }

    // Live: events recorded while they run reach all three.
    let second = ward.record(second_shift()).await;
    for handle in &mut handles {
        handle.wait_for(second).await.unwrap();
        assert_eq!(handle.lag().await.unwrap().events, 0, "{}", handle.name());
    }
    let live = ward.answers().await;
    assert_eq!(ids(&live.open_tasks), ["T-4", "T-5"]);
    for handle in handles {
        handle.stop().await.unwrap();
    }

    // Stopped, they keep their checkpoints; started again, they resume from them.
    let third = ward
        .record(vec![complete("T-4", "ben", at(11, 11, 30), None)])
        .await;
    for (name, version) in [
        (CoordinatorTaskList::NAME, CoordinatorTaskList::VERSION),
        (MemberTaskHistory::NAME, MemberTaskHistory::VERSION),
        (DailyAnalytics::NAME, DailyAnalytics::VERSION),
    ] {
        let checkpoint = ward
            .read_models
            .checkpoint(Target { name, version })
            .await
            .unwrap();
        assert_eq!(checkpoint, Some(second), "{name}");
        assert_eq!(
            runner.lag_at(name, second).await.unwrap().events,
            third - second
        );
    }
    let mut list = runner.spawn(CoordinatorTaskList, ward.read_models.clone());
    list.wait_for(third).await.unwrap();
    list.stop().await.unwrap();
    let reader = ward
        .read_models
        .reader(coordinator_task_list::NAME)
        .await
        .unwrap();
    assert_eq!(
        ids(&coordinator_task_list::open_tasks(&reader).unwrap()),
        ["T-5"]
    );
}

#[tokio::test]
async fn the_queries_page_their_answers_and_say_how_fresh_they_are() {
    use factum::query::{Consistency, PageRequest, QueryError, QueryRunner};
    use factum_example_care_tasks::queries::{
        FindOpenTasksByAssignee, FindOpenTasksByCoordinator, GetDailyAnalytics, GetMemberHistory,
        GetTaskById,
    };

    let ward = Ward::open().await;
    let head = ward.record(first_shift()).await;
    let queries = QueryRunner::new(ward.store.clone(), ward.read_models.clone());
    let not_built = queries
        .ask(
            GetTaskById {
                task_id: "T-1".into(),
            },
            Consistency::Any,
        )
        .await;
    assert!(
        matches!(not_built, Err(QueryError::NotReady { .. })),
        "no model before a projection ran: {not_built:?}"
    );
    let runner = ProjectionRunner::new(ward.store.clone());
    ward.catch_up_all(&runner).await;
    // Written after the catch-up: the answers below are one shift behind until asked to
    // wait for it.
    let later = ward.record(second_shift()).await;

    let stale = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "dana".into(),
                page: PageRequest::first(1).unwrap(),
            },
            Consistency::Any,
        )
        .await
        .expect("answers");
    assert_eq!(stale.value.total, 0, "the first shift left nothing open");
    assert_eq!(
        (
            stale.freshness.position,
            stale.freshness.lag_events,
            stale.freshness.stale
        ),
        (head, later - head, false),
        "an answer of any freshness says how far behind it is"
    );

    // Catch up in the background, and wait for the second shift.
    let mut handles = vec![
        runner.spawn(CoordinatorTaskList, ward.read_models.clone()),
        runner.spawn(MemberTaskHistory, ward.read_models.clone()),
        runner.spawn(DailyAnalytics, ward.read_models.clone()),
    ];
    let wait = |position| Consistency::at_least(position, std::time::Duration::from_secs(30));
    let first = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "dana".into(),
                page: PageRequest::first(1).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!(
        (
            first.value.total,
            first.value.pages(),
            first.value.has_next()
        ),
        (2, 2, true)
    );
    assert_eq!(ids(&first.value.items), ["T-4"]);
    assert!(!first.freshness.stale && first.freshness.position >= later);
    let second = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "dana".into(),
                page: PageRequest::new(2, 1).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!(ids(&second.value.items), ["T-5"]);
    assert!(!second.value.has_next());
    let beyond = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "dana".into(),
                page: PageRequest::new(3, 1).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert!(beyond.value.items.is_empty() && beyond.value.total == 2);
    let bens = queries
        .ask(
            FindOpenTasksByAssignee {
                member: "ben".into(),
                page: PageRequest::first(10).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!(ids(&bens.value.items), ["T-4"]);
    let nobody = queries
        .ask(
            FindOpenTasksByCoordinator {
                coordinator: "erin".into(),
                page: PageRequest::first(10).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!((nobody.value.total, nobody.value.pages()), (0, 0));

    let history = queries
        .ask(
            GetMemberHistory {
                member: "amira".into(),
                page: PageRequest::first(3).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!(history.value.total, 4);
    let reader = ward
        .read_models
        .reader(member_task_history::NAME)
        .await
        .unwrap();
    let oldest_first = member_task_history::history(&reader, "amira").unwrap();
    assert_eq!(
        history.value.items,
        oldest_first
            .iter()
            .rev()
            .take(3)
            .cloned()
            .collect::<Vec<_>>(),
        "the newest three of the whole history"
    );
    let days = queries
        .ask(
            GetDailyAnalytics {
                page: PageRequest::first(1).unwrap(),
            },
            wait(later),
        )
        .await
        .expect("answers");
    assert_eq!(
        (
            days.value.total,
            days.value.items[0].day,
            days.value.items[0].created
        ),
        (2, date(11), 2),
        "newest day first"
    );
    let missing = queries
        .ask(
            GetTaskById {
                task_id: "T-404".into(),
            },
            wait(later),
        )
        .await
        .expect("not-found is an answer");
    assert_eq!(missing.value, None);
    assert!(matches!(
        PageRequest::new(1, 1001),
        Err(QueryError::InvalidPage {
            page: 1,
            size: 1001
        })
    ));
    for handle in handles.drain(..) {
        handle.stop().await.expect("stops cleanly");
    }
}

/// The consistency checker: each projection rebuilt from the log into a shadow read model
/// matches its live model row for row; a live row changed behind the projection's back
/// shows as the two rows that differ; a live model behind the log is refused, not
/// misreported.
#[tokio::test]
async fn the_consistency_checker_finds_a_live_model_that_drifted_from_its_events() {
    use factum::projection::{ConsistencyError, Difference, check_consistency};
    let ward = Ward::open().await;
    ward.record(first_shift()).await;
    let head = ward.record(second_shift()).await;
    let runner = ProjectionRunner::new(ward.store.clone());
    ward.catch_up_all(&runner).await;

    let checked = check_consistency(&runner, CoordinatorTaskList, &ward.read_models)
        .await
        .expect("checks");
    assert!(
        checked.is_consistent(),
        "{checked}: {:?}",
        checked.differences
    );
    assert_eq!(
        (checked.checkpoint, checked.tables, checked.rows),
        (head, 1, 5)
    );
    assert_eq!(
        checked.to_string(),
        format!(
            "coordinator_task_list v1 at checkpoint {head}: 1 table(s), 5 row(s) rebuilt: consistent"
        )
    );
    for consistent in [
        check_consistency(&runner, MemberTaskHistory, &ward.read_models)
            .await
            .expect("checks"),
        check_consistency(&runner, DailyAnalytics, &ward.read_models)
            .await
            .expect("checks"),
    ] {
        assert!(
            consistent.is_consistent(),
            "{consistent}: {:?}",
            consistent.differences
        );
    }

    // A hand edit of the live task list.
    let target = Target {
        name: coordinator_task_list::NAME,
        version: 1,
    };
    let edit = rusqlite::Connection::open(ward.read_models.path_of(target)).expect("the file");
    assert_eq!(
        edit.execute(
            "UPDATE tasks SET title = 'Tampered' WHERE task_id = 'T-2'",
            []
        )
        .expect("an edit"),
        1
    );
    drop(edit);
    let drifted = check_consistency(&runner, CoordinatorTaskList, &ward.read_models)
        .await
        .expect("checks");
    assert!(!drifted.is_consistent());
    assert_eq!(drifted.differences.len(), 2, "{:?}", drifted.differences);
    assert!(
        matches!(
            &drifted.differences[0],
            Difference::Row { table, row, in_live: true } if table == "tasks" && row.contains("'Tampered'")
        ),
        "{:?}",
        drifted.differences
    );
    assert!(
        matches!(
            &drifted.differences[1],
            Difference::Row { table, row, in_live: false } if table == "tasks" && row.contains("'T-2'")
        ),
        "{:?}",
        drifted.differences
    );

    // The log moved on; the live model did not catch up.
    ward.record(vec![create(
        "T-9",
        "Late round",
        at(11, 20, 0),
        at(11, 22, 0),
    )])
    .await;
    let behind = check_consistency(&runner, MemberTaskHistory, &ward.read_models)
        .await
        .expect_err("not at the same checkpoint");
    assert!(
        matches!(behind, ConsistencyError::NotAtTheSameCheckpoint { live, rebuilt, .. } if live == head && rebuilt == head + 1),
        "{behind}"
    );

    // Every shadow was discarded, the refused check's too.
    let shadows_left: Vec<String> = std::fs::read_dir(ward.read_models.dir())
        .expect("the read-model directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(".shadow"))
        .collect();
    assert_eq!(shadows_left, Vec::<String>::new());
}

/// The three projections fed from Kafka (a real Kafka-protocol broker,
/// `FACTUM_KAFKA_BROKERS` from `eval "$(scripts/kafka.sh start)"`; without it the test
/// fails): the store's log published by `KafkaPublisher`, each projection built by a
/// `KafkaConsumer` of its own group into a read-model directory of its own, answers
/// exactly what the projections built from the store answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projections_fed_over_kafka_answer_as_from_the_store() {
    use factum::kafka::{KafkaConsumer, KafkaPublisher};
    use factum::projection::{Projection, Projector};
    use std::time::Duration;

    let Some(brokers) = std::env::var("FACTUM_KAFKA_BROKERS")
        .ok()
        .filter(|brokers| !brokers.trim().is_empty())
    else {
        panic!(
            "FACTUM_KAFKA_BROKERS is not set: this test feeds the projections over a real \
             Kafka-protocol broker. Start one with `eval \"$(scripts/kafka.sh start)\"`."
        );
    };
    let ward = Ward::open().await;
    ward.record(first_shift()).await;
    let head = ward.record(second_shift()).await;
    ward.catch_up_all(&ProjectionRunner::new(ward.store.clone()))
        .await;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("care-{}-{nanos}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let publisher_checkpoints = SqliteReadModel::open(dir.path().join("publisher"))
        .await
        .unwrap();
    let published = KafkaPublisher::new(ward.store.clone(), publisher_checkpoints, &brokers)
        .topic_prefix(&prefix)
        .publish_pending()
        .await
        .unwrap();
    assert_eq!(published.checkpoint, head);

    let over_kafka = SqliteReadModel::open(dir.path().join("over-kafka"))
        .await
        .unwrap();
    async fn consume<P: Projection<Tx = factum::projection::sqlite::SqliteTx>>(
        projection: P,
        read_models: &SqliteReadModel,
        brokers: &str,
        prefix: &str,
    ) -> u64 {
        let consumed = KafkaConsumer::new(Projector::new(projection, read_models.clone()), brokers)
            .topic_prefix(prefix)
            .group(format!("{prefix}-{}", P::NAME))
            .idle_wait(Duration::from_millis(200))
            .consume_available(Duration::from_secs(120))
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", P::NAME));
        assert!(consumed.foreign.is_empty(), "{:?}", consumed.foreign);
        consumed.applied
    }
    assert_eq!(
        consume(CoordinatorTaskList, &over_kafka, &brokers, &prefix).await,
        head
    );
    assert_eq!(
        consume(MemberTaskHistory, &over_kafka, &brokers, &prefix).await,
        head
    );
    // The analytics read creations and completions only.
    assert_eq!(
        consume(DailyAnalytics, &over_kafka, &brokers, &prefix).await,
        8
    );
    assert_eq!(answers_of(&over_kafka).await, ward.answers().await);
}
