//! Three read models of the same task events, each a projection with a SQLite read
//! model of its own, run side by side by one [`ProjectionRunner`](factum::projection::ProjectionRunner).
//!
//! Handlers write through the [`SqliteTx`](factum::projection::sqlite::SqliteTx) the
//! runner commits together with the checkpoint; readers call the query functions of each
//! module on a connection from
//! [`SqliteReadModel::reader`](factum::projection::sqlite::SqliteReadModel::reader).
//! Times are stored as Unix milliseconds, so sums and orderings are exact integers.

pub mod coordinator_task_list;
pub mod daily_analytics;
pub mod member_task_history;

use chrono::{DateTime, Utc};
use factum::Aggregate;

use crate::Task;

/// The task id of a task's stream id (`Task-T-7` → `T-7`).
pub(crate) fn task_id(stream_id: &str) -> &str {
    stream_id
        .strip_prefix(<Task as Aggregate>::NAME)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(stream_id)
}

/// A time as stored in the read models.
pub(crate) fn to_millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored time read back; a value out of chrono's range is a conversion error.
pub(crate) fn from_millis(column: usize, millis: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Integer,
            format!("{millis} ms is out of the representable time range").into(),
        )
    })
}

/// `LIMIT` and `OFFSET` of a page, as SQLite integers (a page's offset is at most
/// `u32::MAX × 1000`, far within range).
pub(crate) fn limit_offset(page: &factum::query::PageRequest) -> (i64, i64) {
    (
        i64::from(page.size()),
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    )
}

/// A `COUNT(*)` read back, never negative.
pub(crate) fn row_count(row: &rusqlite::Row<'_>) -> rusqlite::Result<u64> {
    let count: i64 = row.get(0)?;
    u64::try_from(count).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, error.into())
    })
}
