//! The store that keeps personal fields sealed: [`ProtectedStore`] wraps any
//! [`EventStore`], seals the personal fields of each appended event under its subject's
//! key and opens them as events are read, so everything that reads through it (replays,
//! projections, the bus, the HTTP stream, exports) sees plaintext, or the declared
//! replacement once the subject is forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Aad, KeyState, KeyStore, PersonalError, SubjectId, is_sealed, open, seal};
use crate::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use crate::registry::{PersonalEntry, Registry};
use crate::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion,
    FilteredPage, Head, StoreError,
};

/// The personal data of every registered event version, by name and version.
#[derive(Debug, Clone, Default)]
pub struct PersonalCatalog {
    /// By name, then version: a read looks an event up by its `&str` name without
    /// allocating.
    events: HashMap<String, HashMap<u32, PersonalEntry>>,
    /// The stream types (aggregates) whose streams hold personal events.
    personal_stream_types: Vec<String>,
}

impl PersonalCatalog {
    /// The personal events of a registry (every aggregate's events, with their older
    /// versions).
    pub fn from_registry(registry: &Registry) -> Self {
        let mut catalog = Self::default();
        for entry in registry.entries() {
            if let Some(personal) = &entry.personal {
                catalog.add(&entry.name, entry.version, personal, &entry.aggregates);
            }
        }
        catalog
    }

    /// The personal events of a registry document (what [`Registry`] serialises to, e.g.
    /// `orders --registry`): for a tool that has the document but not the application's
    /// types, such as the `factum subject` command line.
    pub fn from_registry_json(json: &str) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Document {
            entries: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            version: u32,
            #[serde(default)]
            aggregates: Vec<String>,
            personal: Option<PersonalEntry>,
        }
        let document: Document = serde_json::from_str(json)?;
        let mut catalog = Self::default();
        for entry in &document.entries {
            if let Some(personal) = &entry.personal {
                catalog.add(&entry.name, entry.version, personal, &entry.aggregates);
            }
        }
        Ok(catalog)
    }

    fn add<'a>(
        &mut self,
        name: &str,
        version: u32,
        personal: &PersonalEntry,
        aggregates: impl IntoIterator<Item = &'a String>,
    ) {
        self.events
            .entry(name.to_owned())
            .or_default()
            .insert(version, personal.clone());
        for aggregate in aggregates {
            if !self.personal_stream_types.contains(aggregate) {
                self.personal_stream_types.push(aggregate.clone());
            }
        }
    }

    /// The personal data of an event version, if it has any.
    pub fn entry(&self, name: &str, version: u32) -> Option<&PersonalEntry> {
        self.events.get(name)?.get(&version)
    }

    /// Whether streams of `stream_type` may hold personal events.
    pub fn is_personal_stream_type(&self, stream_type: &str) -> bool {
        self.personal_stream_types
            .iter()
            .any(|personal| personal == stream_type)
    }

    /// The subject an event's payload names, if the event is personal.
    pub fn subject_of(&self, event: &RecordedEvent) -> Option<SubjectId> {
        let entry = self.entry(&event.name, event.schema_version)?;
        let payload: Value = serde_json::from_str(event.payload.get()).ok()?;
        subject_at(&payload, &entry.subject)
    }
}

/// The subject id at `pointer`: a string as is, an integer as its digits.
fn subject_at(payload: &Value, pointer: &str) -> Option<SubjectId> {
    match payload.pointer(pointer)? {
        Value::String(id) => SubjectId::new(id.clone()).ok(),
        Value::Number(number) => SubjectId::new(number.to_string()).ok(),
        _ => None,
    }
}

/// The stream type of the records of forgetting.
pub const FORGOTTEN_STREAM_TYPE: &str = "factum.Subject";
/// The event name of a record of forgetting.
pub const SUBJECT_FORGOTTEN: &str = "factum.SubjectForgotten";

/// The stream that records what was done about `subject` (its forgetting).
pub fn subject_stream(subject: &SubjectId) -> String {
    format!("factum.subject-{subject}")
}

/// The record of a forgetting, appended to the subject's stream.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SubjectForgotten {
    /// Whose keys were destroyed.
    pub subject: String,
    /// Who asked.
    pub forgotten_by: String,
}

/// Every event about a subject, opened, with its metadata: the answer to a data access
/// request.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectExport {
    /// The subject.
    pub subject: String,
    /// When the export was made.
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// Whether the subject is forgotten (their personal fields then read as redacted).
    pub forgotten: bool,
    /// The events, in log order.
    pub events: Vec<RecordedEvent>,
}

impl SubjectExport {
    /// The exported events as a CloudEvents batch
    /// ([`BATCH_CONTENT_TYPE`](crate::cloudevents::BATCH_CONTENT_TYPE): a JSON array of
    /// structured events), for a subject or a recipient who wants the standard envelope
    /// rather than factum's.
    pub fn to_cloudevents(
        &self,
        ce: &crate::cloudevents::CloudEvents,
    ) -> Result<String, crate::cloudevents::CloudEventError> {
        ce.to_batch(&self.events)
    }
}

/// An [`EventStore`] that seals the personal fields of the events it appends and opens
/// those it reads (see the module documentation).
///
/// Aggregates that record personal events are not snapshotted through it: a snapshot of
/// their state would hold the plaintext past forgetting. Their loads replay.
#[derive(Debug, Clone)]
pub struct ProtectedStore<S, K> {
    inner: S,
    keys: Arc<K>,
    catalog: Arc<PersonalCatalog>,
}

impl<S: EventStore, K: KeyStore> ProtectedStore<S, K> {
    /// Wraps `inner`, keeping the keys in `keys`; `catalog` says which events are
    /// personal (see [`PersonalCatalog::from_registry`]).
    pub fn new(inner: S, keys: K, catalog: PersonalCatalog) -> Self {
        Self {
            inner,
            keys: Arc::new(keys),
            catalog: Arc::new(catalog),
        }
    }

    /// The wrapped store (it holds the sealed form).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The key store.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The catalog of personal events.
    pub fn catalog(&self) -> &PersonalCatalog {
        &self.catalog
    }

    /// Forgets `subject`: destroys their key (every sealed field of theirs reads as its
    /// replacement from now on, everywhere), and records who asked, when, as a
    /// `factum.SubjectForgotten` event in the subject's stream. Forgetting again records
    /// nothing new and returns the first record.
    pub async fn forget(
        &self,
        subject: &SubjectId,
        by: &str,
    ) -> Result<super::Forgotten, PersonalStoreError> {
        let already = self.keys.forgotten(subject).await?;
        let forgotten = self.keys.forget(subject, by).await?;
        if already.is_none() {
            let record = SubjectForgotten {
                subject: subject.to_string(),
                forgotten_by: forgotten.forgotten_by.clone(),
            };
            let payload = serde_json::value::to_raw_value(&record)
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
            let mut event = NewEvent::new(
                SUBJECT_FORGOTTEN,
                1,
                payload,
                Metadata {
                    actor: Some(forgotten.forgotten_by.clone()),
                    ..Metadata::default()
                },
            );
            event.timestamp = forgotten.forgotten_at;
            self.inner
                .append(
                    &subject_stream(subject),
                    FORGOTTEN_STREAM_TYPE,
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await?;
        }
        Ok(forgotten)
    }

    /// Every event about `subject`, in log order, opened, with its metadata: the events
    /// whose payload names them as their data subject, every other event of the streams
    /// those are in (a member's consents, in the member's stream), the access records of
    /// those streams (who read them: recipients of the data, under GDPR article 15), and
    /// the record of their forgetting.
    pub async fn export(&self, subject: &SubjectId) -> Result<SubjectExport, PersonalStoreError> {
        let forgotten = self.keys.forgotten(subject).await?.is_some();
        // Two passes over the log: the streams about the subject, then their events.
        let mut streams = std::collections::HashSet::from([subject_stream(subject)]);
        self.scan(|event| {
            if self.catalog.subject_of(event).as_ref() == Some(subject) {
                streams.insert(event.stream_id.clone());
            }
        })
        .await?;
        // Who read those streams is theirs to know too: their access records.
        let access: Vec<String> = streams
            .iter()
            .map(|stream| crate::authorization::access_stream_id(stream))
            .collect();
        streams.extend(access);
        let mut events = Vec::new();
        self.scan(|event| {
            if streams.contains(&event.stream_id) {
                events.push(event.clone());
            }
        })
        .await?;
        self.open_all(&mut events).await?;
        Ok(SubjectExport {
            subject: subject.to_string(),
            exported_at: crate::envelope::now(),
            forgotten,
            events,
        })
    }

    /// Calls `each` with every stored (sealed) event, in log order.
    async fn scan(&self, mut each: impl FnMut(&RecordedEvent)) -> Result<(), StoreError> {
        const PAGE: usize = 1024;
        let mut after = 0;
        loop {
            let page = self.inner.read_all(after, PAGE).await?;
            for event in &page {
                after = event.position;
                each(event);
            }
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// Seals the personal fields of `events`, each under its subject's key (created on
    /// first use); a forgotten subject's fields are stored as their replacement.
    async fn seal_all(&self, events: Vec<NewEvent>) -> Result<Vec<NewEvent>, StoreError> {
        let mut keys = KeyCache::default();
        let mut sealed = Vec::with_capacity(events.len());
        for mut event in events {
            let Some(entry) = self.catalog.entry(&event.name, event.schema_version) else {
                sealed.push(event);
                continue;
            };
            let mut payload: Value = serde_json::from_str(event.payload.get())
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
            let Some(subject) = subject_at(&payload, &entry.subject) else {
                return Err(refused(
                    &event,
                    format!(
                        "its data subject at `{}` is missing or not an id",
                        entry.subject
                    ),
                ));
            };
            let state = keys.get_or_create(&*self.keys, &subject).await?;
            for field in &entry.fields {
                let Some(value) = payload.pointer_mut(&field.pointer) else {
                    continue;
                };
                *value = match state {
                    KeyState::Active(key) => {
                        let aad = Aad::new(
                            event.event_id,
                            &event.name,
                            event.schema_version,
                            &field.pointer,
                        );
                        seal(key, value, &aad)
                            .map_err(|error| StoreError::Backend(Box::new(error)))?
                    }
                    KeyState::Forgotten(_) | KeyState::Absent => field.redacted.clone(),
                };
            }
            event.payload = to_raw(&payload)?;
            sealed.push(event);
        }
        Ok(sealed)
    }

    /// Opens the personal fields of `events` in place: plaintext with an active key, the
    /// replacement once forgotten. A sealed field that does not open (altered, or moved
    /// from another event) is a [`StoreError::CorruptRow`] at its event.
    async fn open_all(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let mut keys = KeyCache::default();
        for event in events.iter_mut() {
            let Some(entry) = self.catalog.entry(&event.name, event.schema_version) else {
                continue;
            };
            let mut payload: Value = match serde_json::from_str(event.payload.get()) {
                Ok(payload) => payload,
                // Not JSON: the event's decoder reports it, where it is decoded.
                Err(_) => continue,
            };
            let Some(subject) = subject_at(&payload, &entry.subject) else {
                continue;
            };
            let state = keys.get(&*self.keys, &subject).await?;
            let mut changed = false;
            for field in &entry.fields {
                let Some(value) = payload.pointer_mut(&field.pointer) else {
                    continue;
                };
                // A value stored before the field was declared personal is plaintext.
                if !is_sealed(value) {
                    continue;
                }
                *value = match state {
                    KeyState::Active(key) => {
                        let aad = Aad::new(
                            event.event_id,
                            &event.name,
                            event.schema_version,
                            &field.pointer,
                        );
                        open(key, value, &aad).map_err(|error| StoreError::CorruptRow {
                            stream_id: event.stream_id.clone(),
                            stream_version: event.stream_version,
                            position: Some(event.position),
                            reason: format!("personal field `{}`: {error}", field.pointer),
                        })?
                    }
                    KeyState::Forgotten(_) | KeyState::Absent => field.redacted.clone(),
                };
                changed = true;
            }
            if changed {
                event.payload = to_raw(&payload)?;
            }
        }
        Ok(())
    }
}

/// The data keys one call needs, looked up once per subject.
#[derive(Default)]
struct KeyCache {
    states: HashMap<SubjectId, KeyState>,
}

impl KeyCache {
    async fn get<K: KeyStore>(
        &mut self,
        keys: &K,
        subject: &SubjectId,
    ) -> Result<&KeyState, StoreError> {
        if !self.states.contains_key(subject) {
            let state = keys.data_key(subject).await.map_err(key_failure)?;
            self.states.insert(subject.clone(), state);
        }
        Ok(&self.states[subject])
    }

    async fn get_or_create<K: KeyStore>(
        &mut self,
        keys: &K,
        subject: &SubjectId,
    ) -> Result<&KeyState, StoreError> {
        if !matches!(
            self.states.get(subject),
            Some(KeyState::Active(_) | KeyState::Forgotten(_))
        ) {
            let state = keys
                .data_key_or_create(subject)
                .await
                .map_err(key_failure)?;
            self.states.insert(subject.clone(), state);
        }
        Ok(&self.states[subject])
    }
}

fn key_failure(error: PersonalError) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn to_raw(payload: &Value) -> Result<Box<RawValue>, StoreError> {
    serde_json::value::to_raw_value(payload).map_err(|error| StoreError::Backend(Box::new(error)))
}

fn refused(event: &NewEvent, reason: String) -> StoreError {
    StoreError::Backend(
        format!(
            "event `{}` version {} ({}): {reason}",
            event.name, event.schema_version, event.event_id
        )
        .into(),
    )
}

/// Errors of forgetting and exporting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersonalStoreError {
    /// The key store failed.
    #[error(transparent)]
    Keys(#[from] PersonalError),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<S: EventStore, K: KeyStore> EventStore for ProtectedStore<S, K> {
    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let events = self.seal_all(events).await?;
        self.inner
            .append(stream_id, stream_type, expected, events)
            .await
    }

    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
    ) -> Result<CommandAppend, StoreError> {
        let events = self.seal_all(events).await?;
        self.inner
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn command_outcome(
        &self,
        command_id: uuid::Uuid,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_commands(recorded_before).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self
            .inner
            .read_stream(stream_id, from_version, limit)
            .await?;
        self.open_all(&mut events).await?;
        Ok(events)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.inner.read_all(after, limit).await?;
        self.open_all(&mut events).await?;
        Ok(events)
    }

    async fn read_all_filtered(
        &self,
        after: u64,
        limit: usize,
        names: &[&str],
    ) -> Result<FilteredPage, StoreError> {
        let mut page = self.inner.read_all_filtered(after, limit, names).await?;
        self.open_all(&mut page.events).await?;
        Ok(page)
    }

    async fn head(&self) -> Result<Option<Head>, StoreError> {
        self.inner.head().await
    }

    async fn wait_for_events(
        &self,
        after: u64,
        timeout: std::time::Duration,
    ) -> Result<(), StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        // The state of an aggregate with personal events holds their plaintext.
        if self.stream_is_personal(&snapshot.stream_id).await? {
            return Ok(());
        }
        self.inner.save_snapshot(snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, StoreError> {
        if self.stream_is_personal(stream_id).await? {
            return Ok(None);
        }
        self.inner.load_snapshot(stream_id).await
    }
}

impl<S: EventStore, K: KeyStore> ProtectedStore<S, K> {
    /// Whether the stream's type records personal events (its first event says which
    /// type it has).
    async fn stream_is_personal(&self, stream_id: &str) -> Result<bool, StoreError> {
        let first = self.inner.read_stream(stream_id, 1, 1).await?;
        Ok(first
            .first()
            .is_some_and(|event| self.catalog.is_personal_stream_type(&event.stream_type)))
    }
}

impl<S, K> crate::integrity::TamperEvident for ProtectedStore<S, K>
where
    S: crate::integrity::TamperEvident,
    K: KeyStore,
{
    /// Verifies the stored (sealed) history: forgetting a subject changes nothing stored.
    async fn verify(&self) -> Result<crate::integrity::Verification, StoreError> {
        self.inner.verify().await
    }

    async fn leaves(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::integrity::Leaf>, StoreError> {
        self.inner.leaves(after, limit).await
    }

    async fn save_checkpoint(
        &self,
        checkpoint: &crate::integrity::checkpoint::SignedTreeHead,
    ) -> Result<(), StoreError> {
        self.inner.save_checkpoint(checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<crate::integrity::StoredCheckpoint>, StoreError> {
        self.inner.checkpoints().await
    }
}
