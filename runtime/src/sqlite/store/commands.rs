//! The `commands` table: a recorded command's row, written in its events' transaction,
//! read back with every column checked.

use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};
use uuid::Uuid;

use super::connection::Failure;
use super::rows::to_sql_integer;
use crate::store::{CommandOutcome, StoreError};

/// Records the command's outcome (inside the caller's write transaction).
pub(super) fn insert(connection: &Connection, outcome: &CommandOutcome) -> Result<(), Failure> {
    let event_ids: Vec<u8> = outcome
        .event_ids
        .iter()
        .flat_map(|id| *id.as_bytes())
        .collect();
    connection
        .prepare_cached(
            "INSERT INTO commands (command_id, fingerprint, recorded_at_s, recorded_at_ns,
                                   stream_id, stream_version, first_position, last_position,
                                   event_ids)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            outcome.command_id.as_bytes().as_slice(),
            outcome.fingerprint,
            outcome.recorded_at.timestamp(),
            outcome.recorded_at.timestamp_subsec_nanos(),
            outcome.stream_id,
            to_sql_integer(outcome.stream_version),
            outcome.first_position.map(to_sql_integer),
            outcome.last_position.map(to_sql_integer),
            event_ids,
        ])?;
    Ok(())
}

/// The stored outcome of the command `command_id`, if it is recorded.
pub(super) fn load(
    connection: &Connection,
    command_id: Uuid,
) -> Result<Option<CommandOutcome>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT fingerprint, recorded_at_s, recorded_at_ns, stream_id, stream_version,
                first_position, last_position, event_ids
         FROM commands WHERE command_id = ?1",
    )?;
    let mut rows = statement.query(params![command_id.as_bytes().as_slice()])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    decode(row, command_id)
        .map(Some)
        .map_err(|(stream_id, reason)| {
            Failure::Store(StoreError::CorruptRow {
                stream_id,
                stream_version: 0,
                position: None,
                reason: format!("the record of command {command_id}: {reason}"),
            })
        })
}

/// Deletes the records of commands recorded before `bound` (whole microseconds, see
/// `commands::prune_bound`); returns how many.
pub(super) fn prune(connection: &Connection, bound: DateTime<Utc>) -> Result<u64, Failure> {
    let deleted = connection
        .prepare_cached("DELETE FROM commands WHERE (recorded_at_s, recorded_at_ns) < (?1, ?2)")?
        .execute(params![bound.timestamp(), bound.timestamp_subsec_nanos()])?;
    Ok(deleted as u64)
}

/// A row of [`load`]; on failure, the stream id (empty when unreadable) and what is
/// wrong.
fn decode(row: &Row<'_>, command_id: Uuid) -> Result<CommandOutcome, (String, String)> {
    let text = |column: usize, what: &str| match row.get_ref(column) {
        Ok(ValueRef::Text(bytes)) => {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
        }
        Ok(other) => Err(format!(
            "{what}: {:?} where a text belongs",
            other.data_type()
        )),
        Err(error) => Err(format!("{what}: {error}")),
    };
    let integer = |column: usize, what: &str| match row.get_ref(column) {
        Ok(ValueRef::Integer(value)) => Ok(Some(value)),
        Ok(ValueRef::Null) => Ok(None),
        Ok(other) => Err(format!(
            "{what}: {:?} where an integer belongs",
            other.data_type()
        )),
        Err(error) => Err(format!("{what}: {error}")),
    };
    let count = |value: Option<i64>, what: &str| {
        value
            .map(|value| u64::try_from(value).map_err(|_| format!("{what} {value} is negative")))
            .transpose()
    };
    let stream_id = text(3, "stream_id").map_err(|reason| (String::new(), reason))?;
    let at_stream = |reason: String| (stream_id.clone(), reason);
    let fingerprint = text(0, "fingerprint").map_err(at_stream)?;
    let seconds = integer(1, "recorded_at_s").map_err(at_stream)?;
    let nanoseconds = integer(2, "recorded_at_ns").map_err(at_stream)?;
    let recorded_at = seconds
        .zip(nanoseconds)
        .and_then(|(seconds, nanos)| DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?))
        .ok_or_else(|| {
            at_stream(format!(
                "recorded_at {seconds:?} s + {nanoseconds:?} ns is not a time"
            ))
        })?;
    let stream_version = count(
        integer(4, "stream_version").map_err(at_stream)?,
        "stream_version",
    )
    .map_err(at_stream)?
    .ok_or_else(|| at_stream("stream_version is NULL".to_owned()))?;
    let first_position = count(
        integer(5, "first_position").map_err(at_stream)?,
        "first_position",
    )
    .map_err(at_stream)?;
    let last_position = count(
        integer(6, "last_position").map_err(at_stream)?,
        "last_position",
    )
    .map_err(at_stream)?;
    let event_ids = match row.get_ref(7) {
        Ok(ValueRef::Blob(bytes)) if bytes.len() % 16 == 0 => bytes
            .chunks_exact(16)
            .map(Uuid::from_slice)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| at_stream(format!("event_ids: {error}")))?,
        Ok(ValueRef::Blob(bytes)) => {
            return Err(at_stream(format!(
                "event_ids holds {} bytes, not 16 per id",
                bytes.len()
            )));
        }
        Ok(other) => {
            return Err(at_stream(format!(
                "event_ids: {:?} where a blob belongs",
                other.data_type()
            )));
        }
        Err(error) => return Err(at_stream(format!("event_ids: {error}"))),
    };
    CommandOutcome {
        command_id,
        fingerprint,
        stream_id: stream_id.clone(),
        stream_version,
        first_position,
        last_position,
        event_ids,
        recorded_at,
    }
    .check_stored()
    .map_err(at_stream)
}
