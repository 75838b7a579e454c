//! The SQLite store's side of tamper evidence (see [`crate::integrity`]): the hashes of
//! appended events, the backfill of a file written before events were hashed, the check
//! of a row's hash as it is read, and the walk of `verify`.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::connection::Failure;
use super::rows::CopiedRow;
use crate::integrity::checkpoint::SignedTreeHead;
use crate::integrity::{
    EventHash, GENESIS, Leaf, StoredCheckpoint, StoredEvent, StoredFields, Tampering,
    TamperingKind, Verification, Verifier, event_hash,
};
use crate::store::StoreError;

/// The position the next appended event takes: one past every position ever taken
/// (`AUTOINCREMENT` never reuses the position of a deleted row, and neither does this).
pub(super) fn next_position(connection: &Connection) -> Result<i64, Failure> {
    let taken: i64 = connection
        .prepare_cached(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        coalesce((SELECT max(position) FROM events), 0))",
        )?
        .query_row([], |row| row.get(0))?;
    Ok(taken + 1)
}

/// The hash of the stream's event at `version` (its last), the predecessor of the next.
pub(super) fn hash_at(
    connection: &Connection,
    stream_id: &str,
    stream_key: i64,
    version: i64,
) -> Result<EventHash, Failure> {
    if version == 0 {
        return Ok(GENESIS);
    }
    let stored: Option<Option<Vec<u8>>> = connection
        .prepare_cached("SELECT hash FROM events WHERE stream_key = ?1 AND stream_version = ?2")?
        .query_row(params![stream_key, version], |row| row.get(0))
        .optional()?;
    stored
        .flatten()
        .and_then(|hash| EventHash::try_from(hash.as_slice()).ok())
        .ok_or_else(|| {
            // Appending after a damaged head would chain new events to a wrong fact.
            Failure::Store(StoreError::CorruptRow {
                stream_id: stream_id.to_owned(),
                stream_version: u64::try_from(version).unwrap_or(0),
                position: None,
                reason: "the stream's last event has no readable hash to chain the append to"
                    .to_owned(),
            })
        })
}

/// Hashes every event of a file written before events were hashed, in position order:
/// the migration that adds the hash columns runs it, inside its transaction.
pub(crate) fn backfill(connection: &Connection) -> Result<(), Failure> {
    let mut read = connection.prepare(
        "SELECT e.position, s.stream_id, s.stream_type, e.stream_version, e.event_id, e.name,
                e.schema_version, e.payload, e.metadata, e.timestamp_s, e.timestamp_ns
         FROM events e JOIN streams s ON s.stream_key = e.stream_key
         ORDER BY e.position",
    )?;
    let mut update =
        connection.prepare("UPDATE events SET hash = ?2, predecessor = ?3 WHERE position = ?1")?;
    let mut chains: HashMap<Vec<u8>, EventHash> = HashMap::new();
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        // A row the walk cannot read is left unhashed: `verify` reports it.
        // The file has no tags yet (they came with a later migration).
        let Ok(fields) = stored_fields(row, 0, None) else {
            continue;
        };
        let predecessor = chains.get(fields.stream_id).copied().unwrap_or(GENESIS);
        let hash = event_hash(&predecessor, &fields);
        update.execute(params![
            fields.position,
            hash.as_slice(),
            predecessor.as_slice()
        ])?;
        chains.insert(fields.stream_id.to_vec(), hash);
    }
    Ok(())
}

/// The hashed fields of a row selected as `position, stream_id, stream_type,
/// stream_version, event_id, name, schema_version, payload, metadata, timestamp_s,
/// timestamp_ns` from column `first` on, with the tags at `tags` (none when `None`); the
/// reason when a column has a type the store never writes there.
pub(super) fn stored_fields<'r>(
    row: &'r Row<'_>,
    first: usize,
    tags: Option<usize>,
) -> Result<StoredFields<'r>, String> {
    Ok(StoredFields {
        position: integer(row, first, "position")?,
        stream_id: text(row, first + 1, "stream id")?,
        stream_type: text(row, first + 2, "stream type")?,
        stream_version: integer(row, first + 3, "stream version")?,
        event_id: blob(row, first + 4, "event id")?,
        name: text(row, first + 5, "name")?,
        schema_version: integer(row, first + 6, "schema version")?,
        // An archived body (an empty blob) reads as empty: the caller tells.
        payload: if super::rows::is_archived_body(row, first + 7) {
            &[]
        } else {
            text(row, first + 7, "payload")?
        },
        tags: match tags.map(|column| (column, row.get_ref(column))) {
            None | Some((_, Ok(ValueRef::Null))) => None,
            Some((column, _)) => Some(text(row, column, "tags")?),
        },
        metadata: match row.get_ref(first + 8) {
            Ok(ValueRef::Null) => None,
            _ => Some(text(row, first + 8, "metadata")?),
        },
        timestamp_seconds: integer(row, first + 9, "timestamp seconds")?,
        timestamp_nanos: integer(row, first + 10, "timestamp nanoseconds")?,
    })
}

fn integer(row: &Row<'_>, column: usize, what: &str) -> Result<i64, String> {
    match row.get_ref(column) {
        Ok(ValueRef::Integer(value)) => Ok(value),
        Ok(other) => Err(format!(
            "its {what} is {:?}, not an integer",
            other.data_type()
        )),
        Err(error) => Err(format!("its {what} cannot be read: {error}")),
    }
}

/// A column factum writes as text: any other storage class is a changed row (a flipped
/// bit in a record header can turn text into a blob of the same bytes).
fn text<'r>(row: &'r Row<'_>, column: usize, what: &str) -> Result<&'r [u8], String> {
    match row.get_ref(column) {
        Ok(ValueRef::Text(bytes)) => Ok(bytes),
        Ok(other) => Err(format!("its {what} is {:?}, not text", other.data_type())),
        Err(error) => Err(format!("its {what} cannot be read: {error}")),
    }
}

/// A column factum writes as a blob.
fn blob<'r>(row: &'r Row<'_>, column: usize, what: &str) -> Result<&'r [u8], String> {
    match row.get_ref(column) {
        Ok(ValueRef::Blob(bytes)) => Ok(bytes),
        Ok(other) => Err(format!("its {what} is {:?}, not a blob", other.data_type())),
        Err(error) => Err(format!("its {what} cannot be read: {error}")),
    }
}

/// Checks a row [`copy_row`](super::rows::copy_row) copied against the hash columns that
/// follow its event columns (the hash at `hash_column`, then the predecessor's and the
/// signature), and a critical event's signature when `signer` is given: a damaged or
/// forged event is a [`StoreError::CorruptRow`] at its position.
pub(super) fn check_copied(
    row: &Row<'_>,
    hash_column: usize,
    stream_id: &str,
    stream_type: &str,
    copied: &CopiedRow,
    bytes: &[u8],
    signer: Option<&crate::integrity::EventSigner>,
) -> Result<(), Failure> {
    let corrupt = |reason: String| {
        Failure::Store(StoreError::CorruptRow {
            stream_id: stream_id.to_owned(),
            stream_version: u64::try_from(copied.stream_version).unwrap_or(0),
            position: u64::try_from(copied.position).ok(),
            reason,
        })
    };
    let hash = |column: usize, what: &str| match row.get_ref(column) {
        Ok(ValueRef::Blob(hash)) => EventHash::try_from(hash)
            .map_err(|_| corrupt(format!("its {what} is {} bytes, not 32", hash.len()))),
        Ok(ValueRef::Null) => Err(corrupt(format!("it has no {what}"))),
        Ok(other) => Err(corrupt(format!("its {what} is {:?}", other.data_type()))),
        Err(error) => Err(corrupt(format!("its {what} cannot be read: {error}"))),
    };
    let stored = hash(hash_column, "hash")?;
    let predecessor = hash(hash_column + 1, "predecessor hash")?;
    let fields = copied.fields(stream_id, stream_type, bytes);
    if event_hash(&predecessor, &fields) != stored {
        return Err(corrupt(
            "the stored event does not match its hash (altered after it was written)".to_owned(),
        ));
    }
    if let Some(signer) = signer {
        let signature = match row.get_ref(hash_column + 2) {
            Ok(ValueRef::Blob(signature)) => Some(signature),
            _ => None,
        };
        let name = String::from_utf8_lossy(fields.name);
        signer.check(&name, &stored, signature).map_err(corrupt)?;
    }
    Ok(())
}

/// Walks the file for [`TamperEvident::verify`](crate::integrity::TamperEvident::verify):
/// SQLite's own `integrity_check` (pages and indexes), then every event in position
/// order, then every stream's head.
pub(super) fn verify(
    connection: &Connection,
    archives: &crate::archive::Archives,
) -> Result<Verification, Failure> {
    let transaction = connection.unchecked_transaction()?;
    let mut verifier = Verifier::new();
    let damaged = |detail: String| Tampering {
        kind: TamperingKind::Damaged,
        stream_id: String::new(),
        stream_version: 0,
        position: None,
        detail,
    };
    match integrity_check(connection) {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => verifier.finding(damaged(format!(
            "SQLite's integrity check reports: {}",
            problems.join("; ")
        ))),
        Err(error) => {
            verifier.finding(damaged(format!("SQLite's integrity check failed: {error}")))
        }
    }
    if let Err(error) = walk(connection, archives, &mut verifier) {
        verifier.finding(damaged(format!(
            "the events cannot be read to the end: {error}"
        )));
    }
    if let Err(error) = check_tag_index(connection, &mut verifier) {
        verifier.finding(damaged(format!(
            "the tag index cannot be compared with the events' tags: {error}"
        )));
    }
    let heads: Result<Vec<(Vec<u8>, i64)>, rusqlite::Error> = connection
        .prepare("SELECT stream_id, version FROM streams")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    let id = match row.get_ref(0)? {
                        ValueRef::Text(id) | ValueRef::Blob(id) => id.to_vec(),
                        other => format!("{other:?}").into_bytes(),
                    };
                    Ok((id, row.get::<_, i64>(1).unwrap_or(-1)))
                })?
                .collect()
        });
    let verification = match heads {
        Ok(heads) => verifier.finish_with_heads(heads.iter().map(|(id, v)| (id.as_slice(), *v))),
        Err(error) => {
            verifier.finding(damaged(format!("the streams cannot be read: {error}")));
            verifier.finish()
        }
    };
    transaction.commit()?;
    Ok(verification)
}

/// Reports each event whose rows of the tag index (`event_tags`) differ from its tags:
/// a row missing hides the event from the decisions that look it up by that tag, a row
/// too many shows it where it does not belong. The index is in no hash, so only this
/// comparison finds such an edit. (Tags that are not a JSON array fail the event's hash.)
fn check_tag_index(connection: &Connection, verifier: &mut Verifier) -> rusqlite::Result<()> {
    let mut statement = connection.prepare(
        "SELECT e.position FROM events e,
                json_each(CASE WHEN json_valid(e.tags) THEN e.tags ELSE '[]' END) j
          WHERE e.tags IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM event_tags t
                             WHERE t.tag = j.value AND t.position = e.position)
         UNION
         SELECT t.position FROM event_tags t LEFT JOIN events e ON e.position = t.position
          WHERE e.position IS NULL OR e.tags IS NULL
             OR NOT EXISTS (SELECT 1 FROM json_each(
                                CASE WHEN json_valid(e.tags) THEN e.tags ELSE '[]' END) j
                             WHERE j.value = t.tag)
         ORDER BY 1",
    )?;
    let positions = statement.query_map([], |row| row.get::<_, i64>(0))?;
    for position in positions {
        verifier.finding(crate::integrity::tag_index_differs(position?));
    }
    Ok(())
}

/// `PRAGMA integrity_check`'s problems (none: the file is sound).
fn integrity_check(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(lines.into_iter().filter(|line| line != "ok").collect())
}

/// Feeds every event to `verifier`, in position order; an archived event's body comes
/// from `archives`, or only its place in the chain is checked.
fn walk(
    connection: &Connection,
    archives: &crate::archive::Archives,
    verifier: &mut Verifier,
) -> rusqlite::Result<()> {
    let archived_to = super::archive::archived_to(connection)?;
    let mut statement = connection.prepare(
        "SELECT e.position, s.stream_id, s.stream_type, e.stream_version, e.event_id, e.name,
                e.schema_version, e.payload, e.metadata, e.timestamp_s, e.timestamp_ns,
                e.hash, e.predecessor, e.stream_key, e.tags
         FROM events e LEFT JOIN streams s ON s.stream_key = e.stream_key
         ORDER BY e.position",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let position = row
            .get_ref(0)?
            .as_i64()
            .ok()
            .and_then(|p| u64::try_from(p).ok());
        let altered = |detail: String| Tampering {
            kind: TamperingKind::Altered,
            stream_id: String::new(),
            stream_version: 0,
            position,
            detail,
        };
        if let ValueRef::Null = row.get_ref(1)? {
            verifier.finding(altered(format!(
                "its stream key {:?} names no stream",
                row.get_ref(13)?
            )));
            continue;
        }
        let mut fields = match stored_fields(row, 0, Some(14)) {
            Ok(fields) => fields,
            Err(reason) => {
                verifier.finding(altered(reason));
                continue;
            }
        };
        let hash = |column| match row.get_ref(column) {
            Ok(ValueRef::Blob(hash)) => hash,
            _ => &[][..],
        };
        // A body an archive took; an empty blob past the archived positions is an altered
        // event, and its hash says so.
        let archived = super::rows::is_archived_body(row, 7)
            && position.is_some_and(|position| position <= archived_to);
        let body = if archived {
            match position.map(|position| archives.event(position)) {
                Some(Ok(Some(body))) if body.event_id.as_bytes() == fields.event_id => Some(body),
                Some(Ok(Some(body))) => {
                    verifier.finding(altered(format!(
                        "its archive holds another event ({}) at this position",
                        body.event_id
                    )));
                    continue;
                }
                Some(Err(error)) => {
                    verifier.finding(altered(format!(
                        "its archived body cannot be read: {error}"
                    )));
                    continue;
                }
                _ => None,
            }
        } else {
            None
        };
        if let Some(body) = &body {
            fields.payload = body.payload.get().as_bytes();
            fields.metadata = body.metadata.as_deref().map(str::as_bytes);
        }
        let event = StoredEvent {
            fields,
            hash: hash(11),
            predecessor: hash(12),
        };
        if archived && body.is_none() {
            verifier.archived_event(&event);
        } else {
            verifier.event(&event);
        }
    }
    Ok(())
}

/// Up to `limit` leaves after position `after`.
pub(super) fn leaves(
    connection: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<Leaf>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT position, hash, name, signature FROM events WHERE position > ?1
         ORDER BY position LIMIT ?2",
    )?;
    let rows = statement.query_map(
        params![
            i64::try_from(after).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            let position = row.get::<_, i64>(0)?;
            let hash = match row.get_ref(1)? {
                ValueRef::Blob(hash) => EventHash::try_from(hash).unwrap_or(GENESIS),
                _ => GENESIS,
            };
            let name = match row.get_ref(2)? {
                ValueRef::Text(name) | ValueRef::Blob(name) => {
                    String::from_utf8_lossy(name).into_owned()
                }
                _ => String::new(),
            };
            let signature = match row.get_ref(3)? {
                ValueRef::Blob(signature) => Some(signature.to_vec()),
                ValueRef::Null => None,
                // Anything else where a signature belongs is no signature of the key's.
                _ => Some(Vec::new()),
            };
            Ok(Leaf {
                position: u64::try_from(position).unwrap_or(0),
                hash,
                name,
                signature,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a checkpoint as its JSON, replacing one of the same size.
pub(super) fn save_checkpoint(
    connection: &Connection,
    checkpoint: &SignedTreeHead,
) -> Result<(), Failure> {
    let json = serde_json::to_string(checkpoint)
        .map_err(|error| Failure::Store(StoreError::Backend(Box::new(error))))?;
    connection
        .prepare_cached("INSERT OR REPLACE INTO checkpoints (tree_size, head) VALUES (?1, ?2)")?
        .execute(params![
            i64::try_from(checkpoint.head.tree_size).unwrap_or(i64::MAX),
            json
        ])?;
    Ok(())
}

/// Every stored checkpoint, by size; one that does not read back says why.
pub(super) fn checkpoints(connection: &Connection) -> Result<Vec<StoredCheckpoint>, Failure> {
    let mut statement =
        connection.prepare_cached("SELECT tree_size, head FROM checkpoints ORDER BY tree_size")?;
    let rows = statement.query_map([], |row| {
        let tree_size = row.get::<_, i64>(0)?;
        let head = match row.get_ref(1)? {
            ValueRef::Text(json) => {
                serde_json::from_slice::<SignedTreeHead>(json).map_err(|error| error.to_string())
            }
            other => Err(format!("{:?} where JSON belongs", other.data_type())),
        };
        Ok(StoredCheckpoint {
            tree_size: u64::try_from(tree_size).unwrap_or(0),
            head,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
