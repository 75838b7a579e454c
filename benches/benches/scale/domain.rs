//! What the scale bench stores: care-task streams (created → assigned → noted →
//! completed, as in the catch-up bench), the `Task` aggregate that loads them (it takes
//! snapshots), and the SQL of the task-board projection that follows them.

use factum::prelude::*;

/// The stream type of every stream the bench writes.
pub const STREAM_TYPE: &str = "Task";

/// A task was created.
#[event(name = "TaskCreated", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCreated {
    pub title: String,
}

/// A task was assigned to a member.
#[event(name = "TaskAssigned", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAssigned {
    pub member: String,
}

/// A note was added to a task.
#[event(name = "TaskNoted", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskNoted {
    pub text: String,
}

/// A task was completed.
#[event(name = "TaskCompleted", version = 1)]
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCompleted {
    pub minutes: u32,
}

/// The task's events.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum TaskEvent {
    Created(TaskCreated),
    Assigned(TaskAssigned),
    Noted(TaskNoted),
    Completed(TaskCompleted),
}

/// Add a note to a task.
#[command(name = "AddNote")]
#[derive(Debug, Clone)]
pub struct AddNote {
    #[aggregate_id]
    pub task: String,
    pub text: String,
}

/// The task's commands.
#[derive(Commands)]
pub enum TaskCommand {
    AddNote(AddNote),
}

/// Why a note is refused.
#[derive(Debug, thiserror::Error)]
#[error("the task does not exist")]
pub struct NoSuchTask;

/// A task's state, as loads rebuild it; snapshots of it have schema version 1.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub created: bool,
    pub member: Option<String>,
    pub notes: u64,
    pub note_bytes: u64,
    pub minutes: Option<u32>,
}

#[aggregate(name = "Task", events = TaskEvent, commands = TaskCommand, error = NoSuchTask, snapshot = 1)]
impl Task {
    #[handle]
    fn add_note(&self, command: AddNote) -> Result<TaskNoted, NoSuchTask> {
        if !self.created {
            return Err(NoSuchTask);
        }
        Ok(TaskNoted { text: command.text })
    }

    #[apply]
    fn created(&mut self, _event: &TaskCreated) {
        self.created = true;
    }

    #[apply]
    fn assigned(&mut self, event: &TaskAssigned) {
        self.member = Some(event.member.clone());
    }

    #[apply]
    fn noted(&mut self, event: &TaskNoted) {
        self.notes += 1;
        self.note_bytes += event.text.len() as u64;
    }

    #[apply]
    fn completed(&mut self, event: &TaskCompleted) {
        self.minutes = Some(event.minutes);
    }
}

/// The metadata every appended event carries: a command's, with an actor.
pub fn metadata() -> Metadata {
    CommandContext::new()
        .actor(Actor::new("care_coordinator", "dana"))
        .event_metadata()
}

fn new_event(name: &str, payload: serde_json::Value, metadata: &Metadata) -> NewEvent {
    NewEvent::new(
        name,
        1,
        serde_json::value::to_raw_value(&payload).expect("a JSON payload"),
        metadata.clone(),
    )
}

/// The `n`th event of task `task`'s life: created, assigned, noted, completed (any
/// `n` past 3 is another note).
pub fn task_event(task: u64, n: u64, metadata: &Metadata) -> NewEvent {
    match n {
        0 => new_event(
            "TaskCreated",
            serde_json::json!({ "title": format!("water the plants #{task}") }),
            metadata,
        ),
        1 => new_event(
            "TaskAssigned",
            serde_json::json!({ "member": format!("member-{}", task % 40) }),
            metadata,
        ),
        3 => new_event(
            "TaskCompleted",
            serde_json::json!({ "minutes": task % 90 }),
            metadata,
        ),
        _ => note(task, metadata),
    }
}

/// A note on task `task`.
pub fn note(task: u64, metadata: &Metadata) -> NewEvent {
    new_event(
        "TaskNoted",
        serde_json::json!({ "text": format!("the ficus of #{task} looks thirsty") }),
        metadata,
    )
}

/// The read model's tables.
pub const TABLES: &str = "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, member TEXT, notes INTEGER NOT NULL DEFAULT 0, minutes INTEGER);
     CREATE TABLE members (member TEXT PRIMARY KEY, completed INTEGER NOT NULL, minutes INTEGER NOT NULL);";

/// The SQL each event runs (SQLite takes `$1` as `?1` after [`sqlite`]).
pub const INSERT_TASK: &str = "INSERT INTO tasks (id, title) VALUES ($1, $2)";
/// Assigning.
pub const ASSIGN_TASK: &str = "UPDATE tasks SET member = $2 WHERE id = $1";
/// Noting.
pub const NOTE_TASK: &str = "UPDATE tasks SET notes = notes + 1 WHERE id = $1";
/// Completing: the task, then the member's totals.
pub const COMPLETE_TASK: &str = "UPDATE tasks SET minutes = $2 WHERE id = $1";
/// The member's totals.
pub const COUNT_COMPLETION: &str = "INSERT INTO members (member, completed, minutes)
     SELECT member, 1, minutes FROM tasks WHERE id = $1 AND member IS NOT NULL
     ON CONFLICT (member) DO UPDATE SET completed = members.completed + 1, minutes = members.minutes + excluded.minutes";

/// `$1` placeholders as SQLite's numbered `?1`.
pub fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}
