//! Each member's task history, in the order it was recorded: tasks assigned to them, tasks
//! reassigned away from them, tasks they completed.

use chrono::{DateTime, Utc};
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;
use factum::query::{Page, PageRequest};
use rusqlite::{Connection, Row};

use super::{from_millis, task_id, to_millis};
use crate::{Member, TaskAssigned, TaskCompleted, TaskCreated};

/// The projection; its read model is named `member_task_history`.
#[derive(Debug, Default)]
pub struct MemberTaskHistory;

/// The projection's name, for [`SqliteReadModel::reader`](factum::projection::sqlite::SqliteReadModel::reader).
pub const NAME: &str = "member_task_history";

const ASSIGNED: &str = "assigned";
const REASSIGNED_AWAY: &str = "reassigned_away";
const COMPLETED: &str = "completed";

#[projection(name = "member_task_history", version = 1)]
impl MemberTaskHistory {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        // One event may write two entries (a reassignment: one for each member), hence
        // the key (position, member).
        tx.execute_batch(
            "CREATE TABLE task_titles (task_id TEXT PRIMARY KEY, title TEXT NOT NULL);
             CREATE TABLE entries (
                 position INTEGER NOT NULL,
                 member TEXT NOT NULL,
                 task_id TEXT NOT NULL,
                 kind TEXT NOT NULL CHECK (kind IN ('assigned', 'reassigned_away', 'completed')),
                 at_ms INTEGER NOT NULL,
                 other_member TEXT,
                 note TEXT,
                 PRIMARY KEY (member, position)
             );",
        )?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached("INSERT INTO task_titles (task_id, title) VALUES (?1, ?2)")?
            .execute((task_id(e.stream_id()), &e.title))?;
        Ok(())
    }

    #[on]
    async fn assigned(
        &mut self,
        e: &Recorded<TaskAssigned>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        let mut insert = tx.prepare_cached(
            "INSERT INTO entries (position, member, task_id, kind, at_ms, other_member)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let (position, task, at) = (
            to_i64(e.position()),
            task_id(e.stream_id()),
            to_millis(e.assigned_at),
        );
        if let Some(previous) = &e.previous {
            insert.execute((position, previous, task, REASSIGNED_AWAY, at, &e.member))?;
        }
        insert.execute((position, &e.member, task, ASSIGNED, at, &e.previous))?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached(
            "INSERT INTO entries (position, member, task_id, kind, at_ms, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute((
            to_i64(e.position()),
            &e.completed_by,
            task_id(e.stream_id()),
            COMPLETED,
            to_millis(e.completed_at),
            &e.note,
        ))?;
        Ok(())
    }
}

fn to_i64(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// What happened to a member and a task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryKind {
    /// The task was given to the member, taken over `from` someone if it is set.
    Assigned {
        /// Who had it before.
        from: Option<Member>,
    },
    /// The task was reassigned from the member `to` someone else.
    ReassignedAway {
        /// Who has it now.
        to: Member,
    },
    /// The member completed the task.
    Completed {
        /// What they noted.
        note: Option<String>,
    },
}

/// One entry of a member's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    /// The task.
    pub task_id: String,
    /// Its title.
    pub title: String,
    /// What happened (on the wire: an object whose `type` names it).
    pub kind: HistoryKind,
    /// When.
    pub at: DateTime<Utc>,
}

impl HistoryEntry {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let kind: String = row.get(2)?;
        let other_member: Option<Member> = row.get(4)?;
        let kind = match (kind.as_str(), other_member) {
            (ASSIGNED, from) => HistoryKind::Assigned { from },
            (REASSIGNED_AWAY, Some(to)) => HistoryKind::ReassignedAway { to },
            (COMPLETED, _) => HistoryKind::Completed { note: row.get(5)? },
            (other, _) => {
                return Err(rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    format!("unknown history entry kind `{other}` (or one without its member)")
                        .into(),
                ));
            }
        };
        Ok(Self {
            task_id: row.get(0)?,
            title: row.get(1)?,
            kind,
            at: from_millis(3, row.get(3)?)?,
        })
    }
}

/// The history of `member`, oldest first (empty for a member never given a task).
pub fn history(reader: &Connection, member: &str) -> rusqlite::Result<Vec<HistoryEntry>> {
    reader
        .prepare_cached(
            "SELECT entries.task_id, COALESCE(task_titles.title, ''), kind, at_ms, other_member, note
             FROM entries LEFT JOIN task_titles USING (task_id)
             WHERE member = ?1 ORDER BY position",
        )?
        .query_map([member], HistoryEntry::from_row)?
        .collect()
}

/// Every member with a history, by name.
pub fn members(reader: &Connection) -> rusqlite::Result<Vec<Member>> {
    reader
        .prepare_cached("SELECT DISTINCT member FROM entries ORDER BY member")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// One page of the history of `member`, newest first, with the number of entries.
pub fn history_page(
    reader: &Connection,
    member: &str,
    page: &PageRequest,
) -> rusqlite::Result<Page<HistoryEntry>> {
    let (limit, offset) = super::limit_offset(page);
    let total: u64 = reader
        .prepare_cached("SELECT COUNT(*) FROM entries WHERE member = ?1")?
        .query_row([member], super::row_count)?;
    let items = reader
        .prepare_cached(
            "SELECT entries.task_id, COALESCE(task_titles.title, ''), kind, at_ms, other_member, note
             FROM entries LEFT JOIN task_titles USING (task_id)
             WHERE member = ?1 ORDER BY position DESC LIMIT ?2 OFFSET ?3",
        )?
        .query_map(
            rusqlite::params![member, limit, offset],
            HistoryEntry::from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(page.page_of(items, total))
}
