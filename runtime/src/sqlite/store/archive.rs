//! The SQLite store's side of archives (see [`crate::archive`]): the rows as stored for
//! the archive file, the bodies emptied and the archive recorded, the archives a store is
//! opened with checked against the record.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};
use serde_json::value::RawValue;

use super::SqliteStore;
use super::connection::Failure;
use super::integrity::stored_fields;
use crate::archive::{
    Archive, ArchiveRecord, ArchiveStore, ArchivedEvent, Archives, ArchivingError,
};
use crate::integrity::merkle::to_hex;
use crate::store::StoreError;

impl ArchiveStore for SqliteStore {
    async fn archives(&self) -> Result<Vec<ArchiveRecord>, StoreError> {
        self.read(records).await
    }

    async fn stored_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError> {
        self.read(move |connection| stored_events(connection, after, upto, limit))
            .await
    }

    /// An in-memory store has no archives ([`ArchivingError::InMemory`]).
    async fn record_archive(
        &self,
        archive: &Archive,
        file: &str,
    ) -> Result<ArchiveRecord, ArchivingError> {
        if self.inner.path.is_none() {
            return Err(ArchivingError::InMemory);
        }
        let (after, upto, events, digest) = (
            archive.after(),
            archive.upto(),
            archive.events(),
            archive.digest(),
        );
        let file = file.to_owned();
        self.write(move |connection, _| record(connection, &file, after, upto, events, digest))
            .await?
    }

    async fn last_position_before(
        &self,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        let (seconds, nanos) = (time.timestamp(), i64::from(time.timestamp_subsec_nanos()));
        self.read(move |connection| Ok(last_position_before(connection, seconds, nanos)?))
            .await
    }
}

/// Where the archived positions end (0: nothing is archived).
pub(super) fn archived_to(connection: &Connection) -> rusqlite::Result<u64> {
    let upto: i64 = connection
        .prepare_cached("SELECT coalesce(max(upto), 0) FROM archives")?
        .query_row([], |row| row.get(0))?;
    Ok(u64::try_from(upto).unwrap_or(0))
}

/// Every recorded archive, oldest first.
pub(super) fn records(connection: &Connection) -> Result<Vec<ArchiveRecord>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT after, upto, file, digest, events, archived_at FROM archives ORDER BY upto",
    )?;
    let rows = statement.query_map([], |row| {
        let at: String = row.get(5)?;
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Vec<u8>>(3)?,
            row.get::<_, i64>(4)?,
            at,
        ))
    })?;
    let mut records = Vec::new();
    for row in rows {
        let (after, upto, file, digest, events, at) = row?;
        let archived_at = chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|error| {
                Failure::Store(StoreError::CorruptRow {
                    stream_id: String::new(),
                    stream_version: 0,
                    position: None,
                    reason: format!("the archive up to {upto} was recorded at `{at}`: {error}"),
                })
            })?
            .to_utc();
        records.push(ArchiveRecord {
            after: u64::try_from(after).unwrap_or(0),
            upto: u64::try_from(upto).unwrap_or(0),
            file,
            digest: to_hex(&digest),
            events: u64::try_from(events).unwrap_or(0),
            archived_at,
        });
    }
    Ok(records)
}

/// Checks that each archive a store is opened with is one it recorded: the same range,
/// the same SHA-256. The archive and the reason when one is not.
pub(super) fn check_attached(
    connection: &Connection,
    archives: &Archives,
) -> Result<(), (std::path::PathBuf, String)> {
    if archives.is_empty() {
        return Ok(());
    }
    let recorded = records(connection).map_err(|failure| {
        let path = archives
            .iter()
            .next()
            .map(|archive| archive.path().to_path_buf())
            .unwrap_or_default();
        (
            path,
            format!(
                "the store's archives cannot be read: {}",
                StoreError::from(failure)
            ),
        )
    })?;
    archives.check_recorded(&recorded)
}

/// The last position before which every event is older than `seconds` + `nanos` since
/// the epoch: the events up to it are the ones older than that time.
pub(super) fn last_position_before(
    connection: &Connection,
    seconds: i64,
    nanos: i64,
) -> rusqlite::Result<u64> {
    let position: i64 = connection.query_row(
        "SELECT coalesce(
             (SELECT min(position) FROM events
              WHERE timestamp_s > ?1 OR (timestamp_s = ?1 AND timestamp_ns >= ?2)) - 1,
             (SELECT max(position) FROM events),
             0)",
        params![seconds, nanos],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(position).unwrap_or(0))
}

/// Up to `limit` events after `after` up to `upto`, as stored.
fn stored_events(
    connection: &Connection,
    after: u64,
    upto: u64,
    limit: usize,
) -> Result<Vec<ArchivedEvent>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT e.position, s.stream_id, s.stream_type, e.stream_version, e.event_id, e.name,
                e.schema_version, e.payload, e.metadata, e.timestamp_s, e.timestamp_ns,
                e.hash, e.predecessor, e.tags
         FROM events e JOIN streams s ON s.stream_key = e.stream_key
         WHERE e.position > ?1 AND e.position <= ?2 ORDER BY e.position LIMIT ?3",
    )?;
    let mut rows = statement.query(params![
        i64::try_from(after).unwrap_or(i64::MAX),
        i64::try_from(upto).unwrap_or(i64::MAX),
        i64::try_from(limit).unwrap_or(i64::MAX)
    ])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        let position = row.get::<_, i64>(0)?;
        let corrupt = |reason: String| {
            Failure::Store(StoreError::CorruptRow {
                stream_id: String::new(),
                stream_version: 0,
                position: u64::try_from(position).ok(),
                reason: format!("{reason}; nothing was archived (run `verify`)"),
            })
        };
        if super::rows::is_archived_body(row, 7) {
            return Err(corrupt(
                "its body is archived already, past the archived positions".to_owned(),
            ));
        }
        let fields = stored_fields(row, 0, Some(13)).map_err(corrupt)?;
        let hash = |column: usize| match row.get_ref(column) {
            Ok(ValueRef::Blob(hash)) => Ok(to_hex(hash)),
            _ => Err(corrupt("its stored hashes are not hashes".to_owned())),
        };
        let text = |bytes: &[u8], what: &str| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| corrupt(format!("its {what} is not UTF-8")))
        };
        events.push(ArchivedEvent {
            position: u64::try_from(fields.position).unwrap_or(0),
            stream_id: text(fields.stream_id, "stream id")?,
            stream_type: text(fields.stream_type, "stream type")?,
            stream_version: u64::try_from(fields.stream_version).unwrap_or(0),
            event_id: uuid::Uuid::from_slice(fields.event_id)
                .map_err(|_| corrupt("its event id is not 16 bytes".to_owned()))?,
            name: text(fields.name, "name")?,
            schema_version: u32::try_from(fields.schema_version)
                .map_err(|_| corrupt("its schema version is not one".to_owned()))?,
            timestamp_s: fields.timestamp_seconds,
            timestamp_ns: fields.timestamp_nanos,
            metadata: fields
                .metadata
                .map(|metadata| text(metadata, "metadata"))
                .transpose()?,
            payload: RawValue::from_string(text(fields.payload, "payload")?)
                .map_err(|error| corrupt(format!("its payload is not JSON: {error}")))?,
            hash: hash(11)?,
            predecessor: hash(12)?,
            tags: fields.tags.map(|tags| text(tags, "tags")).transpose()?,
        });
    }
    Ok(events)
}

/// Empties the bodies of the events after `after` up to `upto` and records their
/// archive, in one transaction, unless someone archived meanwhile or the store holds
/// another number of events there than the archive.
fn record(
    connection: &mut Connection,
    file: &str,
    after: u64,
    upto: u64,
    events: usize,
    digest: [u8; 32],
) -> Result<Result<ArchiveRecord, ArchivingError>, Failure> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = archived_to(&transaction)?;
    if now != after {
        return Ok(Err(ArchivingError::Raced { before: after, now }));
    }
    let (after_sql, upto_sql) = (
        i64::try_from(after).unwrap_or(i64::MAX),
        i64::try_from(upto).unwrap_or(i64::MAX),
    );
    let emptied = transaction.execute(
        "UPDATE events SET payload = x'', metadata = NULL WHERE position > ?1 AND position <= ?2",
        params![after_sql, upto_sql],
    )?;
    if emptied != events {
        // Rows the file does not hold: keep every body.
        return Err(Failure::Store(StoreError::CorruptRow {
            stream_id: String::new(),
            stream_version: 0,
            position: None,
            reason: format!(
                "the store holds {emptied} events after {after} up to {upto}, the archive {events}; nothing was archived"
            ),
        }));
    }
    let archived_at = chrono::Utc::now();
    transaction.execute(
        "INSERT INTO archives (upto, after, file, digest, events, archived_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            upto_sql,
            after_sql,
            file,
            digest.as_slice(),
            i64::try_from(emptied).unwrap_or(i64::MAX),
            archived_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        ],
    )?;
    transaction.commit()?;
    Ok(Ok(ArchiveRecord {
        after,
        upto,
        file: file.to_owned(),
        digest: to_hex(&digest),
        events: emptied as u64,
        archived_at,
    }))
}
