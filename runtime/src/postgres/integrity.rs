//! The PostgreSQL store's side of tamper evidence (see [`crate::integrity`]): the hashes
//! themselves are computed in the database (`factum_event_hash`, called by the insert
//! trigger of migration 5); here the check of a row's hash as it is read, and the walk of
//! `verify`.

use serde_json::value::RawValue;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::error::backend;
use super::migrate::quote_ident;
use super::rows::{corrupt_at, position_of, to_i64};
use super::store::PostgresStore;
use crate::integrity::checkpoint::SignedTreeHead;
use crate::integrity::{
    EventHash, GENESIS, Leaf, StoredCheckpoint, StoredEvent, StoredFields, TamperEvident,
    Tampering, TamperingKind, Verification, Verifier, event_hash,
};
use crate::store::StoreError;

/// Events read per page by `verify`.
const VERIFY_PAGE: i64 = 10_000;

/// Checks an event row selected with the store's columns against the hash columns at
/// `hash_column` and the next: a damaged event is a [`StoreError::CorruptRow`] at its
/// position.
pub(super) fn check_hash(
    row: &Row,
    hash_column: usize,
    signer: Option<&crate::integrity::EventSigner>,
    body: Option<&crate::archive::ArchivedEvent>,
) -> Result<(), StoreError> {
    let position = position_of(row);
    let stream_id: &str = row.try_get(1).unwrap_or_default();
    let version: i64 = row.try_get(3).unwrap_or_default();
    let corrupt = |reason: &str| {
        corrupt_at(
            stream_id,
            u64::try_from(version).unwrap_or(0),
            position,
            format_args!("{reason}"),
        )
    };
    let stored_hash = |column: usize, what: &str| -> Result<EventHash, StoreError> {
        let bytes: Option<&[u8]> = row
            .try_get(column)
            .map_err(|error| corrupt(&format!("its {what}: {error}")))?;
        bytes
            .and_then(|bytes| EventHash::try_from(bytes).ok())
            .ok_or_else(|| corrupt(&format!("its {what} is missing or not 32 bytes")))
    };
    let hash = stored_hash(hash_column, "hash")?;
    let predecessor = stored_hash(hash_column + 1, "predecessor hash")?;
    let read = |error: tokio_postgres::Error| corrupt(&format!("a column: {error}"));
    let event_id: uuid::Uuid = row.try_get(4).map_err(read)?;
    let payload: Json<&RawValue> = row.try_get(7).map_err(read)?;
    let occurred_at: chrono::DateTime<chrono::Utc> = row.try_get(8).map_err(read)?;
    let metadata: Json<&RawValue> = row.try_get(9).map_err(read)?;
    let tags: Option<&str> = row.try_get(10).map_err(read)?;
    // An archived event is checked with its body from the archive.
    let (payload, metadata) = match body {
        Some(body) => (
            body.payload.get(),
            body.metadata.as_deref().unwrap_or_default(),
        ),
        None => (payload.0.get(), metadata.0.get()),
    };
    let fields = StoredFields {
        event_id: event_id.as_bytes(),
        position: position.map_or(0, to_i64),
        stream_id: stream_id.as_bytes(),
        stream_type: row.try_get::<_, &str>(2).map_err(read)?.as_bytes(),
        stream_version: version,
        name: row.try_get::<_, &str>(5).map_err(read)?.as_bytes(),
        schema_version: row.try_get(6).map_err(read)?,
        timestamp_seconds: occurred_at.timestamp(),
        timestamp_nanos: i64::from(occurred_at.timestamp_subsec_nanos()),
        metadata: Some(metadata.as_bytes()),
        payload: payload.as_bytes(),
        tags: tags.map(str::as_bytes),
    };
    if event_hash(&predecessor, &fields) != hash {
        return Err(corrupt(
            "the stored event does not match its hash (altered after it was written)",
        ));
    }
    if let Some(signer) = signer {
        let signature: Option<&[u8]> = row.try_get(hash_column + 2).map_err(read)?;
        let name = String::from_utf8_lossy(fields.name);
        signer
            .check(&name, &hash, signature)
            .map_err(|reason| corrupt(&reason))?;
    }
    Ok(())
}

impl TamperEvident for PostgresStore {
    /// Verifies the log: every event's hash and chain in position order, read in pages
    /// (appends go on meanwhile; those after the walk's start may be seen or not). The
    /// table records no stream heads apart from its events: a stream's last events
    /// deleted leave a shorter chain that holds, which a signed checkpoint catches.
    async fn verify(&self) -> Result<Verification, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql().verify_page)
            .await
            .map_err(backend)?;
        let archived_to = to_i64(self.archived_to().await?);
        let mut verifier = Verifier::new();
        let mut after = 0i64;
        loop {
            let rows = client
                .query(&statement, &[&after, &VERIFY_PAGE])
                .await
                .map_err(backend)?;
            for row in &rows {
                let position: i64 = row.try_get(0).map_err(backend)?;
                after = position;
                feed(&mut verifier, row, position, archived_to, &self.archives);
            }
            if (rows.len() as i64) < VERIFY_PAGE {
                break;
            }
        }
        // The tag index is in no hash: compared with the events' tags (see the SQLite
        // store's `check_tag_index`).
        let schema = quote_ident(self.schema());
        let compared = client
            .query(
                &format!(
                    "SELECT e.position FROM {schema}.events e,
                            json_array_elements_text(e.tags::json) j(tag)
                      WHERE e.tags IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM {schema}.event_tags t
                                         WHERE t.tag = j.tag AND t.position = e.position)
                     UNION
                     SELECT t.position FROM {schema}.event_tags t
                       LEFT JOIN {schema}.events e ON e.position = t.position
                      WHERE e.position IS NULL OR e.tags IS NULL
                         OR NOT EXISTS (SELECT 1 FROM json_array_elements_text(e.tags::json) j(tag)
                                         WHERE j.tag = t.tag)
                     ORDER BY 1"
                ),
                &[],
            )
            .await;
        match compared {
            Ok(rows) => {
                for row in rows {
                    let position: i64 = row.try_get(0).map_err(backend)?;
                    verifier.finding(crate::integrity::tag_index_differs(position));
                }
            }
            Err(error) => verifier.finding(Tampering {
                kind: TamperingKind::Damaged,
                stream_id: String::new(),
                stream_version: 0,
                position: None,
                detail: format!("the tag index cannot be compared with the events' tags: {error}"),
            }),
        }
        Ok(verifier.finish())
    }

    async fn leaves(&self, after: u64, limit: usize) -> Result<Vec<Leaf>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql().leaves)
            .await
            .map_err(backend)?;
        let settled = self.refresh_settled().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&to_i64(after), &to_i64(settled), &limit])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get(0).map_err(backend)?;
                let hash: Option<&[u8]> = row.try_get(1).map_err(backend)?;
                let name: String = row.try_get(2).map_err(backend)?;
                let signature: Option<Vec<u8>> = row.try_get(3).map_err(backend)?;
                Ok(Leaf {
                    position: u64::try_from(position).unwrap_or(0),
                    hash: hash
                        .and_then(|hash| EventHash::try_from(hash).ok())
                        .unwrap_or(GENESIS),
                    name,
                    signature,
                })
            })
            .collect()
    }

    async fn save_checkpoint(&self, checkpoint: &SignedTreeHead) -> Result<(), StoreError> {
        let json = serde_json::to_string(checkpoint).map_err(backend)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql().save_checkpoint)
            .await
            .map_err(backend)?;
        client
            .execute(&statement, &[&to_i64(checkpoint.head.tree_size), &json])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql().checkpoints)
            .await
            .map_err(backend)?;
        let rows = client.query(&statement, &[]).await.map_err(backend)?;
        rows.iter()
            .map(|row| {
                let tree_size: i64 = row.try_get(0).map_err(backend)?;
                let json: &str = row.try_get(1).map_err(backend)?;
                Ok(StoredCheckpoint {
                    tree_size: u64::try_from(tree_size).unwrap_or(0),
                    head: serde_json::from_str(json).map_err(|error| error.to_string()),
                })
            })
            .collect()
    }
}

/// Hands one row of `Sql::verify_page` to the verifier, or a finding when a column does
/// not read as its type; an archived body comes from `archives`, or only the event's
/// place in its chain is checked.
fn feed(
    verifier: &mut Verifier,
    row: &Row,
    position: i64,
    archived_to: i64,
    archives: &crate::archive::Archives,
) {
    let fields = (|| -> Result<_, tokio_postgres::Error> {
        let event_id: uuid::Uuid = row.try_get(4)?;
        let occurred_at: chrono::DateTime<chrono::Utc> = row.try_get(9)?;
        Ok((event_id, occurred_at))
    })();
    let ((event_id, occurred_at), Ok(stream_id), Ok(stream_type), Ok(version)) = (
        match fields {
            Ok(fields) => fields,
            Err(error) => {
                verifier.finding(Tampering {
                    kind: TamperingKind::Altered,
                    stream_id: String::new(),
                    stream_version: 0,
                    position: u64::try_from(position).ok(),
                    detail: format!("a column cannot be read: {error}"),
                });
                return;
            }
        },
        row.try_get::<_, &str>(1),
        row.try_get::<_, &str>(2),
        row.try_get::<_, i64>(3),
    ) else {
        verifier.finding(Tampering {
            kind: TamperingKind::Altered,
            stream_id: String::new(),
            stream_version: 0,
            position: u64::try_from(position).ok(),
            detail: "its stream columns cannot be read".to_owned(),
        });
        return;
    };
    let text = |column: usize| row.try_get::<_, Option<&str>>(column).ok().flatten();
    let bytes = |column: usize| {
        row.try_get::<_, Option<&[u8]>>(column)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    let archived = position <= archived_to && text(8) == Some(super::archive::ARCHIVED_METADATA);
    let body = if archived {
        match archives.event(u64::try_from(position).unwrap_or(0)) {
            Ok(Some(body)) if body.event_id == event_id => Some(body),
            Ok(Some(body)) => {
                verifier.finding(Tampering {
                    kind: TamperingKind::Altered,
                    stream_id: stream_id.to_owned(),
                    stream_version: u64::try_from(version).unwrap_or(0),
                    position: u64::try_from(position).ok(),
                    detail: format!(
                        "its archive holds another event ({}) at this position",
                        body.event_id
                    ),
                });
                return;
            }
            Ok(None) => None,
            Err(error) => {
                verifier.finding(Tampering {
                    kind: TamperingKind::Altered,
                    stream_id: stream_id.to_owned(),
                    stream_version: u64::try_from(version).unwrap_or(0),
                    position: u64::try_from(position).ok(),
                    detail: format!("its archived body cannot be read: {error}"),
                });
                return;
            }
        }
    } else {
        None
    };
    let (metadata, payload) = match &body {
        Some(body) => (body.metadata.as_deref(), Some(body.payload.get())),
        None => (text(8), text(7)),
    };
    let event = StoredEvent {
        fields: StoredFields {
            event_id: event_id.as_bytes(),
            position,
            stream_id: stream_id.as_bytes(),
            stream_type: stream_type.as_bytes(),
            stream_version: version,
            name: text(5).unwrap_or_default().as_bytes(),
            schema_version: row.try_get(6).unwrap_or(-1),
            timestamp_seconds: occurred_at.timestamp(),
            timestamp_nanos: i64::from(occurred_at.timestamp_subsec_nanos()),
            metadata: metadata.map(str::as_bytes),
            payload: payload.unwrap_or_default().as_bytes(),
            tags: text(12).map(str::as_bytes),
        },
        hash: bytes(10),
        predecessor: bytes(11),
    };
    if archived && body.is_none() {
        verifier.archived_event(&event);
    } else {
        verifier.event(&event);
    }
}
