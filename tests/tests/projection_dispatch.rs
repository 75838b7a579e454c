//! What `#[projection]` and `#[reactor]` generate, driven by hand with recorded events:
//! the handled names, dispatch by name to the right handler with the decoded event (older
//! versions upcast) and the same read-model transaction, ignoring of other names, and
//! decode failures that name the stream, its version and position, and the event.

use factum::prelude::*;
use factum::projection::sqlite::{SqliteReadModel, SqliteTx};
use factum::projection::{ReadModel, Target};
use serde_json::json;

#[event(name = "TaskCreated", version = 1)]
pub struct TaskCreatedV1 {
    pub title: String,
}

#[event(name = "TaskCreated", version = 2, upcast_from = TaskCreatedV1)]
pub struct TaskCreated {
    pub title: String,
    pub priority: u8,
}

impl From<TaskCreatedV1> for TaskCreated {
    fn from(old: TaskCreatedV1) -> Self {
        Self {
            title: old.title,
            priority: 3,
        }
    }
}

#[event(name = "TaskDone")]
pub struct TaskDone {}

/// Handled by neither consumer.
#[event(name = "TaskRenamed")]
pub struct TaskRenamed {
    pub title: String,
}

/// Which handler ran, for which stream and position, with what.
#[derive(Debug, PartialEq)]
enum Call {
    Setup,
    Created {
        stream: String,
        position: u64,
        title: String,
        priority: u8,
    },
    Done {
        stream: String,
        stream_version: u64,
    },
}

#[derive(Default)]
pub struct TaskList {
    calls: Vec<Call>,
}

#[projection(name = "task_list", version = 2)]
impl TaskList {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        self.calls.push(Call::Setup);
        tx.execute(
            "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        self.calls.push(Call::Created {
            stream: e.stream_id().to_owned(),
            position: e.position(),
            title: e.title.clone(),
            priority: e.priority,
        });
        tx.execute(
            "INSERT INTO tasks VALUES (?1, ?2, 0)",
            (e.stream_id(), &e.title),
        )?;
        Ok(())
    }

    #[on]
    async fn done(
        &mut self,
        e: &Recorded<'_, TaskDone>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        self.calls.push(Call::Done {
            stream: e.stream_id().to_owned(),
            stream_version: e.stream_version(),
        });
        tx.execute("UPDATE tasks SET done = 1 WHERE id = ?1", [e.stream_id()])?;
        Ok(())
    }
}

#[derive(Default)]
pub struct Reminders {
    sent: Vec<String>,
}

#[reactor]
impl Reminders {
    #[on]
    async fn created(&mut self, e: &Recorded<TaskCreated>) -> Result<(), ProjectionError> {
        if e.priority > 4 {
            return Err(ProjectionError::msg(format!(
                "no one to remind about `{}`",
                e.title
            )));
        }
        self.sent.push(format!("remember {}", e.title));
        Ok(())
    }
}

fn record(
    stream: &str,
    stream_version: u64,
    position: u64,
    name: &str,
    schema_version: u32,
    payload: serde_json::Value,
) -> RecordedEvent {
    RecordedEvent {
        event_id: factum::uuid::Uuid::now_v7(),
        stream_id: stream.to_owned(),
        stream_type: "Task".to_owned(),
        stream_version,
        position,
        name: name.to_owned(),
        schema_version,
        stored_schema_version: None,
        payload: serde_json::value::to_raw_value(&payload).expect("a JSON value serialises"),
        timestamp: Default::default(),
        metadata: Metadata::default(),
        tags: Vec::new(),
    }
}

/// A read model in a fresh directory, removed when dropped.
struct ScratchReadModel {
    read_model: SqliteReadModel,
    dir: std::path::PathBuf,
}

impl ScratchReadModel {
    async fn open() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "factum-projection-dispatch-{}",
            factum::uuid::Uuid::now_v7()
        ));
        let read_model = SqliteReadModel::open(&dir)
            .await
            .expect("the read-model directory opens");
        Self { read_model, dir }
    }

    async fn begin(&self) -> SqliteTx {
        let target = Target {
            name: TaskList::NAME,
            version: TaskList::VERSION,
        };
        self.read_model
            .begin(target)
            .await
            .expect("a transaction begins")
    }
}

impl Drop for ScratchReadModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tasks(tx: &SqliteTx) -> Vec<(String, String, bool)> {
    let mut statement = tx
        .prepare("SELECT id, title, done FROM tasks ORDER BY id")
        .expect("the query prepares");
    statement
        .query_map((), |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("the query runs")
        .collect::<Result<_, _>>()
        .expect("the rows read")
}

#[test]
fn the_attributes_name_the_consumers_and_the_events_they_handle() {
    assert_eq!(TaskList::NAME, "task_list");
    assert_eq!(TaskList::VERSION, 2);
    assert_eq!(TaskList::EVENTS, ["TaskCreated", "TaskDone"]);
    assert_eq!(Reminders::NAME, "Reminders");
    assert_eq!(Reminders::EVENTS, ["TaskCreated"]);
}

#[tokio::test]
async fn each_event_reaches_its_handler_decoded_and_with_the_transaction() {
    let scratch = ScratchReadModel::open().await;
    let mut tx = scratch.begin().await;
    let mut list = TaskList::default();

    list.setup(&mut tx).await.expect("setup succeeds");
    let created_v2 = record(
        "task-1",
        1,
        10,
        "TaskCreated",
        2,
        json!({ "title": "water plants", "priority": 1 }),
    );
    let created_v1 = record(
        "task-2",
        1,
        11,
        "TaskCreated",
        1,
        json!({ "title": "feed cat" }),
    );
    let done = record("task-1", 2, 12, "TaskDone", 1, json!({}));
    for event in [&created_v2, &created_v1, &done] {
        list.handle(event, &mut tx)
            .await
            .expect("the handler succeeds");
    }

    assert_eq!(
        list.calls,
        [
            Call::Setup,
            Call::Created {
                stream: "task-1".into(),
                position: 10,
                title: "water plants".into(),
                priority: 1,
            },
            // Stored as version 1: upcast to the handler's version 2.
            Call::Created {
                stream: "task-2".into(),
                position: 11,
                title: "feed cat".into(),
                priority: 3,
            },
            Call::Done {
                stream: "task-1".into(),
                stream_version: 2,
            },
        ]
    );
    assert_eq!(
        tasks(&tx),
        [
            ("task-1".into(), "water plants".into(), true),
            ("task-2".into(), "feed cat".into(), false),
        ]
    );
    scratch
        .read_model
        .rollback(tx)
        .await
        .expect("the transaction rolls back");
}

#[tokio::test]
async fn events_of_other_names_are_ignored() {
    let scratch = ScratchReadModel::open().await;
    let mut tx = scratch.begin().await;
    let mut list = TaskList::default();
    let mut reminders = Reminders::default();

    let renamed = record(
        "task-1",
        3,
        13,
        "TaskRenamed",
        1,
        json!({ "title": "water all plants" }),
    );
    // Even a payload no event type could decode: an unhandled name is not decoded at all.
    let unknown = record("task-1", 4, 14, "TaskArchived", 7, json!("not an object"));
    for event in [&renamed, &unknown] {
        list.handle(event, &mut tx)
            .await
            .expect("an unhandled event is no failure");
        reminders
            .react(event)
            .await
            .expect("an unhandled event is no failure");
    }

    assert_eq!(list.calls, []);
    assert_eq!(reminders.sent, Vec::<String>::new());
    scratch
        .read_model
        .rollback(tx)
        .await
        .expect("the transaction rolls back");
}

#[tokio::test]
async fn a_payload_that_does_not_decode_fails_naming_stream_version_and_event() {
    let scratch = ScratchReadModel::open().await;
    let mut tx = scratch.begin().await;
    let mut list = TaskList::default();

    let wrong_shape = record(
        "task-9",
        4,
        42,
        "TaskCreated",
        2,
        json!({ "title": "water plants", "priority": "high" }),
    );
    let error = list
        .handle(&wrong_shape, &mut tx)
        .await
        .expect_err("the payload does not match version 2");
    let message = error.message();
    for part in [
        "stream `task-9` version 4 (position 42)",
        "cannot decode event `TaskCreated` version 2",
        "at `priority`",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }

    let too_new = record(
        "task-9",
        5,
        43,
        "TaskCreated",
        3,
        json!({ "title": "water plants" }),
    );
    let error = Reminders::default()
        .react(&too_new)
        .await
        .expect_err("version 3 is newer than the code");
    let message = error.message();
    for part in [
        "stream `task-9` version 5 (position 43)",
        "cannot decode event `TaskCreated` version 3",
        "newer than this code knows (newest known: 2)",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }

    assert_eq!(list.calls, [], "no handler ran for an undecodable event");
    scratch
        .read_model
        .rollback(tx)
        .await
        .expect("the transaction rolls back");
}

#[tokio::test]
async fn a_handler_error_is_the_dispatch_result() {
    let mut reminders = Reminders::default();
    let ordinary = record(
        "task-1",
        1,
        1,
        "TaskCreated",
        2,
        json!({ "title": "water plants", "priority": 2 }),
    );
    let urgent = record(
        "task-2",
        1,
        2,
        "TaskCreated",
        2,
        json!({ "title": "call the vet", "priority": 5 }),
    );

    reminders
        .react(&ordinary)
        .await
        .expect("the reminder is sent");
    let error = reminders
        .react(&urgent)
        .await
        .expect_err("the handler refuses");

    assert_eq!(error.message(), "no one to remind about `call the vet`");
    assert_eq!(reminders.sent, ["remember water plants"]);
}
