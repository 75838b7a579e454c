//! The events both sides of the catch-up bench read: 2,500 task streams of
//! created → assigned → noted → completed (10,000 events; the projection handles 7,500 —
//! `TaskNoted` is filtered out by the store for factum and by the query for raw).

use factum::prelude::*;
use serde::Deserialize;

/// Streams in the log.
pub const STREAMS: usize = 2_500;
/// Events in the log.
pub const EVENTS: usize = STREAMS * 4;
/// Events the projection handles.
pub const HANDLED: usize = STREAMS * 3;
/// Events per read and per read-model transaction, on both sides.
pub const BATCH: usize = 500;

/// A task was created.
#[event(name = "TaskCreated", version = 1)]
#[derive(Debug)]
pub struct TaskCreated {
    pub title: String,
}

/// A task was assigned to a member.
#[event(name = "TaskAssigned", version = 1)]
#[derive(Debug)]
pub struct TaskAssigned {
    pub member: String,
}

/// A task was completed.
#[event(name = "TaskCompleted", version = 1)]
#[derive(Debug)]
pub struct TaskCompleted {
    pub minutes: u32,
}

/// The handled events as the raw side decodes them: tagged by stored name.
#[derive(Debug, Deserialize)]
pub enum RawEvent {
    Created(TaskCreated),
    Assigned(TaskAssigned),
    Completed(TaskCompleted),
}

impl RawEvent {
    /// Decodes a stored row the way a hand-written projection would: by name, with serde.
    pub fn decode(name: &str, payload: &str) -> Result<Self, String> {
        let decoded = match name {
            "TaskCreated" => serde_json::from_str(payload).map(Self::Created),
            "TaskAssigned" => serde_json::from_str(payload).map(Self::Assigned),
            "TaskCompleted" => serde_json::from_str(payload).map(Self::Completed),
            other => return Err(format!("unexpected event {other}")),
        };
        decoded.map_err(|error| format!("{name}: {error}"))
    }
}

/// Every stream's four events, in stream order, for appending.
pub fn streams() -> impl Iterator<Item = (String, Vec<NewEvent>)> {
    (0..STREAMS).map(|n| {
        let event = |name: &str, payload: serde_json::Value| {
            NewEvent::new(
                name,
                1,
                serde_json::value::to_raw_value(&payload).expect("JSON"),
                Metadata::default(),
            )
        };
        let events = vec![
            event(
                "TaskCreated",
                serde_json::json!({ "title": format!("water the plants #{n}") }),
            ),
            event(
                "TaskAssigned",
                serde_json::json!({ "member": format!("member-{}", n % 40) }),
            ),
            event(
                "TaskNoted",
                serde_json::json!({ "text": "the ficus looks thirsty" }),
            ),
            event(
                "TaskCompleted",
                serde_json::json!({ "minutes": (n % 90) as u32 }),
            ),
        ];
        (format!("task-{n:05}"), events)
    })
}

/// The read model's tables, the same on both sides.
pub const TABLES: &str = "CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT NOT NULL, member TEXT, minutes INTEGER);
     CREATE TABLE members (member TEXT PRIMARY KEY, completed INTEGER NOT NULL, minutes INTEGER NOT NULL);";

/// The SQL each event runs, the same on both sides (SQLite and PostgreSQL accept it).
pub const INSERT_TASK: &str = "INSERT INTO tasks (id, title) VALUES ($1, $2)";
/// Assigning.
pub const ASSIGN_TASK: &str = "UPDATE tasks SET member = $2 WHERE id = $1";
/// Completing: the task, then the member's totals.
pub const COMPLETE_TASK: &str = "UPDATE tasks SET minutes = $2 WHERE id = $1";
/// The member's totals.
pub const COUNT_COMPLETION: &str = "INSERT INTO members (member, completed, minutes)
     SELECT member, 1, minutes FROM tasks WHERE id = $1
     ON CONFLICT (member) DO UPDATE SET completed = members.completed + 1, minutes = members.minutes + excluded.minutes";
