//! Reading rows back into records, with every column checked: a row that does not hold
//! what the store wrote is a [`StoreError::CorruptRow`], never a panic.
//!
//! Reading a row has two halves. [`copy_row`] steps through the columns and copies them
//! out of SQLite (numbers as stored, texts into a byte buffer), checking only their
//! types; [`fill`] checks and parses the copy into a record, reusing the record's
//! strings. A replay runs the halves on two threads, handing the copies over in chunks
//! (see `SqliteStore::for_each_in_stream`); the copies only ever travel from the
//! reading thread to the visiting one, so the two do not fight over cache lines.

use std::ops::Range;
use std::time::Duration;

use chrono::DateTime;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::connection::{Failure, retry_busy};
use crate::envelope::{Metadata, RecordedEvent, Snapshot};
use crate::store::{FilteredPage, Head, ReplayedEvent, StoreError};

/// The event columns every event query selects, in this order.
pub(super) const EVENT_COLUMNS: &str = "e.position, e.stream_version, e.event_id, e.name, \
     e.schema_version, e.payload, e.metadata, e.timestamp_s, e.timestamp_ns, e.tags";

/// The event columns a replay selects: [`EVENT_COLUMNS`] without the event id, the
/// metadata, the time and the tags, which rebuilding a state never reads (each column costs about
/// 25 ns a row to step). An archived event's id is looked up when its body is restored.
const REPLAY_COLUMNS: &str = "e.position, e.stream_version, e.name, e.schema_version, e.payload";

/// Which columns of an event a stream read selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Columns {
    /// A whole record: [`EVENT_COLUMNS`], and the hash columns when they are checked.
    Record,
    /// What a replay needs: [`REPLAY_COLUMNS`]. Never with hash checks, which need every
    /// column.
    Replay,
}

/// The columns a read that checks hashes (or signatures) selects after [`EVENT_COLUMNS`].
const HASH_COLUMNS: &str = ", e.hash, e.predecessor, e.signature";
/// How many columns [`EVENT_COLUMNS`] has: where [`HASH_COLUMNS`] start after it.
const EVENT_COLUMN_COUNT: usize = 10;

/// The hash columns to select: none unless the read checks hashes.
pub(super) fn hash_columns(checks: &ReadChecks) -> &'static str {
    if checks.any() { HASH_COLUMNS } else { "" }
}

/// What a read checks of each event beyond its columns' types.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadChecks {
    /// Each event's hash (`SqliteOptions::check_hashes`).
    pub(crate) hashes: bool,
    /// The signatures of critical events, and their hashes (`SqliteOptions::sign_events`).
    pub(crate) signer: Option<crate::integrity::EventSigner>,
    /// Where archived events' bodies are read from (`SqliteOptions::archive`).
    pub(crate) archives: crate::archive::Archives,
}

impl ReadChecks {
    /// Whether anything is checked.
    pub(super) fn any(&self) -> bool {
        self.hashes || self.signer.is_some()
    }
}

/// Copies the event columns that start at `first` (see [`copy_row`]) and, when
/// `checks` ask for it, checks the copy against the hash columns selected after them.
pub(super) fn copy_checked(
    row: &Row<'_>,
    first: usize,
    stream_id: &str,
    stream_type: &str,
    bytes: &mut Vec<u8>,
    checks: &ReadChecks,
) -> Result<CopiedRow, Failure> {
    let mut copied = copy_row(row, first, stream_id, bytes, Columns::Record)?;
    if copied.archived {
        restore_archived(&mut copied, stream_id, bytes, &checks.archives)?;
    }
    if checks.any() {
        super::integrity::check_copied(
            row,
            first + EVENT_COLUMN_COUNT,
            stream_id,
            stream_type,
            &copied,
            bytes,
            checks.signer.as_ref(),
        )?;
    }
    Ok(copied)
}

/// Copies what a replay needs of the row (selected with [`Columns::Replay`]), restoring
/// an archived payload; checks the columns' types, not their contents.
pub(super) fn copy_replayed(
    connection: &Connection,
    row: &Row<'_>,
    stream_id: &str,
    bytes: &mut Vec<u8>,
    checks: &ReadChecks,
) -> Result<CopiedRow, Failure> {
    let mut copied = copy_row(row, 0, stream_id, bytes, Columns::Replay)?;
    if copied.archived {
        copied.event_id = archived_event_id(connection, stream_id, &copied)?;
        restore_archived(&mut copied, stream_id, bytes, &checks.archives)?;
    }
    Ok(copied)
}

/// The id of the archived event `copied`, which a replay does not select: its archive
/// finds the body by it.
#[cold]
fn archived_event_id(
    connection: &Connection,
    stream_id: &str,
    copied: &CopiedRow,
) -> Result<[u8; 16], Failure> {
    let id: Option<Vec<u8>> = connection
        .prepare_cached("SELECT event_id FROM events WHERE position = ?1")?
        .query_row(params![copied.position], |row| row.get(0))
        .optional()?;
    id.and_then(|id| <[u8; 16]>::try_from(id).ok())
        .ok_or_else(|| {
            Failure::Store(StoreError::CorruptRow {
                stream_id: stream_id.to_owned(),
                stream_version: u64::try_from(copied.stream_version).unwrap_or(0),
                position: u64::try_from(copied.position).ok(),
                reason: "event id: not 16 bytes".to_owned(),
            })
        })
}

/// Puts the archived body of `copied`'s event (payload and stored metadata) into `bytes`
/// from `archives`, as if it had been read from the row.
#[cold]
fn restore_archived(
    copied: &mut CopiedRow,
    stream_id: &str,
    bytes: &mut Vec<u8>,
    archives: &crate::archive::Archives,
) -> Result<(), Failure> {
    let event = archives.body_of(
        stream_id,
        u64::try_from(copied.stream_version).unwrap_or(0),
        u64::try_from(copied.position).unwrap_or(0),
        Uuid::from_bytes(copied.event_id),
    )?;
    copied.payload = append(bytes, event.payload.get().as_bytes());
    copied.metadata = event
        .metadata
        .as_deref()
        .map(|metadata| append(bytes, metadata.as_bytes()));
    Ok(())
}

/// A `u64` bound as SQLite's signed integer, saturating (SQLite integers are `i64`).
pub(super) fn to_sql_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `usize` limit as SQLite's signed integer, saturating.
fn to_sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A stream's stored version, checked.
pub(super) fn stream_version_of(stream_id: &str, version: i64) -> Result<u64, Failure> {
    u64::try_from(version).map_err(|_| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version: 0,
            position: None,
            reason: format!("the streams row holds the negative version {version}"),
        })
    })
}

/// A record to be filled by [`fill`].
pub(super) fn blank(stream_id: String, stream_type: String) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::nil(),
        stream_id,
        stream_type,
        stream_version: 0,
        position: 0,
        name: String::new(),
        schema_version: 0,
        stored_schema_version: None,
        payload: RawValue::NULL.to_owned(),
        timestamp: DateTime::UNIX_EPOCH,
        metadata: Metadata::default(),
        tags: Vec::new(),
    }
}

/// Calls `each` with every row of up to `limit` events of `stream_id` from
/// `from_version` on, in order, as they are stepped, with the stream's type.
///
/// The stream row and the events are read in one read transaction, and the versions are
/// checked as they go by (one comparison a row): they must run gapless from
/// `from_version` (1 at least) and not pass the stream row's version, and a read that is
/// not cut by `limit` must reach that version. Otherwise a row was moved between streams
/// (a damaged `stream_key`) or lost, and the read fails with [`StoreError::CorruptRow`]
/// where it noticed, after the rows before it were handed to `each`.
pub(super) fn each_row_in_stream(
    connection: &Connection,
    stream_id: &str,
    from_version: u64,
    limit: usize,
    checks: &ReadChecks,
    columns: Columns,
    mut each: impl FnMut(&Row<'_>, &str) -> Result<(), Failure>,
) -> Result<(), Failure> {
    // One read transaction, unless the caller's transaction (a command's write session)
    // already holds the rows still.
    let transaction = if connection.is_autocommit() {
        Some(connection.unchecked_transaction()?)
    } else {
        None
    };
    let stream: Option<(i64, String, i64)> = connection
        .prepare_cached(
            "SELECT stream_key, stream_type, version FROM streams WHERE stream_id = ?1",
        )?
        .query_row(params![stream_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((stream_key, stream_type, last_version)) = stream else {
        return Ok(());
    };
    let last_version = stream_version_of(stream_id, last_version)?;
    let selected = match columns {
        Columns::Record => format!("{EVENT_COLUMNS}{}", hash_columns(checks)),
        Columns::Replay => REPLAY_COLUMNS.to_owned(),
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {selected} FROM events e
         WHERE e.stream_key = ?1 AND e.stream_version >= ?2
         ORDER BY e.stream_version LIMIT ?3"
    ))?;
    let mut rows = statement.query(params![
        stream_key,
        to_sql_integer(from_version),
        to_sql_limit(limit)
    ])?;
    let mut expected = from_version.max(1);
    let mut stepped = 0usize;
    while let Some(row) = rows.next()? {
        // A version that is not an integer is reported by the row's reader.
        if let Ok(version) = integer(row, 1) {
            let version = u64::try_from(version).unwrap_or(0);
            if version != expected || version > last_version {
                return Err(versions_contradict(
                    stream_id,
                    row,
                    expected,
                    version,
                    last_version,
                ));
            }
        }
        each(row, &stream_type)?;
        expected = expected.saturating_add(1);
        stepped += 1;
    }
    if stepped < limit && expected <= last_version {
        return Err(Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version: expected,
            position: None,
            reason: format!(
                "the stream's row says version {last_version}, but no event holds version \
                 {expected} (lost, or moved to another stream by a damaged `stream_key`)"
            ),
        }));
    }
    drop(rows);
    drop(statement);
    if let Some(transaction) = transaction {
        transaction.commit()?;
    }
    Ok(())
}

/// The error for an event row of a stream whose version is not the one that belongs
/// there: `expected` (the versions are gapless) and at most `last_version` (the stream
/// row's).
#[cold]
fn versions_contradict(
    stream_id: &str,
    row: &Row<'_>,
    expected: u64,
    version: u64,
    last_version: u64,
) -> Failure {
    let position = integer(row, 0)
        .ok()
        .and_then(|position| u64::try_from(position).ok());
    let at = position.map_or_else(String::new, |position| format!(" at position {position}"));
    if version > last_version {
        return Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version: version,
            position,
            reason: format!(
                "the event is past the stream's version {last_version} in `streams` \
                 (moved from another stream by a damaged `stream_key`?)"
            ),
        });
    }
    Failure::Store(StoreError::CorruptRow {
        stream_id: stream_id.to_owned(),
        stream_version: expected,
        position: None,
        reason: format!(
            "no event holds version {expected}: the next event{at} holds version {version} \
             (lost, or moved to another stream by a damaged `stream_key`)"
        ),
    })
}

/// Up to `limit` events of `stream_id` from `from_version` on.
pub(super) fn read_stream(
    connection: &Connection,
    stream_id: &str,
    from_version: u64,
    limit: usize,
    checks: &ReadChecks,
) -> Result<Vec<RecordedEvent>, Failure> {
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    each_row_in_stream(
        connection,
        stream_id,
        from_version,
        limit,
        checks,
        Columns::Record,
        |row, stream_type| {
            bytes.clear();
            let copied = copy_checked(row, 0, stream_id, stream_type, &mut bytes, checks)?;
            let mut record = blank(stream_id.to_owned(), stream_type.to_owned());
            fill(&mut record, &bytes, &copied)?;
            events.push(record);
            Ok(())
        },
    )?;
    Ok(events)
}

/// Up to `limit` events after global position `after`, in position order.
pub(super) fn read_all(
    connection: &Connection,
    after: u64,
    limit: usize,
    checks: &ReadChecks,
) -> Result<Vec<RecordedEvent>, Failure> {
    // A left join: an event whose stream row is missing is reported, not dropped.
    let hashes = hash_columns(checks);
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {STREAM_COLUMNS}, {EVENT_COLUMNS}{hashes}
         FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key
         WHERE e.position > ?1 ORDER BY e.position LIMIT ?2"
    ))?;
    let mut rows = statement.query(params![to_sql_integer(after), to_sql_limit(limit)])?;
    let mut events = Vec::new();
    let mut bytes = Vec::new();
    while let Some(row) = rows.next()? {
        events.push(event_with_stream(row, &mut bytes, checks)?);
    }
    Ok(events)
}

/// Up to `limit` (at least 1) events after `after` whose names are in `names`, in
/// position order, and how far the log was examined.
///
/// The rows and the log's newest position are read in one read transaction, so one
/// snapshot: when the page is not full, every matching event up to that position is in
/// it, and an event committed later gets a higher position (writers are serialised), so
/// a follower that checkpoints `scanned_to` skips nothing.
///
/// Nor does it pass an event it cannot read: the query also returns, whatever their
/// names, the events whose stream key is beyond every stream's (what a damaged key
/// gives: stream keys are assigned in order and streams are never deleted), which then
/// fail as in [`read_all`]; a matching event whose stream row is missing fails too. The
/// check costs one integer comparison per row (the maximum key is read once).
pub(super) fn read_all_filtered(
    connection: &Connection,
    after: u64,
    limit: usize,
    names: &[String],
    checks: &ReadChecks,
) -> Result<FilteredPage, Failure> {
    let limit = limit.max(1);
    let transaction = connection.unchecked_transaction()?;
    let mut events = Vec::new();
    {
        // One statement per number of names; a follower asks with the same names every
        // time, so the statement cache keeps it. (`IN ()` is false in SQLite.)
        let placeholders = vec!["?"; names.len()].join(", ");
        let hashes = hash_columns(checks);
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {STREAM_COLUMNS}, {EVENT_COLUMNS}{hashes}
             FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key
             WHERE e.position > ?
               AND (e.name IN ({placeholders})
                    OR e.stream_key > (SELECT max(stream_key) FROM streams)
                    OR e.stream_key < 1)
             ORDER BY e.position LIMIT ?"
        ))?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(names.len() + 2);
        let after_sql = to_sql_integer(after);
        let limit_sql = to_sql_limit(limit);
        values.push(&after_sql);
        values.extend(names.iter().map(|name| name as &dyn rusqlite::ToSql));
        values.push(&limit_sql);
        let mut rows = statement.query(values.as_slice())?;
        let mut bytes = Vec::new();
        while let Some(row) = rows.next()? {
            events.push(event_with_stream(row, &mut bytes, checks)?);
        }
    }
    let scanned_to = match events.last() {
        Some(last) if events.len() == limit => last.position,
        _ => newest_position(connection)?,
    };
    transaction.commit()?;
    Ok(FilteredPage {
        events,
        scanned_to: scanned_to.max(after),
    })
}

/// The newest event's position and timestamp, if any.
pub(super) fn head(connection: &Connection) -> Result<Option<Head>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT position, timestamp_s, timestamp_ns FROM events ORDER BY position DESC LIMIT 1",
    )?;
    let mut rows = statement.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let corrupt = |position: Option<u64>, reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: String::new(),
            stream_version: 0,
            position,
            reason: format!("the newest event: {reason}"),
        })
    };
    let position =
        integer(row, 0).map_err(|reason| corrupt(None, format!("position: {reason}")))?;
    let position = u64::try_from(position)
        .ok()
        .filter(|position| *position > 0)
        .ok_or_else(|| corrupt(None, format!("the position {position} is not positive")))?;
    let at = Some(position);
    let seconds = integer(row, 1).map_err(|reason| corrupt(at, format!("seconds: {reason}")))?;
    let nanoseconds =
        integer(row, 2).map_err(|reason| corrupt(at, format!("nanoseconds: {reason}")))?;
    let timestamp = timestamp(seconds, nanoseconds).map_err(|reason| corrupt(at, reason))?;
    Ok(Some(Head {
        position,
        timestamp,
    }))
}

/// The log's newest position (0 when empty): the cheap probe of waiting followers.
pub(super) fn newest_position(connection: &Connection) -> Result<u64, Failure> {
    let newest: Option<i64> = connection
        .prepare_cached("SELECT max(position) FROM events")?
        .query_row([], |row| row.get(0))?;
    Ok(newest
        .and_then(|newest| u64::try_from(newest).ok())
        .unwrap_or(0))
}

/// The stream columns event queries of the whole log select, left-joined (`s`) to the
/// event (`e`), before [`EVENT_COLUMNS`].
pub(super) const STREAM_COLUMNS: &str = "s.stream_id, s.stream_type, s.version, e.stream_key";
/// Where [`EVENT_COLUMNS`] start after [`STREAM_COLUMNS`].
const EVENT_AFTER_STREAM: usize = 4;

/// An event selected as `{STREAM_COLUMNS}, {EVENT_COLUMNS}`, its stream row left-joined:
/// an event without a stream row, or past its stream's version, is a
/// [`StoreError::CorruptRow`] at its position.
pub(super) fn event_with_stream(
    row: &Row<'_>,
    bytes: &mut Vec<u8>,
    checks: &ReadChecks,
) -> Result<RecordedEvent, Failure> {
    if let Ok(ValueRef::Null) = row.get_ref(0) {
        let key = match row.get_ref(3) {
            Ok(ValueRef::Integer(key)) => format!("key {key}"),
            Ok(other) => format!("a key of type {:?}", other.data_type()),
            Err(error) => format!("an unreadable key: {error}"),
        };
        return Err(corrupt_at_position(
            row,
            EVENT_AFTER_STREAM,
            &format!("its stream ({key}) has no row in `streams`"),
        ));
    }
    let stream_id =
        text(row, 0).map_err(|reason| corrupt_at_position(row, EVENT_AFTER_STREAM, &reason))?;
    let stream_type =
        text(row, 1).map_err(|reason| corrupt_at_position(row, EVENT_AFTER_STREAM, &reason))?;
    let last_version = integer(row, 2).map_err(|reason| {
        corrupt_at_position(
            row,
            EVENT_AFTER_STREAM,
            &format!("stream version: {reason}"),
        )
    })?;
    bytes.clear();
    let copied = copy_checked(
        row,
        EVENT_AFTER_STREAM,
        stream_id,
        stream_type,
        bytes,
        checks,
    )?;
    let mut record = blank(stream_id.to_owned(), stream_type.to_owned());
    fill(&mut record, bytes, &copied)?;
    if copied.stream_version > last_version {
        return Err(Failure::Store(StoreError::CorruptRow {
            stream_id: record.stream_id,
            stream_version: record.stream_version,
            position: Some(record.position),
            reason: format!(
                "the event is past the stream's version {last_version} in `streams` \
                 (moved from another stream by a damaged `stream_key`?)"
            ),
        }));
    }
    Ok(record)
}

/// A row whose stream is unknown (missing, or its stream columns are corrupt), named by
/// position.
#[cold]
fn corrupt_at_position(row: &Row<'_>, position_column: usize, reason: &str) -> Failure {
    let position = row
        .get::<_, i64>(position_column)
        .ok()
        .and_then(|position| u64::try_from(position).ok());
    Failure::Store(StoreError::CorruptRow {
        stream_id: String::new(),
        stream_version: 0,
        position,
        reason: reason.to_owned(),
    })
}

/// A text column, borrowed.
fn text<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r str, String> {
    match row.get_ref(column) {
        Ok(ValueRef::Text(bytes)) => {
            std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))
        }
        Ok(other) => Err(format!("{:?} where text belongs", other.data_type())),
        Err(error) => Err(error.to_string()),
    }
}

/// An integer column.
fn integer(row: &Row<'_>, column: usize) -> Result<i64, String> {
    match row.get_ref(column) {
        Ok(ValueRef::Integer(value)) => Ok(value),
        Ok(other) => Err(format!("{:?} where an integer belongs", other.data_type())),
        Err(error) => Err(error.to_string()),
    }
}

/// A timestamp stored as whole seconds and nanoseconds since the Unix epoch.
fn timestamp(seconds: i64, nanoseconds: i64) -> Result<DateTime<chrono::Utc>, String> {
    u32::try_from(nanoseconds)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
        .ok_or_else(|| format!("timestamp {seconds} s + {nanoseconds} ns is not a valid time"))
}

/// A JSON column's bytes (not yet checked or parsed).
fn json_bytes<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r [u8], String> {
    json_value(row.get_ref(column))
}

/// The bytes of a JSON column's value (not yet checked or parsed).
fn json_value(value: rusqlite::Result<ValueRef<'_>>) -> Result<&[u8], String> {
    match value {
        Ok(ValueRef::Text(bytes) | ValueRef::Blob(bytes)) => Ok(bytes),
        Ok(other) => Err(format!("{:?} where JSON text belongs", other.data_type())),
        Err(error) => Err(error.to_string()),
    }
}

/// A JSON text column as a `RawValue`, kept verbatim (only validated).
fn json(row: &Row<'_>, column: usize) -> Result<Box<RawValue>, String> {
    let text = std::str::from_utf8(json_bytes(row, column)?)
        .map_err(|error| format!("not UTF-8: {error}"))?;
    RawValue::from_string(text.to_owned()).map_err(|error| format!("not JSON: {error}"))
}

/// One event row, copied out of SQLite by [`copy_row`]: the numbers as stored, the texts'
/// places in a byte buffer. A replay's copy ([`Columns::Replay`]) holds no metadata, no
/// tags and a zero time, which only [`replayed`] reads, never [`fill`].
#[derive(Debug, Clone)]
pub(super) struct CopiedRow {
    pub(super) position: i64,
    pub(super) stream_version: i64,
    event_id: [u8; 16],
    schema_version: i64,
    seconds: i64,
    nanoseconds: i64,
    name: Range<usize>,
    payload: Range<usize>,
    /// `None`: the column is `NULL` (no metadata).
    metadata: Option<Range<usize>>,
    /// `None`: the column is `NULL` (no tags).
    tags: Option<Range<usize>>,
    /// The payload is an empty blob: the body is archived (see `crate::archive`).
    archived: bool,
}

/// Copies the event columns that start at `first` (in [`EVENT_COLUMNS`] order) out of
/// `row`, the texts appended to `bytes`; checks their types, not their contents.
pub(super) fn copy_row(
    row: &Row<'_>,
    first: usize,
    stream_id: &str,
    bytes: &mut Vec<u8>,
    columns: Columns,
) -> Result<CopiedRow, Failure> {
    let raw_version = integer(row, first + 1);
    let raw_position = integer(row, first);
    let corrupt = |reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version: raw_version
                .as_ref()
                .ok()
                .and_then(|version| u64::try_from(*version).ok())
                .unwrap_or(0),
            position: raw_position
                .as_ref()
                .ok()
                .and_then(|position| u64::try_from(*position).ok())
                .filter(|position| *position > 0),
            reason,
        })
    };
    let position = raw_position
        .clone()
        .map_err(|reason| corrupt(format!("position: {reason}")))?;
    let stream_version = raw_version
        .clone()
        .map_err(|reason| corrupt(format!("stream version: {reason}")))?;
    // A replay selects no event id: its columns after the version move up by one.
    let (event_id, after) = match columns {
        Columns::Record => (
            match row.get_ref(first + 2) {
                Ok(ValueRef::Blob(id)) => <[u8; 16]>::try_from(id)
                    .map_err(|_| corrupt(format!("event id: {} bytes, not 16", id.len())))?,
                Ok(other) => {
                    return Err(corrupt(format!(
                        "event id: {:?} where 16 bytes belong",
                        other.data_type()
                    )));
                }
                Err(error) => return Err(corrupt(format!("event id: {error}"))),
            },
            first + 3,
        ),
        Columns::Replay => ([0; 16], first + 2),
    };
    let name = match row.get_ref(after) {
        Ok(ValueRef::Text(name)) => append(bytes, name),
        Ok(other) => {
            return Err(corrupt(format!(
                "event name: {:?} where text belongs",
                other.data_type()
            )));
        }
        Err(error) => return Err(corrupt(format!("event name: {error}"))),
    };
    let schema_version =
        integer(row, after + 1).map_err(|reason| corrupt(format!("schema version: {reason}")))?;
    // One look at the payload column serves both questions.
    let stored = row.get_ref(after + 2);
    let archived = matches!(stored, Ok(ValueRef::Blob(body)) if body.is_empty());
    let payload = json_value(stored)
        .map(|payload| append(bytes, payload))
        .map_err(|reason| corrupt(format!("payload: {reason}")))?;
    if columns == Columns::Replay {
        return Ok(CopiedRow {
            position,
            stream_version,
            event_id,
            schema_version,
            seconds: 0,
            nanoseconds: 0,
            name,
            payload,
            metadata: None,
            tags: None,
            archived,
        });
    }
    let metadata = match row.get_ref(first + 6) {
        Ok(ValueRef::Null) => None,
        _ => Some(
            json_bytes(row, first + 6)
                .map(|metadata| append(bytes, metadata))
                .map_err(|reason| corrupt(format!("metadata: {reason}")))?,
        ),
    };
    let seconds = integer(row, first + 7)
        .map_err(|reason| corrupt(format!("timestamp seconds: {reason}")))?;
    let nanoseconds = integer(row, first + 8)
        .map_err(|reason| corrupt(format!("timestamp nanoseconds: {reason}")))?;
    let tags = match row.get_ref(first + 9) {
        Ok(ValueRef::Null) => None,
        _ => Some(
            json_bytes(row, first + 9)
                .map(|tags| append(bytes, tags))
                .map_err(|reason| corrupt(format!("tags: {reason}")))?,
        ),
    };
    Ok(CopiedRow {
        position,
        stream_version,
        event_id,
        schema_version,
        seconds,
        nanoseconds,
        name,
        payload,
        metadata,
        tags,
        archived,
    })
}

/// Whether the payload column holds what archiving leaves: an empty blob (factum writes
/// payloads as text, and no JSON text is empty).
pub(super) fn is_archived_body(row: &Row<'_>, column: usize) -> bool {
    matches!(row.get_ref(column), Ok(ValueRef::Blob(bytes)) if bytes.is_empty())
}

/// The checked values of a copied row that a replay reads, borrowed from the bytes.
struct Body<'b> {
    position: u64,
    stream_version: u64,
    schema_version: u32,
    name: &'b str,
    /// UTF-8, not yet known to be JSON.
    payload: &'b str,
}

/// Checks what a replay reads of a row [`copy_row`] copied into `bytes`: positive
/// position and version, a schema version, a UTF-8 name and payload. Whether the payload
/// is JSON is left to its one parse: [`fill`]'s, or a replay's decoder's. An error names
/// the stream, the version and, once checked, the position.
fn check_body<'b>(stream_id: &str, bytes: &'b [u8], row: &CopiedRow) -> Result<Body<'b>, Failure> {
    let stream_version = u64::try_from(row.stream_version).unwrap_or(0);
    // No position until it is checked: then the error names none.
    let mut position = None;
    let corrupt = |position: Option<u64>, reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version,
            position,
            reason,
        })
    };
    match u64::try_from(row.position) {
        Ok(checked) if checked > 0 => position = Some(checked),
        _ => {
            let reason = format!("the position {} is not positive", row.position);
            return Err(corrupt(position, reason));
        }
    }
    if row.stream_version <= 0 {
        let reason = format!("the stream version {} is not positive", row.stream_version);
        return Err(corrupt(position, reason));
    }
    let Ok(schema_version) = u32::try_from(row.schema_version) else {
        let reason = format!("schema version: {} is not one", row.schema_version);
        return Err(corrupt(position, reason));
    };
    let name = std::str::from_utf8(bytes.get(row.name.clone()).unwrap_or_default())
        .map_err(|error| corrupt(position, format!("event name: not UTF-8: {error}")))?;
    let payload = std::str::from_utf8(bytes.get(row.payload.clone()).unwrap_or_default())
        .map_err(|error| corrupt(position, format!("payload: not UTF-8: {error}")))?;
    Ok(Body {
        position: position.unwrap_or_default(),
        stream_version,
        schema_version,
        name,
        payload,
    })
}

/// What a replay reads of a row [`copy_replayed`] copied into `bytes`, checked as
/// [`fill`] checks those values except that the payload is not parsed: the replay's
/// decoder parses it once and reports text that is not JSON. Borrowed from `bytes`.
pub(super) fn replayed<'a>(
    stream_id: &'a str,
    bytes: &'a [u8],
    row: &CopiedRow,
) -> Result<ReplayedEvent<'a>, Failure> {
    let body = check_body(stream_id, bytes, row)?;
    Ok(ReplayedEvent {
        stream_id,
        stream_version: body.stream_version,
        position: body.position,
        name: body.name,
        schema_version: body.schema_version,
        payload: body.payload,
    })
}

/// Fills `record` (whose stream id and type are set) from a row [`copy_row`] copied into
/// `bytes`, checking every value: what [`check_body`] checks, then a valid time, the
/// metadata and the tags. Reuses the record's name and metadata buffers.
pub(super) fn fill(
    record: &mut RecordedEvent,
    bytes: &[u8],
    row: &CopiedRow,
) -> Result<(), Failure> {
    record.stream_version = u64::try_from(row.stream_version).unwrap_or(0);
    // `record.position` is 0 until the position is checked: then the error names none.
    record.position = 0;
    let body = check_body(&record.stream_id, bytes, row)?;
    record.position = body.position;
    record.event_id = Uuid::from_bytes(row.event_id);
    record.schema_version = body.schema_version;
    record.name.clear();
    record.name.push_str(body.name);
    let corrupt = |record: &RecordedEvent, reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: record.stream_id.clone(),
            stream_version: record.stream_version,
            position: Some(record.position),
            reason,
        })
    };
    record.payload = match RawValue::from_string(body.payload.to_owned()) {
        Ok(payload) => payload,
        Err(error) => return Err(corrupt(record, format!("payload: not JSON: {error}"))),
    };
    record.timestamp = match timestamp(row.seconds, row.nanoseconds) {
        Ok(timestamp) => timestamp,
        Err(reason) => return Err(corrupt(record, reason)),
    };
    let metadata = match &row.metadata {
        None => {
            clear_metadata(&mut record.metadata);
            Ok(())
        }
        Some(range) => read_metadata(
            bytes.get(range.clone()).unwrap_or_default(),
            &mut record.metadata,
        ),
    };
    if let Err(reason) = metadata {
        return Err(corrupt(record, format!("metadata: {reason}")));
    }
    match &row.tags {
        None => record.tags.clear(),
        Some(range) => {
            record.tags = serde_json::from_slice(bytes.get(range.clone()).unwrap_or_default())
                .map_err(|error| corrupt(record, format!("tags: {error}")))?;
        }
    }
    Ok(())
}

impl CopiedRow {
    /// The hashed fields of the row, as stored (see [`crate::integrity::chain`]).
    pub(super) fn fields<'a>(
        &'a self,
        stream_id: &'a str,
        stream_type: &'a str,
        bytes: &'a [u8],
    ) -> crate::integrity::StoredFields<'a> {
        crate::integrity::StoredFields {
            event_id: &self.event_id,
            position: self.position,
            stream_id: stream_id.as_bytes(),
            stream_type: stream_type.as_bytes(),
            stream_version: self.stream_version,
            name: bytes.get(self.name.clone()).unwrap_or_default(),
            schema_version: self.schema_version,
            timestamp_seconds: self.seconds,
            timestamp_nanos: self.nanoseconds,
            metadata: self
                .metadata
                .as_ref()
                .map(|range| bytes.get(range.clone()).unwrap_or_default()),
            payload: bytes.get(self.payload.clone()).unwrap_or_default(),
            tags: self
                .tags
                .as_ref()
                .map(|range| bytes.get(range.clone()).unwrap_or_default()),
        }
    }
}

/// Appends `part` to `bytes`; returns where it went.
fn append(bytes: &mut Vec<u8>, part: &[u8]) -> Range<usize> {
    let start = bytes.len();
    bytes.extend_from_slice(part);
    start..bytes.len()
}

/// Empties metadata, keeping the actor's buffer out of the way (it is dropped).
fn clear_metadata(metadata: &mut Metadata) {
    metadata.correlation_id = None;
    metadata.causation_id = None;
    metadata.actor = None;
    metadata.actor_kind = None;
    metadata.tenant = None;
    metadata.traceparent = None;
    metadata.extra.clear();
}

/// Reads stored metadata JSON into `metadata`.
///
/// serde_json spends more time on a metadata object than the whole rest of a row costs,
/// so the exact shape the store writes (`{"correlation_id":…,"causation_id":…,
/// "actor":…}`, ids hyphenated or `null`, an actor without escapes, no `extra`) is read
/// by a direct scan that reuses the actor's buffer. Anything else — `extra` entries,
/// escapes, other spacing or order, damaged text — goes to serde_json, which gives the
/// same result or the error.
pub(super) fn read_metadata(json: &[u8], metadata: &mut Metadata) -> Result<(), String> {
    if read_metadata_fast(json, metadata).is_some() {
        return Ok(());
    }
    *metadata = serde_json::from_slice(json).map_err(|error| error.to_string())?;
    Ok(())
}

/// The direct scan of [`read_metadata`]: `None` when `json` is not in the store's plain
/// shape (then `metadata` may be partly written; the caller overwrites it).
pub(super) fn read_metadata_fast(json: &[u8], metadata: &mut Metadata) -> Option<()> {
    let rest = json.strip_prefix(br#"{"correlation_id":"#)?;
    let (correlation_id, rest) = fast_uuid(rest)?;
    let rest = rest.strip_prefix(br#","causation_id":"#)?;
    let (causation_id, rest) = fast_uuid(rest)?;
    let rest = rest.strip_prefix(br#","actor":"#)?;
    let rest = match rest.strip_prefix(b"null") {
        Some(rest) => {
            metadata.actor = None;
            rest
        }
        None => {
            let (actor, rest) = fast_string(rest)?;
            reuse(&mut metadata.actor, actor);
            rest
        }
    };
    // Written only when set, in this order (see `Metadata`).
    let rest = match rest.strip_prefix(br#","actor_kind":"#) {
        Some(rest) => {
            let (kind, rest) = fast_string(rest)?;
            reuse(&mut metadata.actor_kind, kind);
            rest
        }
        None => {
            metadata.actor_kind = None;
            rest
        }
    };
    let rest = match rest.strip_prefix(br#","tenant":"#) {
        Some(rest) => {
            let (tenant, rest) = fast_string(rest)?;
            reuse(&mut metadata.tenant, tenant);
            rest
        }
        None => {
            metadata.tenant = None;
            rest
        }
    };
    let rest = match rest.strip_prefix(br#","traceparent":"#) {
        Some(rest) => {
            let (traceparent, rest) = fast_string(rest)?;
            reuse(&mut metadata.traceparent, traceparent);
            rest
        }
        None => {
            metadata.traceparent = None;
            rest
        }
    };
    if rest != b"}" {
        return None;
    }
    metadata.correlation_id = correlation_id;
    metadata.causation_id = causation_id;
    metadata.extra.clear();
    Some(())
}

/// A quoted string without escapes, and what follows it; `None` for anything else.
fn fast_string(json: &[u8]) -> Option<(&str, &[u8])> {
    let rest = json.strip_prefix(b"\"")?;
    let end = rest.iter().position(|byte| *byte == b'"')?;
    let text = &rest[..end];
    // An escape needs serde_json; a raw control character is invalid JSON, and
    // serde_json reports it.
    if text.iter().any(|byte| *byte == b'\\' || *byte < 0x20) {
        return None;
    }
    Some((std::str::from_utf8(text).ok()?, &rest[end + 1..]))
}

/// Stores `text` in `slot`, reusing its buffer.
fn reuse(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(buffer) => {
            buffer.clear();
            buffer.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
}

/// `null` or a quoted hyphenated UUID, and what follows it.
fn fast_uuid(json: &[u8]) -> Option<(Option<Uuid>, &[u8])> {
    if let Some(rest) = json.strip_prefix(b"null") {
        return Some((None, rest));
    }
    let quoted = json.get(..38)?;
    if quoted[0] != b'"' || quoted[37] != b'"' {
        return None;
    }
    let uuid = Uuid::try_parse_ascii(&quoted[1..37]).ok()?;
    Some((Some(uuid), &json[38..]))
}

/// Stores the snapshot, replacing the stream's earlier one.
pub(super) fn save_snapshot(
    connection: &Connection,
    patience: Duration,
    snapshot: &Snapshot,
) -> Result<(), Failure> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO snapshots
             (stream_id, stream_version, schema_version, state, taken_at_s, taken_at_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (stream_id) DO UPDATE SET
             stream_version = excluded.stream_version,
             schema_version = excluded.schema_version,
             state = excluded.state,
             taken_at_s = excluded.taken_at_s,
             taken_at_ns = excluded.taken_at_ns",
    )?;
    let stream_version = i64::try_from(snapshot.stream_version).map_err(|_| {
        Failure::Store(StoreError::Backend(
            format!(
                "stream `{}`: snapshot version {} exceeds SQLite's integers",
                snapshot.stream_id, snapshot.stream_version
            )
            .into(),
        ))
    })?;
    // One statement in autocommit mode takes the write lock at once: no upgrade.
    retry_busy(patience, || {
        statement
            .execute(params![
                snapshot.stream_id,
                stream_version,
                snapshot.schema_version,
                snapshot.state.get(),
                snapshot.taken_at.timestamp(),
                snapshot.taken_at.timestamp_subsec_nanos(),
            ])
            .map_err(Failure::from)
    })?;
    Ok(())
}

/// The stream's snapshot, if any.
pub(super) fn load_snapshot(
    connection: &Connection,
    stream_id: &str,
) -> Result<Option<Snapshot>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT stream_version, schema_version, state, taken_at_s, taken_at_ns
         FROM snapshots WHERE stream_id = ?1",
    )?;
    let mut rows = statement.query(params![stream_id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let raw_version = integer(row, 0);
    let stream_version = raw_version
        .as_ref()
        .ok()
        .and_then(|version| u64::try_from(*version).ok())
        .unwrap_or(0);
    let corrupt = |reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version,
            position: None,
            reason: format!("snapshot: {reason}"),
        })
    };
    match raw_version {
        Ok(version) if version >= 0 => {}
        Ok(version) => return Err(corrupt(format!("the version {version} is negative"))),
        Err(reason) => return Err(corrupt(format!("version: {reason}"))),
    }
    let schema_version = integer(row, 1)
        .and_then(|version| {
            u32::try_from(version).map_err(|_| format!("{version} is not a schema version"))
        })
        .map_err(|reason| corrupt(format!("schema version: {reason}")))?;
    let state = json(row, 2).map_err(|reason| corrupt(format!("state: {reason}")))?;
    let seconds = integer(row, 3).map_err(|reason| corrupt(format!("seconds: {reason}")))?;
    let nanoseconds =
        integer(row, 4).map_err(|reason| corrupt(format!("nanoseconds: {reason}")))?;
    let taken_at = timestamp(seconds, nanoseconds).map_err(corrupt)?;
    Ok(Some(Snapshot {
        stream_id: stream_id.to_owned(),
        stream_version,
        schema_version,
        state,
        taken_at,
    }))
}
