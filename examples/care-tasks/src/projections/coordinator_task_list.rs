//! The coordinator's task list: every task with its assignee, due time and age; open
//! tasks first (soonest due first), completed ones flagged with who did them and when.

use chrono::{DateTime, TimeDelta, Utc};
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;
use factum::query::{Page, PageRequest};
use rusqlite::{Connection, OptionalExtension, Row};

use super::{from_millis, task_id, to_millis};
use crate::{Member, TaskAssigned, TaskCompleted, TaskCreated};

/// The projection; its read model is named `coordinator_task_list`.
#[derive(Debug, Default)]
pub struct CoordinatorTaskList;

/// The projection's name, for [`SqliteReadModel::reader`](factum::projection::sqlite::SqliteReadModel::reader).
pub const NAME: &str = "coordinator_task_list";

#[projection(name = "coordinator_task_list", version = 1)]
impl CoordinatorTaskList {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE tasks (
                 task_id TEXT PRIMARY KEY,
                 title TEXT NOT NULL,
                 care_recipient TEXT NOT NULL,
                 created_by TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 due_ms INTEGER NOT NULL,
                 assignee TEXT,
                 completed_by TEXT,
                 completed_ms INTEGER
             );
             CREATE INDEX tasks_by_due ON tasks (completed_ms IS NOT NULL, due_ms);",
        )?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(
            "INSERT INTO tasks (task_id, title, care_recipient, created_by, created_ms, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute((
            task_id(e.stream_id()),
            &e.title,
            &e.care_recipient,
            &e.created_by,
            to_millis(e.created_at),
            to_millis(e.due),
        ))?;
        Ok(())
    }

    #[on]
    async fn assigned(
        &mut self,
        e: &Recorded<TaskAssigned>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached("UPDATE tasks SET assignee = ?2 WHERE task_id = ?1")?
            .execute((task_id(e.stream_id()), &e.member))?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(
            "UPDATE tasks SET completed_by = ?2, completed_ms = ?3 WHERE task_id = ?1",
        )?
        .execute((
            task_id(e.stream_id()),
            &e.completed_by,
            to_millis(e.completed_at),
        ))?;
        Ok(())
    }
}

/// One line of the coordinator's list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct TaskListEntry {
    /// The task's id.
    pub task_id: String,
    /// What to do.
    pub title: String,
    /// Who the care is for.
    pub care_recipient: String,
    /// The coordinator who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is due.
    pub due: DateTime<Utc>,
    /// Who has it; `None` while nobody does.
    pub assignee: Option<Member>,
    /// Who completed it and when; `None` while it is open.
    pub completed: Option<Completion>,
}

/// Who completed a task, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Completion {
    /// The member who did it.
    pub by: Member,
    /// When.
    pub at: DateTime<Utc>,
}

impl TaskListEntry {
    /// How long the task has existed at `now` (for a completed task: how long it took).
    pub fn age(&self, now: DateTime<Utc>) -> TimeDelta {
        let until = self.completed.as_ref().map_or(now, |done| done.at);
        until - self.created_at
    }

    /// Whether it is open and past its due time at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.completed.is_none() && self.due < now
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let completed_by: Option<Member> = row.get(7)?;
        let completed_ms: Option<i64> = row.get(8)?;
        let completed = match (completed_by, completed_ms) {
            (Some(by), Some(ms)) => Some(Completion {
                by,
                at: from_millis(8, ms)?,
            }),
            _ => None,
        };
        Ok(Self {
            task_id: row.get(0)?,
            title: row.get(1)?,
            care_recipient: row.get(2)?,
            created_by: row.get(3)?,
            created_at: from_millis(4, row.get(4)?)?,
            due: from_millis(5, row.get(5)?)?,
            assignee: row.get(6)?,
            completed,
        })
    }
}

const COLUMNS: &str = "task_id, title, care_recipient, created_by, created_ms, due_ms, assignee, completed_by, completed_ms";

/// Every task: the open ones first, soonest due first, then the completed ones.
pub fn task_list(reader: &Connection) -> rusqlite::Result<Vec<TaskListEntry>> {
    reader
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks ORDER BY completed_ms IS NOT NULL, due_ms, task_id"
        ))?
        .query_map([], TaskListEntry::from_row)?
        .collect()
}

/// The open tasks, soonest due first.
pub fn open_tasks(reader: &Connection) -> rusqlite::Result<Vec<TaskListEntry>> {
    reader
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE completed_ms IS NULL ORDER BY due_ms, task_id"
        ))?
        .query_map([], TaskListEntry::from_row)?
        .collect()
}

/// One task, if the list has it.
pub fn task(reader: &Connection, task_id: &str) -> rusqlite::Result<Option<TaskListEntry>> {
    reader
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE task_id = ?1"))?
        .query_row([task_id], TaskListEntry::from_row)
        .optional()
}

/// Whose open tasks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// The tasks a coordinator created.
    Coordinator(&'a str),
    /// The tasks assigned to a member.
    Assignee(&'a str),
}

/// One page of the open tasks of `holder`, soonest due first, with their total.
pub fn open_tasks_of(
    reader: &Connection,
    holder: Holder<'_>,
    page: &PageRequest,
) -> rusqlite::Result<Page<TaskListEntry>> {
    // The column is one of two fixed names, never input.
    let (column, id) = match holder {
        Holder::Coordinator(id) => ("created_by", id),
        Holder::Assignee(id) => ("assignee", id),
    };
    let (limit, offset) = super::limit_offset(page);
    let total: u64 = reader
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM tasks WHERE completed_ms IS NULL AND {column} = ?1"
        ))?
        .query_row([id], super::row_count)?;
    let items = reader
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE completed_ms IS NULL AND {column} = ?1
             ORDER BY due_ms, task_id LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(
            rusqlite::params![id, limit, offset],
            TaskListEntry::from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(page.page_of(items, total))
}
