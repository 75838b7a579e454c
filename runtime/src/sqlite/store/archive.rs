//! The SQLite store's side of archives (see [`crate::archive`]): the file written from the
//! rows, the bodies emptied and the archive recorded, the archives a store is opened with
//! checked against the record, and an archived row's body put back as it is read.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;

use super::SqliteStore;
use super::connection::Failure;
use super::integrity::stored_fields;
use crate::archive::{
    Archive, ArchiveError, ArchiveRecord, ArchiveWriter, ArchivedEvent, Archives, ArchivingError,
};
use crate::integrity::merkle::to_hex;
use crate::integrity::{EventHash, event_hash};
use crate::store::StoreError;

impl SqliteStore {
    /// Moves the bodies of the events up to position `upto` that are not archived yet to
    /// a new archive file at `file` (see [`crate::archive`]): writes it from a read
    /// snapshot (appends go on meanwhile), reads it back and checks every event against
    /// its stored hash, and only then empties those bodies in the store and records the
    /// archive, in one short write transaction. Open the store with the archive
    /// ([`SqliteOptions::archive`](super::SqliteOptions::archive)) to read those events
    /// again. The freed pages are reused by later appends; `VACUUM` returns them to the
    /// file system.
    pub async fn archive(
        &self,
        upto: u64,
        file: impl AsRef<Path>,
    ) -> Result<ArchiveRecord, ArchivingError> {
        if self.inner.path.is_none() {
            return Err(ArchivingError::InMemory);
        }
        let path = file.as_ref().to_path_buf();
        let (after, head) = self
            .read(|connection| {
                Ok((
                    archived_to(connection)?,
                    super::rows::newest_position(connection)?,
                ))
            })
            .await?;
        // Never past the head: a range would then claim positions later appends take.
        let upto = upto.min(head);
        if upto <= after {
            return Err(ArchivingError::Nothing {
                archived: after,
                upto,
            });
        }
        let written = path.clone();
        self.read(move |connection| write_file(connection, after, upto, &written))
            .await??;
        let opened = path.clone();
        let archive = tokio::task::spawn_blocking(move || Archive::open(opened))
            .await
            .map_err(|error| ArchivingError::Store(StoreError::Backend(Box::new(error))))??;
        let file = path.display().to_string();
        self.write(move |connection, _| record(connection, &file, &archive))
            .await?
    }

    /// The archives this store recorded, oldest first.
    pub async fn archives(&self) -> Result<Vec<ArchiveRecord>, StoreError> {
        self.read(records).await
    }

    /// The last position up to which every event is older than `time`: give it to
    /// [`archive`](SqliteStore::archive) to archive what is older. 0 when the first event
    /// is not.
    pub async fn last_position_before(
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
/// the same SHA-256. The reason when one is not.
pub(super) fn check_attached(
    connection: &Connection,
    archives: &Archives,
) -> Result<(), (std::path::PathBuf, String)> {
    for archive in archives.iter() {
        let refused = |reason: String| (archive.path().to_path_buf(), reason);
        let recorded: Option<(i64, Vec<u8>)> = connection
            .query_row(
                "SELECT after, digest FROM archives WHERE upto = ?1",
                params![i64::try_from(archive.upto()).unwrap_or(i64::MAX)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|error| refused(format!("the store's archives cannot be read: {error}")))?;
        let Some((after, digest)) = recorded else {
            return Err(refused(format!(
                "the store recorded no archive up to position {}",
                archive.upto()
            )));
        };
        if u64::try_from(after).ok() != Some(archive.after()) {
            return Err(refused(format!(
                "it starts after position {}, the store's archive up to {} after {after}",
                archive.after(),
                archive.upto()
            )));
        }
        if digest != archive.digest() {
            return Err(refused(format!(
                "its SHA-256 is {}, the store recorded {} (changed since it was written)",
                to_hex(&archive.digest()),
                to_hex(&digest)
            )));
        }
    }
    Ok(())
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

/// Writes the events after `after` up to `upto` to a new archive at `path`, each checked
/// against its stored hash first; returns how many it wrote.
pub(super) fn write_file(
    connection: &Connection,
    after: u64,
    upto: u64,
    path: &Path,
) -> Result<Result<u64, ArchiveError>, Failure> {
    let mut writer = match ArchiveWriter::create(path, after, upto) {
        Ok(writer) => writer,
        Err(error) => return Ok(Err(error)),
    };
    let transaction = connection.unchecked_transaction()?;
    let mut statement = connection.prepare(
        "SELECT e.position, s.stream_id, s.stream_type, e.stream_version, e.event_id, e.name,
                e.schema_version, e.payload, e.metadata, e.timestamp_s, e.timestamp_ns,
                e.hash, e.predecessor
         FROM events e JOIN streams s ON s.stream_key = e.stream_key
         WHERE e.position > ?1 AND e.position <= ?2 ORDER BY e.position",
    )?;
    let mut rows = statement.query(params![
        i64::try_from(after).unwrap_or(i64::MAX),
        i64::try_from(upto).unwrap_or(i64::MAX)
    ])?;
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
        let fields = stored_fields(row, 0).map_err(corrupt)?;
        let hash = |column: usize| match row.get_ref(column) {
            Ok(ValueRef::Blob(hash)) => EventHash::try_from(hash).ok(),
            _ => None,
        };
        let (Some(hash), Some(predecessor)) = (hash(11), hash(12)) else {
            return Err(corrupt("its stored hashes are not hashes".to_owned()));
        };
        if event_hash(&predecessor, &fields) != hash {
            return Err(corrupt("it does not match its hash".to_owned()));
        }
        let text = |bytes: &[u8], what: &str| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| corrupt(format!("its {what} is not UTF-8")))
        };
        let event = ArchivedEvent {
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
            hash: to_hex(&hash),
            predecessor: to_hex(&predecessor),
        };
        if let Err(error) = writer.write(&event) {
            return Ok(Err(error));
        }
    }
    drop(rows);
    drop(statement);
    transaction.commit()?;
    Ok(writer.finish())
}

/// Empties the bodies of the events `archive` holds and records it, in one
/// transaction, unless someone archived meanwhile or the rows are not the ones written.
pub(super) fn record(
    connection: &mut Connection,
    file: &str,
    archive: &Archive,
) -> Result<Result<ArchiveRecord, ArchivingError>, Failure> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = archived_to(&transaction)?;
    if now != archive.after() {
        return Ok(Err(ArchivingError::Raced {
            before: archive.after(),
            now,
        }));
    }
    let (after, upto) = (
        i64::try_from(archive.after()).unwrap_or(i64::MAX),
        i64::try_from(archive.upto()).unwrap_or(i64::MAX),
    );
    let emptied = transaction.execute(
        "UPDATE events SET payload = x'', metadata = NULL WHERE position > ?1 AND position <= ?2",
        params![after, upto],
    )?;
    if emptied != archive.events() {
        // Rows the file does not hold: keep every body.
        return Err(Failure::Store(StoreError::CorruptRow {
            stream_id: String::new(),
            stream_version: 0,
            position: None,
            reason: format!(
                "the store holds {emptied} events after {after} up to {upto}, the archive {}; nothing was archived",
                archive.events()
            ),
        }));
    }
    let archived_at = chrono::Utc::now();
    transaction.execute(
        "INSERT INTO archives (upto, after, file, digest, events, archived_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            upto,
            after,
            file,
            archive.digest().as_slice(),
            i64::try_from(emptied).unwrap_or(i64::MAX),
            archived_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        ],
    )?;
    transaction.commit()?;
    Ok(Ok(ArchiveRecord {
        after: archive.after(),
        upto: archive.upto(),
        file: file.to_owned(),
        digest: to_hex(&archive.digest()),
        events: emptied as u64,
        archived_at,
    }))
}

/// The archived body of the event at `position` from `archives`: its payload and stored
/// metadata; `StoreError::Archived` when no archive given holds it.
pub(super) fn body(
    archives: &Archives,
    stream_id: &str,
    stream_version: u64,
    position: u64,
) -> Result<ArchivedEvent, Failure> {
    let archived = || {
        Failure::Store(StoreError::Archived {
            stream_id: stream_id.to_owned(),
            stream_version,
            position,
        })
    };
    match archives.event(position) {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err(archived()),
        Err(error) => Err(Failure::Store(StoreError::Backend(Box::new(error)))),
    }
}
