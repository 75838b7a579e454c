//! Reading event rows back: decoding, and the checks that stop a damaged log.

use std::fmt;

use serde_json::value::RawValue;
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::archive::ArchivedEvent;
use crate::envelope::{Metadata, RecordedEvent};
use crate::store::{CommandOutcome, StoreError};

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn corrupt(
    stream_id: &str,
    stream_version: u64,
    reason: impl fmt::Display,
) -> StoreError {
    corrupt_at(stream_id, stream_version, None, reason)
}

/// A corrupt event row at `position` (`None` when its position is unreadable too).
pub(super) fn corrupt_at(
    stream_id: &str,
    stream_version: u64,
    position: Option<u64>,
    reason: impl fmt::Display,
) -> StoreError {
    StoreError::CorruptRow {
        stream_id: stream_id.to_owned(),
        stream_version,
        position,
        reason: reason.to_string(),
    }
}

/// The position of an event row selected with `Sql::new`'s columns, if it is readable.
pub(super) fn position_of(row: &Row) -> Option<u64> {
    row.try_get::<_, i64>(0)
        .ok()
        .and_then(|position| u64::try_from(position).ok())
}

/// A stream's versions run 1, 2, 3 … without gaps (the append function guarantees it):
/// a read that finds `found` where `expected` belongs is reading a stream whose rows
/// were deleted or changed outside factum, and must not hand on the events as if whole.
pub(super) fn check_gapless(
    stream_id: &str,
    expected: u64,
    found: u64,
    position: Option<u64>,
) -> Result<(), StoreError> {
    if found == expected {
        return Ok(());
    }
    let at = position.map_or_else(String::new, |position| format!(" at position {position}"));
    Err(corrupt_at(
        stream_id,
        expected,
        None,
        format_args!(
            "no event holds version {expected}: the next event{at} holds version {found} \
             (rows deleted or changed outside factum)"
        ),
    ))
}

/// Decodes the columns `Sql::new` selects (position, stream_id, stream_type,
/// stream_version, event_id, name, schema_version, payload, occurred_at, metadata,
/// tags).
/// An archived event's body comes from `body`.
pub(super) fn decode_row(
    row: &Row,
    body: Option<&ArchivedEvent>,
) -> Result<RecordedEvent, StoreError> {
    let position = position_of(row);
    let stream_id: &str = row
        .try_get(1)
        .map_err(|error| corrupt_at("", 0, position, format_args!("stream_id: {error}")))?;
    let version: i64 = row.try_get(3).map_err(|error| {
        corrupt_at(
            stream_id,
            0,
            position,
            format_args!("stream_version: {error}"),
        )
    })?;
    let stream_version = u64::try_from(version).map_err(|_| {
        corrupt_at(
            stream_id,
            0,
            position,
            format_args!("stream_version {version} is negative"),
        )
    })?;
    let mut record = blank_record(stream_id, stream_version);
    fill_record(row, &mut record, body)?;
    Ok(record)
}

pub(super) fn empty_payload() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// Fills every column but the stream id and version (already in `record`) from `row`;
/// an archived event's payload and metadata from `body`.
pub(super) fn fill_record(
    row: &Row,
    record: &mut RecordedEvent,
    body: Option<&ArchivedEvent>,
) -> Result<(), StoreError> {
    let position_read = position_of(row);
    let fail = |record: &RecordedEvent, column: &str, error: &dyn fmt::Display| {
        corrupt_at(
            &record.stream_id,
            record.stream_version,
            position_read,
            format_args!("{column}: {error}"),
        )
    };
    let position: i64 = row.try_get(0).map_err(|e| fail(record, "position", &e))?;
    record.position = u64::try_from(position)
        .map_err(|_| fail(record, "position", &format_args!("{position} is negative")))?;
    let stream_type: &str = row
        .try_get(2)
        .map_err(|e| fail(record, "stream_type", &e))?;
    stream_type.clone_into(&mut record.stream_type);
    record.event_id = row.try_get(4).map_err(|e| fail(record, "event_id", &e))?;
    let name: &str = row.try_get(5).map_err(|e| fail(record, "name", &e))?;
    name.clone_into(&mut record.name);
    let schema_version: i64 = row
        .try_get(6)
        .map_err(|e| fail(record, "schema_version", &e))?;
    record.schema_version = u32::try_from(schema_version).map_err(|_| {
        fail(
            record,
            "schema_version",
            &format_args!("{schema_version} is not a version (0 to {})", u32::MAX),
        )
    })?;
    record.timestamp = row
        .try_get(8)
        .map_err(|e| fail(record, "occurred_at", &e))?;
    // Tags stay in the row when a body is archived.
    match row
        .try_get::<_, Option<&str>>(10)
        .map_err(|e| fail(record, "tags", &e))?
    {
        None => record.tags.clear(),
        Some(tags) => {
            record.tags = serde_json::from_str(tags).map_err(|e| fail(record, "tags", &e))?;
        }
    }
    if let Some(body) = body {
        record.payload = body.payload.clone();
        let metadata = body.metadata.as_deref().unwrap_or("{}");
        record.metadata =
            serde_json::from_str(metadata).map_err(|e| fail(record, "archived metadata", &e))?;
        return Ok(());
    }
    // `json` columns arrive as their text: read in place, checked, copied once.
    let payload: Json<&RawValue> = row.try_get(7).map_err(|e| fail(record, "payload", &e))?;
    record.payload = payload.0.to_owned();
    let metadata: Json<Metadata> = row.try_get(9).map_err(|e| fail(record, "metadata", &e))?;
    record.metadata = metadata.0;
    Ok(())
}

/// A record to fill from rows ([`fill_record`]): the stream's id and version, the rest
/// blank.
pub(super) fn blank_record(stream_id: &str, stream_version: u64) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::nil(),
        stream_id: stream_id.to_owned(),
        stream_type: String::new(),
        stream_version,
        position: 0,
        name: String::new(),
        schema_version: 0,
        stored_schema_version: None,
        payload: empty_payload(),
        timestamp: chrono::DateTime::UNIX_EPOCH,
        metadata: Metadata::default(),
        tags: Vec::new(),
    }
}

/// A row of the `commands` table (the columns of `Sql::command_outcome`), checked: a row
/// that does not hold what `factum_append_command` writes is [`StoreError::CorruptRow`].
pub(super) fn decode_command(row: &Row, command_id: Uuid) -> Result<CommandOutcome, StoreError> {
    let stream_id: String = row.try_get(2).map_err(|error| {
        corrupt(
            "",
            0,
            format_args!("the record of command {command_id}: stream_id: {error}"),
        )
    })?;
    let fail = |reason: &dyn fmt::Display| {
        corrupt(
            &stream_id,
            0,
            format_args!("the record of command {command_id}: {reason}"),
        )
    };
    let unsigned = |value: Option<i64>, what: &str| {
        value
            .map(|value| {
                u64::try_from(value).map_err(|_| fail(&format_args!("{what} {value} is negative")))
            })
            .transpose()
    };
    let fingerprint: String = row.try_get(0).map_err(|e| fail(&e))?;
    let recorded_at = row.try_get(1).map_err(|e| fail(&e))?;
    let stream_version: i64 = row.try_get(3).map_err(|e| fail(&e))?;
    let stream_version = unsigned(Some(stream_version), "stream_version")?.unwrap_or(0);
    let first_position = unsigned(row.try_get(4).map_err(|e| fail(&e))?, "first_position")?;
    let last_position = unsigned(row.try_get(5).map_err(|e| fail(&e))?, "last_position")?;
    let event_ids: Vec<Uuid> = row.try_get(6).map_err(|e| fail(&e))?;
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
    .map_err(|reason| fail(&reason))
}
