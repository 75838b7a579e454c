//! Daily analytics: per UTC day, tasks created, tasks completed and the average time
//! from creation to completion.
//!
//! Each day keeps running integer sums (counts, and total completion milliseconds), never
//! a running average, so the figures are exact however often the log is replayed; the
//! average is computed when read.

use chrono::{DateTime, NaiveDate, Utc};
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;
use factum::query::{Page, PageRequest};
use rusqlite::{Connection, OptionalExtension, Row};

use super::{task_id, to_millis};
use crate::{TaskCompleted, TaskCreated};

/// The projection; its read model is named `daily_analytics`.
#[derive(Debug, Default)]
pub struct DailyAnalytics;

/// The projection's name, for [`SqliteReadModel::reader`](factum::projection::sqlite::SqliteReadModel::reader).
pub const NAME: &str = "daily_analytics";

/// How a day is keyed: ISO 8601, which also sorts by date.
const DAY_FORMAT: &str = "%Y-%m-%d";

fn day_of(time: DateTime<Utc>) -> String {
    time.format(DAY_FORMAT).to_string()
}

#[projection(name = "daily_analytics", version = 1)]
impl DailyAnalytics {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch(
            "CREATE TABLE days (
                 day TEXT PRIMARY KEY,
                 created INTEGER NOT NULL DEFAULT 0,
                 completed INTEGER NOT NULL DEFAULT 0,
                 completion_ms_sum INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE task_created (task_id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);",
        )?;
        Ok(())
    }

    #[on]
    async fn created(
        &mut self,
        e: &Recorded<TaskCreated>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        tx.prepare_cached("INSERT INTO task_created (task_id, created_ms) VALUES (?1, ?2)")?
            .execute((task_id(e.stream_id()), to_millis(e.created_at)))?;
        tx.prepare_cached(
            "INSERT INTO days (day, created) VALUES (?1, 1)
             ON CONFLICT (day) DO UPDATE SET created = created + 1",
        )?
        .execute([day_of(e.created_at)])?;
        Ok(())
    }

    #[on]
    async fn completed(
        &mut self,
        e: &Recorded<TaskCompleted>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        let task = task_id(e.stream_id());
        let created_ms: i64 = tx
            .prepare_cached("SELECT created_ms FROM task_created WHERE task_id = ?1")?
            .query_row([task], |row| row.get(0))
            .optional()?
            .ok_or_else(|| {
                ProjectionError::msg(format!(
                    "task `{task}` was completed but its creation was never seen"
                ))
            })?;
        let took_ms = (to_millis(e.completed_at) - created_ms).max(0);
        tx.prepare_cached(
            "INSERT INTO days (day, completed, completion_ms_sum) VALUES (?1, 1, ?2)
             ON CONFLICT (day) DO UPDATE SET
                 completed = completed + 1,
                 completion_ms_sum = completion_ms_sum + excluded.completion_ms_sum",
        )?
        .execute((day_of(e.completed_at), took_ms))?;
        Ok(())
    }
}

/// One UTC day's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DailyFigures {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Tasks created that day.
    pub created: u64,
    /// Tasks completed that day.
    pub completed: u64,
    /// The sum, over the tasks completed that day, of the time from creation to
    /// completion, in milliseconds.
    pub completion_ms_sum: u64,
}

impl DailyFigures {
    /// The average time from creation to completion of the tasks completed that day, in
    /// seconds; `None` on a day without completions.
    pub fn average_completion_seconds(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.completion_ms_sum as f64 / self.completed as f64 / 1000.0)
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let day: String = row.get(0)?;
        let day = NaiveDate::parse_from_str(&day, DAY_FORMAT).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, error.into())
        })?;
        Ok(Self {
            day,
            created: count(row, 1)?,
            completed: count(row, 2)?,
            completion_ms_sum: count(row, 3)?,
        })
    }
}

/// A stored count or sum, never negative.
fn count(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Integer,
            error.into(),
        )
    })
}

/// The figures of `date` (all zero for a day without tasks).
pub fn day(reader: &Connection, date: NaiveDate) -> rusqlite::Result<DailyFigures> {
    let figures = reader
        .prepare_cached(
            "SELECT day, created, completed, completion_ms_sum FROM days WHERE day = ?1",
        )?
        .query_row(
            [date.format(DAY_FORMAT).to_string()],
            DailyFigures::from_row,
        )
        .optional()?;
    Ok(figures.unwrap_or(DailyFigures {
        day: date,
        created: 0,
        completed: 0,
        completion_ms_sum: 0,
    }))
}

/// Every day with tasks, oldest first.
pub fn days(reader: &Connection) -> rusqlite::Result<Vec<DailyFigures>> {
    reader
        .prepare_cached("SELECT day, created, completed, completion_ms_sum FROM days ORDER BY day")?
        .query_map([], DailyFigures::from_row)?
        .collect()
}

/// One page of the days with tasks, newest first, with the number of days.
pub fn days_page(reader: &Connection, page: &PageRequest) -> rusqlite::Result<Page<DailyFigures>> {
    let (limit, offset) = super::limit_offset(page);
    let total: u64 = reader
        .prepare_cached("SELECT COUNT(*) FROM days")?
        .query_row([], super::row_count)?;
    let items = reader
        .prepare_cached(
            "SELECT day, created, completed, completion_ms_sum FROM days
             ORDER BY day DESC LIMIT ?1 OFFSET ?2",
        )?
        .query_map(rusqlite::params![limit, offset], DailyFigures::from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(page.page_of(items, total))
}
