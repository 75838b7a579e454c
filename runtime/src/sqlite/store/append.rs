//! The append transaction.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::commands;
use super::connection::{Failure, WriteTransaction, backend};
use super::integrity;
use super::rows::{stream_version_of, to_sql_integer};
use crate::envelope::{Metadata, NewEvent};
use crate::integrity::{EventSigner, StoredFields, event_hash};
use crate::store::decision::AppendCondition;
use crate::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, CommandSession, CommandWrite,
    ExpectedVersion, StoreError,
};

/// The stream's row, as the append reads it under the write lock.
struct StreamRow {
    key: i64,
    stream_type: String,
    version: u64,
}

/// What a checked append did (or found done before), inside the write transaction.
struct Appended {
    outcome: AppendOutcome,
    /// The global position of the batch's first event.
    first_position: u64,
}

/// Appends `events` (not empty) in one write transaction.
///
/// The checks run in the memory store's order: an idempotent re-append or a re-used id,
/// then the expected version, then the stream type, then ids repeated within the batch.
/// Looking every id up costs an index probe per event, so the common path skips the
/// first check and lets the `UNIQUE` index on `event_id` refuse a stored id; every
/// failure (a conflict, a type mismatch, a refused id) then runs the full check before
/// it is reported, which gives the same answers as checking first.
#[allow(
    clippy::too_many_arguments,
    reason = "one append's parts (where, what, who signs, under which condition), passed once"
)]
pub(super) fn append(
    connection: &Connection,
    patience: Duration,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    signer: Option<&EventSigner>,
    condition: Option<&AppendCondition>,
) -> Result<AppendOutcome, Failure> {
    in_write_transaction(connection, patience, |ids_first| {
        append_in(
            connection,
            stream_id,
            stream_type,
            expected,
            events,
            Checks {
                ids_first,
                condition,
            },
            signer,
        )
        .map(|appended| appended.outcome)
    })
}

/// Appends a command's `events` (possibly none) and records `command`, in one write
/// transaction; or finds the command recorded and writes nothing.
///
/// The record is looked up under the write lock, before anything else: concurrent
/// submissions of one id, from any connection or process, queue on the lock, and every
/// one after the first finds the first's record.
#[allow(
    clippy::too_many_arguments,
    reason = "one append's parts (where, what, who signs), passed once"
)]
pub(super) fn append_command(
    connection: &Connection,
    patience: Duration,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    command: &CommandRecord,
    signer: Option<&EventSigner>,
    condition: Option<&AppendCondition>,
) -> Result<CommandAppend, Failure> {
    in_write_transaction(connection, patience, |ids_first| {
        command_in(
            connection,
            stream_id,
            stream_type,
            expected,
            events,
            command,
            Checks {
                ids_first,
                condition,
            },
            signer,
        )
    })
}

/// What an append checks besides the stream: a decision's condition, and whether the
/// batch's ids are looked up first (after the `UNIQUE` index refused one).
#[derive(Clone, Copy)]
struct Checks<'a> {
    ids_first: bool,
    condition: Option<&'a AppendCondition>,
}

/// [`append_command`]'s checks and writes, inside the caller's write transaction (not
/// committed here).
#[allow(
    clippy::too_many_arguments,
    reason = "one append's parts (where, what, who signs), passed once"
)]
fn command_in(
    connection: &Connection,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    command: &CommandRecord,
    checks: Checks<'_>,
    signer: Option<&EventSigner>,
) -> Result<CommandAppend, Failure> {
    if let Some(stored) = commands::load(connection, command.command_id)? {
        return Ok(CommandAppend::AlreadyExecuted(stored));
    }
    written(
        connection,
        stream_id,
        stream_type,
        expected,
        events,
        command,
        checks,
        signer,
    )
    .map(CommandAppend::Appended)
}

/// The events (possibly none) and the command's record written, once the record was
/// looked up; inside the caller's write transaction. `checks` as for [`append_in`].
#[allow(
    clippy::too_many_arguments,
    reason = "one append's parts (where, what, who signs), passed once"
)]
fn written(
    connection: &Connection,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    command: &CommandRecord,
    checks: Checks<'_>,
    signer: Option<&EventSigner>,
) -> Result<CommandOutcome, Failure> {
    {
        let (stream_version, positions) = if events.is_empty() {
            if let Some(condition) = checks.condition {
                super::decision::check(connection, stream_id, condition)?;
            }
            let stream = read_stream_row(connection, stream_id)?;
            check_stream(stream.as_ref(), stream_id, stream_type, expected)?;
            (stream.map_or(0, |stream| stream.version), None)
        } else {
            let appended = append_in(
                connection,
                stream_id,
                stream_type,
                expected,
                events,
                checks,
                signer,
            )?;
            let positions = (appended.first_position, appended.outcome.last_position);
            (appended.outcome.stream_version, Some(positions))
        };
        let event_ids = events.iter().map(|event| event.event_id).collect();
        let outcome = CommandOutcome::new(command, stream_id, stream_version, positions, event_ids);
        commands::insert(connection, &outcome)?;
        Ok(outcome)
    }
}

/// A command's session on the writer, for one stream: the stream's events from
/// `from_version` visited (see [`session`]).
#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
pub(super) fn command_session<E, V, D>(
    connection: &Connection,
    patience: Duration,
    stream_id: &str,
    stream_type: &str,
    from_version: u64,
    command: &CommandRecord,
    checks: &super::rows::ReadChecks,
    mut visit: V,
    decide: D,
) -> Result<Result<CommandSession<E>, E>, Failure>
where
    V: FnMut(&crate::envelope::RecordedEvent) -> Result<(), E>,
    D: FnOnce() -> Result<CommandWrite, E>,
{
    let read = || {
        // One record, refilled row by row, as `for_each_in_stream` visits.
        let mut record: Option<crate::envelope::RecordedEvent> = None;
        let mut bytes = Vec::new();
        let visited = visit_rows(|stop| {
            super::rows::each_row_in_stream(
                connection,
                stream_id,
                from_version,
                usize::MAX,
                checks,
                super::rows::Columns::Record,
                |row, stored_type| {
                    bytes.clear();
                    let copied = super::rows::copy_checked(
                        row,
                        0,
                        stream_id,
                        stored_type,
                        &mut bytes,
                        checks,
                    )?;
                    let record = record.get_or_insert_with(|| {
                        super::rows::blank(stream_id.to_owned(), stored_type.to_owned())
                    });
                    super::rows::fill(record, &bytes, &copied)?;
                    visit(record).map_err(&mut *stop)
                },
            )
        })?;
        // The expected version the decision names guards a later transaction.
        Ok(visited.map(|()| None))
    };
    session(
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

/// Runs `walk`, whose visitor stops it with `stop` at the caller's first error: that
/// error apart (`Ok(Err(..))`) from the walk's own failures.
pub(super) fn visit_rows<E>(
    walk: impl FnOnce(&mut dyn FnMut(E) -> Failure) -> Result<(), Failure>,
) -> Result<Result<(), E>, Failure> {
    let mut visit_error = None;
    let walked = walk(&mut |error| {
        visit_error = Some(error);
        Failure::Stop
    });
    match (walked, visit_error) {
        (_, Some(error)) => Ok(Err(error)),
        (Err(failure), None) => Err(failure),
        (Ok(()), None) => Ok(Ok(())),
    }
}

/// A command's session on the writer: `BEGIN IMMEDIATE`; the command's record, if it
/// ran before; else the events the decision is made on visited (`read`), the decision
/// taken, and the decided events written with the record and committed — all under one
/// write lock, so nothing comes between the read and the write.
///
/// `read` answers the condition a write in a transaction of its own must still meet
/// (after the `UNIQUE` index refused an event id): none when the decision names the
/// stream's version, a decision's condition on the events it read otherwise.
#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
pub(super) fn session<E, R, D>(
    connection: &Connection,
    patience: Duration,
    stream_id: &str,
    stream_type: &str,
    command: &CommandRecord,
    signer: Option<&EventSigner>,
    read: R,
    decide: D,
) -> Result<Result<CommandSession<E>, E>, Failure>
where
    R: FnOnce() -> Result<Result<Option<AppendCondition>, E>, Failure>,
    D: FnOnce() -> Result<CommandWrite, E>,
{
    let transaction = WriteTransaction::begin(connection, patience)?;
    if let Some(stored) = commands::load(connection, command.command_id)? {
        return Ok(Ok(CommandSession::AlreadyExecuted(stored)));
    }
    let condition = match read()? {
        Ok(condition) => condition,
        Err(error) => return Ok(Err(error)),
    };
    let write = match decide() {
        Ok(write) => write,
        Err(refusal) => return Ok(Ok(CommandSession::Refused(refusal))),
    };
    crate::store::limits::check_command(stream_id, stream_type, &write.events, command)?;
    // The record was looked up, and the condition holds, under this lock already.
    match written(
        connection,
        stream_id,
        stream_type,
        write.expected,
        &write.events,
        command,
        Checks {
            ids_first: false,
            condition: None,
        },
        signer,
    ) {
        Ok(outcome) => {
            transaction.commit()?;
            Ok(Ok(CommandSession::Appended(outcome)))
        }
        // A stored event id (next to impossible with fresh UUIDs): the full check, in a
        // transaction of its own, as `append_command` does it.
        Err(Failure::Sqlite(error))
            if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
        {
            drop(transaction);
            let answer = append_command(
                connection,
                patience,
                stream_id,
                stream_type,
                write.expected,
                &write.events,
                command,
                signer,
                condition.as_ref(),
            )?;
            Ok(Ok(match answer {
                CommandAppend::Appended(outcome) => CommandSession::Appended(outcome),
                CommandAppend::AlreadyExecuted(outcome) => CommandSession::AlreadyExecuted(outcome),
            }))
        }
        Err(failure) => Err(failure),
    }
}

/// Runs `work` inside a write transaction and commits what it wrote. When a `UNIQUE`
/// index refuses a row (a stored event id), the rows inserted so far are rolled back and
/// `work` runs once more under the write lock again, told to look the batch's ids up
/// first (`true`); a second refusal is a backend error.
fn in_write_transaction<T>(
    connection: &Connection,
    patience: Duration,
    mut work: impl FnMut(bool) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let transaction = WriteTransaction::begin(connection, patience)?;
    match work(false) {
        Ok(value) => {
            transaction.commit()?;
            Ok(value)
        }
        Err(Failure::Sqlite(error))
            if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) =>
        {
            drop(transaction);
            let transaction = WriteTransaction::begin(connection, patience)?;
            let value = work(true).map_err(|failure| match failure {
                Failure::Sqlite(error) => Failure::Store(backend(error)),
                other => other,
            })?;
            transaction.commit()?;
            Ok(value)
        }
        Err(failure) => Err(failure),
    }
}

/// The stream's row, if the stream exists.
fn read_stream_row(connection: &Connection, stream_id: &str) -> Result<Option<StreamRow>, Failure> {
    connection
        .prepare_cached(
            "SELECT stream_key, stream_type, version FROM streams WHERE stream_id = ?1",
        )?
        .query_row(params![stream_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?
        .map(|(key, stream_type, version)| {
            stream_version_of(stream_id, version).map(|version| StreamRow {
                key,
                stream_type,
                version,
            })
        })
        .transpose()
}

/// The expected version, then the stream type, against the stream's row.
fn check_stream(
    stream: Option<&StreamRow>,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
) -> Result<(), StoreError> {
    let actual = stream.map(|stream| stream.version);
    if !expected.is_met_by(actual) {
        return Err(StoreError::Conflict {
            stream_id: stream_id.to_owned(),
            expected,
            actual,
        });
    }
    match stream.filter(|stream| stream.stream_type != stream_type) {
        Some(stream) => Err(StoreError::StreamTypeMismatch {
            stream_id: stream_id.to_owned(),
            existing: stream.stream_type.clone(),
            requested: stream_type.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The append's checks and inserts, inside the caller's write transaction (not
/// committed here). `checks.ids_first`: look the batch's ids up before anything else
/// (after the `UNIQUE` index refused one); otherwise only a failed check looks them up,
/// so a batch stored before is answered as such, never as a failed condition.
fn append_in(
    connection: &Connection,
    stream_id: &str,
    stream_type: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    checks: Checks<'_>,
    signer: Option<&EventSigner>,
) -> Result<Appended, Failure> {
    if checks.ids_first
        && let Some(previous) = previous_append(connection, stream_id, expected, events)?
    {
        return Ok(previous);
    }
    if let Some(condition) = checks.condition
        && let Err(failed) = super::decision::check(connection, stream_id, condition)
    {
        if let Some(previous) = previous_append(connection, stream_id, expected, events)? {
            return Ok(previous);
        }
        return Err(failed);
    }
    let stream = read_stream_row(connection, stream_id)?;
    if let Err(refused) = check_stream(stream.as_ref(), stream_id, stream_type, expected) {
        if let Some(previous) = previous_append(connection, stream_id, expected, events)? {
            return Ok(previous);
        }
        return Err(Failure::Store(refused));
    }

    let actual = stream.as_ref().map(|stream| stream.version);
    let first_version = actual.unwrap_or(0) + 1;
    let last_version = actual.unwrap_or(0) + events.len() as u64;
    let too_long = || {
        Failure::Store(StoreError::Backend(
            format!("stream `{stream_id}`: version {last_version} exceeds SQLite's integers")
                .into(),
        ))
    };
    let last_version_sql = i64::try_from(last_version).map_err(|_| too_long())?;
    let (first_position, last_position) = insert_events(
        connection,
        stream_id,
        stream_type,
        stream.as_ref().map(|stream| stream.key),
        first_version,
        last_version_sql,
        events,
        signer,
    )?;
    Ok(Appended {
        outcome: AppendOutcome {
            stream_version: last_version,
            last_position,
            written: true,
        },
        first_position,
    })
}

/// Inserts the stream row (if new) or its new version, then the events; returns the
/// first and the last event's positions.
#[allow(
    clippy::too_many_arguments,
    reason = "one append's parts (where, what, who signs), passed once"
)]
fn insert_events(
    connection: &Connection,
    stream_id: &str,
    stream_type: &str,
    stream_key: Option<i64>,
    first_version: u64,
    last_version: i64,
    events: &[NewEvent],
    signer: Option<&EventSigner>,
) -> Result<(u64, u64), Failure> {
    let stream_key = match stream_key {
        Some(key) => {
            connection
                .prepare_cached("UPDATE streams SET version = ?2 WHERE stream_key = ?1")?
                .execute(params![key, last_version])?;
            key
        }
        None => {
            connection
                .prepare_cached(
                    "INSERT INTO streams (stream_id, stream_type, version) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![stream_id, stream_type, last_version])?;
            connection.last_insert_rowid()
        }
    };
    let mut insert = connection.prepare_cached(
        "INSERT INTO events (position, stream_key, stream_version, event_id, name,
                             schema_version, payload, metadata, timestamp_s, timestamp_ns,
                             hash, predecessor, signature, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut index_tag =
        connection.prepare_cached("INSERT INTO event_tags (tag, position) VALUES (?1, ?2)")?;
    // Positions are taken here, under the write lock, so each event's hash can cover its
    // position (see `factum::integrity::chain`).
    let first_position = integrity::next_position(connection)?;
    let mut predecessor = integrity::hash_at(
        connection,
        stream_id,
        stream_key,
        i64::try_from(first_version - 1).unwrap_or(i64::MAX),
    )?;
    let mut metadata_json = Vec::new();
    let mut tags_json = String::new();
    for (offset, event) in events.iter().enumerate() {
        // Stored sorted and each once, as every store reads them back; the text is what
        // the hash covers.
        let tags = crate::tag::normalized_ref(&event.tags);
        let tags_text = if tags.is_empty() {
            None
        } else {
            tags_json.clear();
            tags_json.push_str(&to_json(&*tags)?);
            Some(tags_json.as_str())
        };
        let metadata = if is_empty(&event.metadata) {
            None
        } else {
            metadata_json.clear();
            // Serialising `Metadata` cannot fail (its map has string keys) and serde_json
            // writes UTF-8, but both are checked all the same.
            serde_json::to_writer(&mut metadata_json, &event.metadata)
                .map_err(|error| Failure::Store(StoreError::Backend(Box::new(error))))?;
            Some(
                std::str::from_utf8(&metadata_json)
                    .map_err(|error| Failure::Store(StoreError::Backend(Box::new(error))))?,
            )
        };
        let position = first_position + offset as i64;
        let stream_version = to_sql_integer(first_version + offset as u64);
        let seconds = event.timestamp.timestamp();
        let nanos = event.timestamp.timestamp_subsec_nanos();
        let hash = event_hash(
            &predecessor,
            &StoredFields {
                event_id: event.event_id.as_bytes(),
                position,
                stream_id: stream_id.as_bytes(),
                stream_type: stream_type.as_bytes(),
                stream_version,
                name: event.name.as_bytes(),
                schema_version: i64::from(event.schema_version),
                timestamp_seconds: seconds,
                timestamp_nanos: i64::from(nanos),
                metadata: metadata.map(str::as_bytes),
                payload: event.payload.get().as_bytes(),
                tags: tags_text.map(str::as_bytes),
            },
        );
        // A critical event is signed here, in the append's transaction: it is never
        // stored without its signature.
        let signature = signer
            .filter(|signer| signer.signs(&event.name))
            .map(|signer| signer.sign(&hash));
        insert.execute(params![
            position,
            stream_key,
            stream_version,
            event.event_id.as_bytes().as_slice(),
            event.name,
            event.schema_version,
            event.payload.get(),
            metadata,
            seconds,
            nanos,
            hash.as_slice(),
            predecessor.as_slice(),
            signature.as_ref().map(|signature| signature.as_slice()),
            tags_text,
        ])?;
        for tag in tags.iter() {
            index_tag.execute(params![tag.as_str(), position])?;
        }
        predecessor = hash;
    }
    let position = |position: i64| {
        u64::try_from(position).map_err(|_| {
            Failure::Store(StoreError::Backend(
                format!("SQLite assigned the position {position}").into(),
            ))
        })
    };
    Ok((
        position(first_position)?,
        position(connection.last_insert_rowid())?,
    ))
}

/// `value` as JSON text. Serialising tags cannot fail (they are strings), but it is
/// checked all the same.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value)
        .map_err(|error| Failure::Store(StoreError::Backend(Box::new(error))))
}

/// Whether the metadata holds nothing (stored as `NULL`).
fn is_empty(metadata: &Metadata) -> bool {
    metadata.correlation_id.is_none()
        && metadata.causation_id.is_none()
        && metadata.actor.is_none()
        && metadata.actor_kind.is_none()
        && metadata.tenant.is_none()
        && metadata.traceparent.is_none()
        && metadata.extra.is_empty()
}

/// When every id of the batch is stored as this exact batch, appended with this
/// expectation, the outcome of that append; a [`StoreError::DuplicateEventId`] when some
/// id is stored otherwise; `None` when no id of the batch is stored.
fn previous_append(
    connection: &Connection,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<Option<Appended>, Failure> {
    let Some(first_event) = events.first() else {
        return Ok(None);
    };
    let mut lookup = connection.prepare_cached(
        "SELECT e.stream_key, e.stream_version, s.stream_id
         FROM events e JOIN streams s ON s.stream_key = e.stream_key
         WHERE e.event_id = ?1",
    )?;
    let mut found = None;
    for event in events {
        let stored = lookup
            .query_row(params![event.event_id.as_bytes().as_slice()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .optional()?;
        if let Some(stored) = stored {
            found = Some((event.event_id, stored));
            break;
        }
    }
    let Some((found_id, (stream_key, start, found_stream))) = found else {
        return Ok(None);
    };
    let duplicate = |event_id| {
        Failure::Store(StoreError::DuplicateEventId {
            stream_id: stream_id.to_owned(),
            event_id,
        })
    };
    if found_stream != stream_id || found_id != first_event.event_id {
        return Err(duplicate(found_id));
    }
    let mut range = connection.prepare_cached(
        "SELECT event_id, stream_version, position FROM events
         WHERE stream_key = ?1 AND stream_version >= ?2
         ORDER BY stream_version LIMIT ?3",
    )?;
    let stored: Vec<(Vec<u8>, i64, i64)> = range
        .query_map(
            params![
                stream_key,
                start,
                i64::try_from(events.len()).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    let same_batch = stored.len() == events.len()
        && stored
            .iter()
            .zip(events)
            .all(|((id, _, _), event)| id.as_slice() == event.event_id.as_bytes());
    let version_before = u64::try_from(start.saturating_sub(1)).unwrap_or(0);
    let same_expectation = expected.was_met_before(version_before);
    match (stored.first(), stored.last()) {
        (Some((_, _, first)), Some((_, version, last))) if same_batch && same_expectation => {
            Ok(Some(Appended {
                outcome: AppendOutcome {
                    stream_version: stream_version_of(stream_id, *version)?,
                    last_position: u64::try_from(*last).unwrap_or(0),
                    written: false,
                },
                first_position: u64::try_from(*first).unwrap_or(0),
            }))
        }
        _ => Err(duplicate(first_event.event_id)),
    }
}
