//! The query side on a SQLite read model: typed questions with not-found as an answer,
//! paging with a total, freshness on every answer, and a reader that waits for its own
//! write (bounded), flagged stale when the bound passes first.

use std::time::Duration;

use factum::envelope::RecordedEvent;
use factum::prelude::*;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::query::{Consistency, Page, PageRequest, Query, QueryError, QueryRunner};
use factum::store::SqliteStore;

#[event(name = "TaskCreated")]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCreated {
    pub title: String,
    pub coordinator: String,
}

#[derive(Events, Debug, Clone, PartialEq)]
pub enum TaskEvent {
    Created(TaskCreated),
}

#[command]
pub struct CreateTask {
    #[aggregate_id]
    pub task_id: String,
    pub title: String,
}

#[derive(Commands)]
pub enum TaskCommand {
    Create(CreateTask),
}

#[derive(Debug, thiserror::Error)]
#[error("a task needs a coordinator")]
pub struct NoCoordinator;

#[derive(Debug, Default)]
pub struct Task;

#[aggregate(events = TaskEvent, commands = TaskCommand, error = NoCoordinator)]
impl Task {
    #[handle]
    fn create(
        &self,
        command: CreateTask,
        ctx: &CommandContext,
    ) -> Result<TaskCreated, NoCoordinator> {
        let coordinator = ctx.actor.as_ref().ok_or(NoCoordinator)?;
        Ok(TaskCreated {
            title: command.title,
            coordinator: coordinator.id.clone(),
        })
    }

    #[apply]
    fn created(&mut self, _: &TaskCreated) {}
}

/// Tasks by id, with their coordinator.
struct TaskList;

impl Projection for TaskList {
    const NAME: &'static str = "task_list";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["TaskCreated"];
    type Tx = SqliteTx;

    async fn setup(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, coordinator TEXT NOT NULL)",
        )?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        let created: TaskCreated =
            serde_json::from_str(event.payload.get()).map_err(ProjectionError::msg)?;
        tx.execute(
            "INSERT INTO tasks (id, title, coordinator) VALUES (?1, ?2, ?3)",
            rusqlite::params![event.stream_id, created.title, created.coordinator],
        )?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
struct TaskRow {
    id: String,
    title: String,
}

/// A question about one task; `None` when there is no such task.
struct GetTaskById(String);

impl Query<SqliteReadModel> for GetTaskById {
    const NAME: &'static str = "GetTaskById";
    const PROJECTION: &'static str = TaskList::NAME;
    type Answer = Option<TaskRow>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        let id = self.0;
        Ok(read_model
            .read(Self::PROJECTION, move |db| {
                use rusqlite::OptionalExtension;
                db.query_row("SELECT id, title FROM tasks WHERE id = ?1", [&id], |row| {
                    Ok(TaskRow {
                        id: row.get(0)?,
                        title: row.get(1)?,
                    })
                })
                .optional()
            })
            .await?)
    }
}

/// A coordinator's tasks, a page at a time.
struct FindTasksByCoordinator {
    coordinator: String,
    page: PageRequest,
}

impl Query<SqliteReadModel> for FindTasksByCoordinator {
    const NAME: &'static str = "FindTasksByCoordinator";
    const PROJECTION: &'static str = TaskList::NAME;
    type Answer = Page<TaskRow>;

    async fn answer(self, read_model: &SqliteReadModel) -> Result<Self::Answer, QueryError> {
        let Self { coordinator, page } = self;
        let (items, total) = read_model
            .read(Self::PROJECTION, move |db| {
                let total: i64 = db.query_row(
                    "SELECT count(*) FROM tasks WHERE coordinator = ?1",
                    [&coordinator],
                    |row| row.get(0),
                )?;
                let mut statement = db.prepare(
                    "SELECT id, title FROM tasks WHERE coordinator = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
                )?;
                let items = statement
                    .query_map(
                        rusqlite::params![coordinator, page.size(), page.offset() as i64],
                        |row| Ok(TaskRow { id: row.get(0)?, title: row.get(1)? }),
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((items, total))
            })
            .await?;
        Ok(page.page_of(items, total.unsigned_abs()))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    read_models: SqliteReadModel,
    tasks: Repository<Task, SqliteStore>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.sqlite3"))
        .await
        .unwrap();
    let read_models = SqliteReadModel::open(dir.path().join("read-models"))
        .await
        .unwrap();
    let tasks = Repository::new(store.clone());
    Fixture {
        _dir: dir,
        store,
        read_models,
        tasks,
    }
}

async fn create(tasks: &Repository<Task, SqliteStore>, id: &str, coordinator: &str) -> u64 {
    tasks
        .execute_with(
            CreateTask {
                task_id: id.into(),
                title: format!("task {id}"),
            },
            CommandContext::new().actor(Actor::new("care_coordinator", coordinator)),
        )
        .await
        .unwrap()
        .position
        .expect("a created task has a position")
}

#[tokio::test]
async fn a_caught_up_model_answers_with_its_freshness_and_not_found_is_an_answer() {
    let Fixture {
        store,
        read_models,
        tasks,
        _dir,
    } = fixture().await;
    let queries = QueryRunner::new(store.clone(), read_models.clone());
    let not_yet = queries
        .ask(GetTaskById("Task-1".into()), Consistency::Any)
        .await;
    assert!(
        matches!(
            not_yet,
            Err(QueryError::NotReady {
                query: "GetTaskById",
                projection: "task_list"
            })
        ),
        "{not_yet:?}"
    );

    for (n, coordinator) in ["CC1", "CC2", "CC1", "CC1", "CC1"].iter().enumerate() {
        create(&tasks, &format!("{}", n + 1), coordinator).await;
    }
    // One call: the first version to catch up is the one readers see.
    let runner = ProjectionRunner::new(store.clone());
    runner
        .catch_up(&mut runner.projector(TaskList, read_models.clone()))
        .await
        .unwrap();

    let found = queries
        .ask(GetTaskById("Task-2".into()), Consistency::Any)
        .await
        .unwrap();
    assert_eq!(
        found.value,
        Some(TaskRow {
            id: "Task-2".into(),
            title: "task 2".into()
        })
    );
    let freshness = &found.freshness;
    assert_eq!(
        (
            freshness.projection,
            freshness.version,
            freshness.position,
            freshness.head,
            freshness.lag_events
        ),
        ("task_list", 1, 5, 5, 0)
    );
    assert!(!freshness.stale && !freshness.rebuilding);
    assert_eq!(
        queries
            .ask(GetTaskById("Task-9".into()), Consistency::Any)
            .await
            .unwrap()
            .value,
        None,
        "not found is a typed answer"
    );

    let page = |n| FindTasksByCoordinator {
        coordinator: "CC1".into(),
        page: PageRequest::new(n, 3).unwrap(),
    };
    let first = queries.ask(page(1), Consistency::Any).await.unwrap().value;
    assert_eq!(
        (
            first
                .items
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>(),
            first.total,
            first.pages(),
            first.has_next()
        ),
        (vec!["Task-1", "Task-3", "Task-4"], 4, 2, true)
    );
    let second = queries.ask(page(2), Consistency::Any).await.unwrap().value;
    assert_eq!((second.items.len(), second.has_next()), (1, false));
    assert!(matches!(
        PageRequest::new(0, 10),
        Err(QueryError::InvalidPage { page: 0, size: 10 })
    ));
    assert!(matches!(
        PageRequest::new(1, 1001),
        Err(QueryError::InvalidPage { .. })
    ));

    // A write the model has not applied: lag, and an at-least read flagged stale.
    let position = create(&tasks, "6", "CC2").await;
    let behind = queries
        .ask(
            GetTaskById("Task-6".into()),
            Consistency::at_least(position, Duration::from_millis(30)),
        )
        .await
        .unwrap();
    assert_eq!(behind.value, None);
    assert!(behind.freshness.stale);
    assert_eq!(
        (behind.freshness.position, behind.freshness.lag_events),
        (5, 1)
    );
    assert!(behind.freshness.lag_seconds >= 0.0);
    let timeout = queries
        .wait_for("task_list", position, Duration::from_millis(30))
        .await;
    assert!(
        matches!(
            timeout,
            Err(QueryError::Timeout {
                projection: "task_list",
                position: 6,
                reached: 5,
                ..
            })
        ),
        "{timeout:?}"
    );
}

#[tokio::test]
async fn a_reader_waits_for_its_own_write() {
    let Fixture {
        store,
        read_models,
        tasks,
        _dir,
    } = fixture().await;
    let runner = ProjectionRunner::new(store.clone()).idle_wait(Duration::from_millis(20));
    let mut live = runner.spawn(TaskList, read_models.clone());
    create(&tasks, "1", "CC1").await;
    live.wait_for(1).await.unwrap();
    let queries = QueryRunner::new(store.clone(), read_models.clone());

    for n in 2..=20 {
        let id = n.to_string();
        let position = create(&tasks, &id, "CC1").await;
        let answer = queries
            .ask(
                GetTaskById(format!("Task-{id}")),
                Consistency::at_least(position, Duration::from_secs(10)),
            )
            .await
            .unwrap();
        assert!(!answer.freshness.stale);
        assert!(answer.freshness.position >= position);
        assert_eq!(
            answer.value.map(|task| task.id),
            Some(format!("Task-{id}")),
            "its own write"
        );
    }
    live.stop().await.unwrap();
}
