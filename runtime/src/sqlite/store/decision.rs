//! Decisions on SQLite (see [`crate::store::decision`]): a [`Query`] as one statement
//! over the tag index, read in one snapshot, and checked as a condition inside the
//! append's write transaction.
//!
//! Each item of a query selects positions: by its first tag's range of `event_tags`
//! (`tag = ? AND position > ?`, the primary key's order), joined to its other tags' rows
//! and, when it names events, to the event's row for the name; an item without tags
//! scans the events after the position. The items' positions are united. Every part
//! starts after the given position, so a condition costs what the events stored since
//! the decision's read cost, not what the store holds.
//!
//! The condition runs under the append's `BEGIN IMMEDIATE`: no other connection or
//! process writes between the check and the insert.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use std::time::Duration;

use super::append;
use super::connection::Failure;
use super::rows::{self, ReadChecks, to_sql_integer};
use crate::envelope::{NewEvent, RecordedEvent};
use crate::store::decision::{AppendCondition, MatchedEvents, Query};
use crate::store::{CommandRecord, CommandSession, CommandWrite, ExpectedVersion, StoreError};

/// The statement selecting the positions `query` matches after a position, and its
/// values in order; `None` for a query without items (it matches nothing).
fn positions(query: &Query, after: u64) -> Option<(String, Vec<Value>)> {
    if query.items.is_empty() {
        return None;
    }
    let after = Value::Integer(to_sql_integer(after));
    let mut sql = String::new();
    let mut values = Vec::new();
    for (index, item) in query.items.iter().enumerate() {
        if index > 0 {
            sql.push_str(" UNION ");
        }
        let names = vec!["?"; item.names.len()].join(", ");
        let names_values = item.names.iter().map(|name| Value::Text(name.clone()));
        match item.tags.split_first() {
            Some((first, others)) => {
                sql.push_str("SELECT t0.position FROM event_tags t0");
                for (other, tag) in others.iter().enumerate() {
                    let alias = other + 1;
                    sql.push_str(&format!(
                        " JOIN event_tags t{alias} ON t{alias}.tag = ? \
                         AND t{alias}.position = t0.position"
                    ));
                    values.push(Value::Text(tag.as_str().to_owned()));
                }
                if !item.names.is_empty() {
                    sql.push_str(&format!(
                        " JOIN events n ON n.position = t0.position AND n.name IN ({names})"
                    ));
                    values.extend(names_values);
                }
                sql.push_str(" WHERE t0.tag = ? AND t0.position > ?");
                values.push(Value::Text(first.as_str().to_owned()));
                values.push(after.clone());
            }
            None => {
                sql.push_str("SELECT n.position FROM events n WHERE n.position > ?");
                values.push(after.clone());
                if !item.names.is_empty() {
                    sql.push_str(&format!(" AND n.name IN ({names})"));
                    values.extend(names_values);
                }
            }
        }
    }
    Some((sql, values))
}

/// Calls `each` with every event `query` matches after `after`, in position order, in
/// the caller's transaction (one snapshot).
fn each_matching(
    connection: &Connection,
    query: &Query,
    after: u64,
    checks: &ReadChecks,
    mut each: impl FnMut(RecordedEvent) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let Some((positions, values)) = positions(query, after) else {
        return Ok(());
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {}, {}{} FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key
         WHERE e.position IN ({positions}) ORDER BY e.position",
        rows::STREAM_COLUMNS,
        rows::EVENT_COLUMNS,
        rows::hash_columns(checks),
    ))?;
    let mut found = statement.query(params_from_iter(values))?;
    let mut bytes = Vec::new();
    while let Some(row) = found.next()? {
        each(rows::event_with_stream(row, &mut bytes, checks)?)?;
    }
    Ok(())
}

/// The events `query` matches after `after`, in position order, and the log's newest
/// position, read in one read transaction (one snapshot): an event committed later has
/// a higher position, so a condition on `read_to` catches it.
pub(super) fn read_matching(
    connection: &Connection,
    query: &Query,
    after: u64,
    checks: &ReadChecks,
) -> Result<MatchedEvents, Failure> {
    let transaction = connection.unchecked_transaction()?;
    let mut events = Vec::new();
    each_matching(connection, query, after, checks, |event| {
        events.push(event);
        Ok(())
    })?;
    let read_to = rows::newest_position(connection)?.max(after);
    transaction.commit()?;
    Ok(MatchedEvents { events, read_to })
}

/// A decision's session on the writer (see [`append::session`]): the events `query`
/// matches visited under the write lock, so no other writer can store one before the
/// decision's events; the condition is only kept for a write that must run in a
/// transaction of its own.
#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
pub(super) fn session<E, V, D>(
    connection: &Connection,
    patience: Duration,
    stream_id: &str,
    stream_type: &str,
    query: Query,
    command: &CommandRecord,
    checks: &ReadChecks,
    mut visit: V,
    decide: D,
) -> Result<Result<CommandSession<E>, E>, Failure>
where
    V: FnMut(&RecordedEvent) -> Result<(), E>,
    D: FnOnce() -> Result<Vec<NewEvent>, E>,
{
    let read = || {
        let visited = append::visit_rows(|stop| {
            each_matching(connection, &query, 0, checks, |event| {
                visit(&event).map_err(&mut *stop)
            })
        })?;
        Ok(match visited {
            Ok(()) => Ok(Some(AppendCondition {
                after: rows::newest_position(connection)?,
                query,
            })),
            Err(error) => Err(error),
        })
    };
    let decide = || {
        decide().map(|events| CommandWrite {
            expected: ExpectedVersion::Any,
            events,
        })
    };
    append::session(
        connection,
        patience,
        stream_id,
        stream_type,
        command,
        checks.signer.as_ref(),
        read,
        decide,
    )
}

/// The failed condition, when an event its query matches is stored after its position;
/// inside the caller's write transaction.
pub(super) fn check(
    connection: &Connection,
    stream_id: &str,
    condition: &AppendCondition,
) -> Result<(), Failure> {
    let Some((positions, values)) = positions(&condition.query, condition.after) else {
        return Ok(());
    };
    let first: Option<i64> = connection
        .prepare_cached(&format!("SELECT min(position) FROM ({positions})"))?
        .query_row(params_from_iter(values), |row| row.get(0))?;
    match first {
        None => Ok(()),
        Some(position) => Err(Failure::Store(StoreError::ConditionFailed {
            stream_id: stream_id.to_owned(),
            after: condition.after,
            position: u64::try_from(position).unwrap_or(0),
        })),
    }
}
