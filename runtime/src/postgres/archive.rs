//! The PostgreSQL store's side of archives (see [`crate::archive`]): the rows as stored
//! for the archive file, the bodies emptied and the archive recorded, the archives a
//! store is opened with checked against the record, and an archived row's body found.
//!
//! The columns are `json`, so an emptied body cannot be an empty text as on SQLite: the
//! payload becomes `null` and the metadata the JSON string `"factum:archived"`, which
//! factum never writes there (its metadata is always an object).

use serde_json::value::RawValue;
use tokio_postgres::Row;

use super::error::{PostgresError, backend};
use super::migrate::quote_ident;
use super::rows::{corrupt_at, position_of, to_i64};
use super::store::PostgresStore;
use crate::archive::{
    Archive, ArchiveRecord, ArchiveStore, ArchivedEvent, Archives, ArchivingError,
};
use crate::integrity::merkle::to_hex;
use crate::store::StoreError;

/// The metadata of an event whose body is archived, as stored.
pub(super) const ARCHIVED_METADATA: &str = "\"factum:archived\"";

/// A `json` column's text as the server sent it, not parsed: the archived check runs on
/// every row read, before the decoder parses the metadata anyway.
struct RawJson<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for RawJson<'a> {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::JSON
    }
}

/// Whether a row selected with the store's columns (metadata at 9) has its body archived.
fn is_archived(row: &Row) -> bool {
    row.try_get::<_, RawJson<'_>>(9)
        .is_ok_and(|metadata| metadata.0 == ARCHIVED_METADATA.as_bytes())
}

/// The archived body of a row selected with the store's columns, from `archives`;
/// `None` when its body is in the row. [`StoreError::Archived`] when no archive given
/// holds it.
pub(super) fn archived_body(
    row: &Row,
    archives: &Archives,
) -> Result<Option<ArchivedEvent>, StoreError> {
    if !is_archived(row) {
        return Ok(None);
    }
    let position = position_of(row).unwrap_or(0);
    let stream_id: &str = row.try_get(1).unwrap_or_default();
    let version = u64::try_from(row.try_get::<_, i64>(3).unwrap_or_default()).unwrap_or(0);
    let event_id: uuid::Uuid = row.try_get(4).map_err(|error| {
        corrupt_at(
            stream_id,
            version,
            Some(position),
            format_args!("event_id: {error}"),
        )
    })?;
    archives
        .body_of(stream_id, version, position, event_id)
        .map(Some)
}

/// Checks that the archives the store was opened with are ones it recorded, unchanged.
pub(super) async fn check_attached(store: &PostgresStore) -> Result<(), StoreError> {
    if store.archives.is_empty() {
        return Ok(());
    }
    let recorded = store.archives().await?;
    store
        .archives
        .check_recorded(&recorded)
        .map_err(|(archive, reason)| {
            backend(PostgresError::NotItsArchive {
                schema: store.schema().to_owned(),
                archive,
                reason,
            })
        })
}

/// Where the archived positions end, read in `client`'s transaction or not.
async fn archived_to(
    client: &impl deadpool_postgres::GenericClient,
    schema: &str,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(max(upto), 0) FROM {}.archives",
                quote_ident(schema)
            ),
            &[],
        )
        .await
        .map_err(backend)?;
    let upto: i64 = row.try_get(0).map_err(backend)?;
    Ok(u64::try_from(upto).unwrap_or(0))
}

impl PostgresStore {
    /// Where the archived positions end (0: nothing is archived).
    pub(super) async fn archived_to(&self) -> Result<u64, StoreError> {
        archived_to(&self.client().await?, self.schema()).await
    }
}

impl ArchiveStore for PostgresStore {
    async fn archives(&self) -> Result<Vec<ArchiveRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT after, upto, file, digest, events, archived_at FROM {}.archives \
                     ORDER BY upto",
                    quote_ident(self.schema())
                ),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let number = |column: usize| {
                    row.try_get::<_, i64>(column)
                        .map(|value| u64::try_from(value).unwrap_or(0))
                        .map_err(backend)
                };
                Ok(ArchiveRecord {
                    after: number(0)?,
                    upto: number(1)?,
                    file: row.try_get(2).map_err(backend)?,
                    digest: to_hex(row.try_get::<_, &[u8]>(3).map_err(backend)?),
                    events: number(4)?,
                    archived_at: row.try_get(5).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn stored_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT position, stream_id, stream_type, stream_version, event_id, name, \
                            schema_version, payload::text, metadata::text, occurred_at, hash, \
                            predecessor, tags \
                     FROM {}.events WHERE position > $1 AND position <= $2 \
                     ORDER BY position LIMIT $3",
                    quote_ident(self.schema())
                ),
                &[
                    &to_i64(after),
                    &to_i64(upto),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(stored_event).collect()
    }

    async fn record_archive(
        &self,
        archive: &Archive,
        file: &str,
    ) -> Result<ArchiveRecord, ArchivingError> {
        let schema = quote_ident(self.schema());
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(backend)?;
        // One archiver at a time; appends and reads go on.
        transaction
            .batch_execute(&format!("LOCK TABLE {schema}.archives IN EXCLUSIVE MODE"))
            .await
            .map_err(backend)?;
        let now = archived_to(&transaction, self.schema()).await?;
        if now != archive.after() {
            return Err(ArchivingError::Raced {
                before: archive.after(),
                now,
            });
        }
        let (after, upto) = (to_i64(archive.after()), to_i64(archive.upto()));
        let emptied = transaction
            .execute(
                &format!(
                    "UPDATE {schema}.events SET payload = 'null', metadata = $3::text::json \
                     WHERE position > $1 AND position <= $2"
                ),
                &[&after, &upto, &ARCHIVED_METADATA],
            )
            .await
            .map_err(backend)?;
        if emptied != archive.events() as u64 {
            // Dropped unfinished, the transaction rolls back: every body stays.
            return Err(ArchivingError::Store(StoreError::CorruptRow {
                stream_id: String::new(),
                stream_version: 0,
                position: None,
                reason: format!(
                    "the store holds {emptied} events after {after} up to {upto}, the archive {}; nothing was archived",
                    archive.events()
                ),
            }));
        }
        // To the microsecond PostgreSQL keeps: the record returned is the one stored.
        let archived_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
        let digest = archive.digest();
        transaction
            .execute(
                &format!(
                    "INSERT INTO {schema}.archives (upto, after, file, digest, events, archived_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &upto,
                    &after,
                    &file,
                    &digest.as_slice(),
                    &to_i64(emptied),
                    &archived_at,
                ],
            )
            .await
            .map_err(backend)?;
        transaction.commit().await.map_err(backend)?;
        Ok(ArchiveRecord {
            after: archive.after(),
            upto: archive.upto(),
            file: file.to_owned(),
            digest: to_hex(&digest),
            events: emptied,
            archived_at,
        })
    }

    async fn last_position_before(
        &self,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        // Only settled events are archived: the cut must not pass an event that
        // commits later at a lower position.
        let settled = self.refresh_settled().await?;
        let schema = quote_ident(self.schema());
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT least( \
                         coalesce( \
                             (SELECT min(position) FROM {schema}.events WHERE occurred_at >= $1) - 1, \
                             (SELECT max(position) FROM {schema}.events), \
                             0), \
                         $2)"
                ),
                &[&time, &to_i64(settled)],
            )
            .await
            .map_err(backend)?;
        let position: i64 = row.try_get(0).map_err(backend)?;
        Ok(u64::try_from(position).unwrap_or(0))
    }
}

/// One row of `stored_events`, as the archive holds it.
fn stored_event(row: &Row) -> Result<ArchivedEvent, StoreError> {
    let position = position_of(row);
    let stream_id: &str = row.try_get(1).unwrap_or_default();
    let version = u64::try_from(row.try_get::<_, i64>(3).unwrap_or_default()).unwrap_or(0);
    let corrupt = |reason: String| {
        corrupt_at(
            stream_id,
            version,
            position,
            format_args!("{reason}; nothing was archived (run `verify`)"),
        )
    };
    let read = |error: tokio_postgres::Error| corrupt(format!("a column: {error}"));
    let metadata: String = row.try_get(8).map_err(read)?;
    if metadata == ARCHIVED_METADATA {
        return Err(corrupt(
            "its body is archived already, past the archived positions".to_owned(),
        ));
    }
    let occurred_at: chrono::DateTime<chrono::Utc> = row.try_get(9).map_err(read)?;
    let hash = |column: usize| -> Result<String, StoreError> {
        row.try_get::<_, Option<&[u8]>>(column)
            .map_err(read)?
            .map(to_hex)
            .ok_or_else(|| corrupt("it has no stored hash".to_owned()))
    };
    let payload: String = row.try_get(7).map_err(read)?;
    Ok(ArchivedEvent {
        position: position.unwrap_or(0),
        stream_id: stream_id.to_owned(),
        stream_type: row.try_get(2).map_err(read)?,
        stream_version: version,
        event_id: row.try_get(4).map_err(read)?,
        name: row.try_get(5).map_err(read)?,
        schema_version: u32::try_from(row.try_get::<_, i64>(6).map_err(read)?)
            .map_err(|_| corrupt("its schema version is not one".to_owned()))?,
        timestamp_s: occurred_at.timestamp(),
        timestamp_ns: i64::from(occurred_at.timestamp_subsec_nanos()),
        metadata: Some(metadata),
        payload: RawValue::from_string(payload)
            .map_err(|error| corrupt(format!("its payload is not JSON: {error}")))?,
        hash: hash(10)?,
        predecessor: hash(11)?,
        tags: row.try_get(12).map_err(read)?,
    })
}
