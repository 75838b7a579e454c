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

use zeroize::Zeroizing;

use super::bundle::{self, BUNDLE_PREFIX, BUNDLED, BundleCipher, Nonces};
use super::members::{Members, Replacement, plain_string};
use super::{Aad, KeyState, KeyStore, PersonalError, SubjectId, open};
use crate::envelope::{Metadata, NewEvent, RecordedEvent, Snapshot};
use crate::registry::{PersonalEntry, Registry};
use crate::store::{
    AppendOutcome, CommandAppend, CommandOutcome, CommandRecord, EventStore, ExpectedVersion,
    FilteredPage, Head, StoreError, VisitError,
};

/// The personal data of every registered event version, by name and version.
#[derive(Debug, Clone, Default)]
pub struct PersonalCatalog {
    /// By name, then version: a read looks an event up by its `&str` name without
    /// allocating.
    events: HashMap<String, HashMap<u32, Plan>>,
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
            .insert(version, Plan::new(personal.clone()));
        for aggregate in aggregates {
            if !self.personal_stream_types.contains(aggregate) {
                self.personal_stream_types.push(aggregate.clone());
            }
        }
    }

    /// The personal data of an event version, if it has any.
    pub fn entry(&self, name: &str, version: u32) -> Option<&PersonalEntry> {
        self.plan(name, version).map(|plan| &plan.entry)
    }

    fn plan(&self, name: &str, version: u32) -> Option<&Plan> {
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

/// How an event version's personal fields are found, sealed and opened.
#[derive(Debug, Clone)]
struct Plan {
    entry: PersonalEntry,
    /// Each field's replacement as JSON text, in the entry's order.
    redacted: Vec<Box<RawValue>>,
    /// The member names of the subject and of the fields when every pointer names a
    /// top-level member (all that `#[subject]` and `#[pii]` declare): such events are
    /// handled on the payload's text. Other pointers go through a `serde_json::Value`.
    top_level: Option<TopLevel>,
}

#[derive(Debug, Clone)]
struct TopLevel {
    subject: String,
    fields: Vec<String>,
}

impl Plan {
    fn new(entry: PersonalEntry) -> Self {
        let redacted = entry
            .fields
            .iter()
            .map(|field| {
                serde_json::value::to_raw_value(&field.redacted)
                    .expect("a serde_json::Value always serialises")
            })
            .collect();
        let top_level = top_level_member(&entry.subject).and_then(|subject| {
            let fields = entry
                .fields
                .iter()
                .map(|field| top_level_member(&field.pointer))
                .collect::<Option<Vec<_>>>()?;
            Some(TopLevel { subject, fields })
        });
        Self {
            entry,
            redacted,
            top_level,
        }
    }

    /// The pointers of the fields at `indices`.
    fn pointers<'p>(&'p self, indices: &'p [usize]) -> impl Iterator<Item = &'p str> {
        indices
            .iter()
            .map(|&field| self.entry.fields[field].pointer.as_str())
    }
}

/// The member a one-segment JSON pointer names (`/email` names `email`; RFC 6901's `~1`
/// and `~0` stand for `/` and `~`).
fn top_level_member(pointer: &str) -> Option<String> {
    let name = pointer.strip_prefix('/')?;
    (!name.contains('/')).then(|| name.replace("~1", "/").replace("~0", "~"))
}

/// The subject id a member's value names: a string as is, an integer as its digits.
fn subject_in(raw: &RawValue) -> Option<SubjectId> {
    if let Some(id) = plain_string(raw) {
        return SubjectId::new(id).ok();
    }
    subject_at(&serde_json::from_str(raw.get()).ok()?, "")
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
///
/// Over a store that decides across entities it is a
/// [`DecisionStore`](crate::store::decision::DecisionStore) too (the query's events
/// opened, the decided ones sealed; tags stay in the clear, and no `#[pii]` field can be
/// one), and over a store that archives, an
/// [`ArchiveStore`](crate::archive::ArchiveStore) (archives hold the sealed form, so
/// forgetting reaches them too). It is [`TamperEvident`](crate::integrity::TamperEvident)
/// over a tamper-evident store, verifying what is stored.
#[derive(Debug, Clone)]
pub struct ProtectedStore<S, K> {
    inner: S,
    keys: Arc<K>,
    catalog: Arc<PersonalCatalog>,
    sealing: Arc<SealingKeys>,
}

impl<S: EventStore, K: KeyStore> ProtectedStore<S, K> {
    /// Wraps `inner`, keeping the keys in `keys`; `catalog` says which events are
    /// personal (see [`PersonalCatalog::from_registry`]).
    pub fn new(inner: S, keys: K, catalog: PersonalCatalog) -> Self {
        Self {
            inner,
            keys: Arc::new(keys),
            catalog: Arc::new(catalog),
            sealing: Arc::default(),
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
        self.sealing.remove(subject);
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

    /// Seals the personal fields of `events`, each event's under its subject's key
    /// (created on first use) as one bundle (see [`bundle`]); a forgotten subject's
    /// fields are stored as their replacement.
    async fn seal_all(&self, events: Vec<NewEvent>) -> Result<Vec<NewEvent>, StoreError> {
        let mut nonces: Option<Nonces> = None;
        let mut aad = Vec::new();
        let mut sealed = Vec::with_capacity(events.len());
        for mut event in events {
            let Some(plan) = self.catalog.plan(&event.name, event.schema_version) else {
                sealed.push(event);
                continue;
            };
            // Parsed once: as members on the text, or as a `Value` for deeper pointers.
            let mut parsed =
                match &plan.top_level {
                    Some(top) => Parsed::Members(
                        top,
                        Members::parse(event.payload.get()).ok_or_else(|| {
                            refused(&event, "its payload is not a JSON object".into())
                        })?,
                    ),
                    None => Parsed::Value(serde_json::from_str(event.payload.get()).map_err(
                        |error| refused(&event, format!("its payload is not JSON: {error}")),
                    )?),
                };
            let subject = match &parsed {
                Parsed::Members(top, members) => members.get(&top.subject).and_then(subject_in),
                Parsed::Value(payload) => subject_at(payload, &plan.entry.subject),
            };
            let Some(subject) = subject else {
                return Err(refused(
                    &event,
                    format!(
                        "its data subject at `{}` is missing or not an id",
                        plan.entry.subject
                    ),
                ));
            };
            let key = self.sealing.get_or_create(&*self.keys, &subject).await?;
            let mut seal = |fields: &[usize], texts: &[&str]| -> Result<String, StoreError> {
                let nonces = match &mut nonces {
                    Some(nonces) => nonces,
                    None => nonces.insert(Nonces::draw(sealed.capacity()).map_err(key_failure)?),
                };
                let cipher = key.cipher.as_ref().expect("sealing needs an active key");
                bundle::aad(
                    &mut aad,
                    event.event_id,
                    &event.name,
                    event.schema_version,
                    plan.pointers(fields),
                );
                let mut plaintext = Zeroizing::new(Vec::with_capacity(
                    2 + texts.iter().map(|text| text.len() + 1).sum::<usize>(),
                ));
                plaintext.push(b'[');
                for (index, text) in texts.iter().enumerate() {
                    if index > 0 {
                        plaintext.push(b',');
                    }
                    plaintext.extend_from_slice(text.as_bytes());
                }
                plaintext.push(b']');
                Ok(cipher.seal_with(nonces.next().map_err(key_failure)?, &aad, &plaintext))
            };
            let payload = match &mut parsed {
                Parsed::Members(top, members) => {
                    let (fields, at): (Vec<usize>, Vec<usize>) = top
                        .fields
                        .iter()
                        .enumerate()
                        .filter_map(|(field, name)| Some((field, members.index(name)?)))
                        .unzip();
                    if fields.is_empty() {
                        None
                    } else if key.cipher.is_some() {
                        let texts: Vec<&str> =
                            at.iter().map(|&at| members.value(at).get()).collect();
                        let text = seal(&fields, &texts)?;
                        let replaced: Vec<_> = at
                            .iter()
                            .enumerate()
                            .map(|(nth, &at)| {
                                (
                                    at,
                                    Replacement::Text(if nth == 0 { &text } else { BUNDLED }),
                                )
                            })
                            .collect();
                        Some(members.rewrite(&replaced))
                    } else {
                        let replaced: Vec<_> = fields
                            .iter()
                            .zip(&at)
                            .map(|(&field, &at)| (at, Replacement::Raw(&plan.redacted[field])))
                            .collect();
                        Some(members.rewrite(&replaced))
                    }
                }
                Parsed::Value(payload) => {
                    let fields: Vec<usize> = (0..plan.entry.fields.len())
                        .filter(|&field| {
                            payload.pointer(&plan.entry.fields[field].pointer).is_some()
                        })
                        .collect();
                    if fields.is_empty() {
                        None
                    } else {
                        let replacements: Vec<Value> = if key.cipher.is_some() {
                            let texts: Vec<Zeroizing<String>> = plan
                                .pointers(&fields)
                                .map(|pointer| {
                                    Zeroizing::new(
                                        payload.pointer(pointer).expect("present").to_string(),
                                    )
                                })
                                .collect();
                            let texts: Vec<&str> = texts.iter().map(|text| text.as_str()).collect();
                            let text = seal(&fields, &texts)?;
                            (0..fields.len())
                                .map(|nth| {
                                    Value::String(if nth == 0 {
                                        text.clone()
                                    } else {
                                        BUNDLED.to_owned()
                                    })
                                })
                                .collect()
                        } else {
                            fields
                                .iter()
                                .map(|&field| plan.entry.fields[field].redacted.clone())
                                .collect()
                        };
                        for (&field, replacement) in fields.iter().zip(replacements) {
                            let pointer = &plan.entry.fields[field].pointer;
                            *payload.pointer_mut(pointer).expect("present") = replacement;
                        }
                        Some(to_raw(payload)?)
                    }
                }
            };
            drop(parsed);
            if let Some(payload) = payload {
                event.payload = payload;
            }
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
            loop {
                match self.open_one(event, &keys) {
                    Ok(Some(payload)) => event.payload = payload,
                    Ok(None) => {}
                    Err(Stop::NeedKey(subject)) => {
                        keys.get(&*self.keys, &subject).await?;
                        continue;
                    }
                    Err(Stop::Failed(error)) => return Err(error),
                }
                break;
            }
        }
        Ok(())
    }

    /// The opened payload of `event`, or `None` if it has nothing sealed; needs the key
    /// of the event's subject in `keys`.
    fn open_one(
        &self,
        event: &RecordedEvent,
        keys: &KeyCache,
    ) -> Result<Option<Box<RawValue>>, Stop> {
        let Some(plan) = self.catalog.plan(&event.name, event.schema_version) else {
            return Ok(None);
        };
        if let Some(top) = &plan.top_level {
            // Not an object: the event's decoder reports it, where it is decoded.
            let Some(members) = Members::parse(event.payload.get()) else {
                return Ok(None);
            };
            let mut fields = Vec::new();
            let mut at = Vec::new();
            let mut texts = Vec::new();
            for (field, name) in top.fields.iter().enumerate() {
                let Some(index) = members.index(name) else {
                    continue;
                };
                // A value stored before the field was declared personal is plaintext.
                if let Some(text) = plain_string(members.value(index))
                    && text.starts_with("pii:")
                {
                    fields.push(field);
                    at.push(index);
                    texts.push(text);
                }
            }
            // The first stored form seals each field apart: read through a `Value`.
            if !fields.is_empty() && !texts.iter().any(|text| text.starts_with("pii:v1:")) {
                let Some(subject) = members.get(&top.subject).and_then(subject_in) else {
                    return Ok(None);
                };
                let key = keys.cached(&subject)?;
                let plaintext = open_bundle(plan, event, key, &fields, &texts)?;
                let holder = &plan.entry.fields[fields[0]].pointer;
                let values = match &plaintext {
                    Some(plaintext) => Some(split(plaintext, fields.len(), event, holder)?),
                    None => None,
                };
                let replaced: Vec<_> = at
                    .iter()
                    .zip(&fields)
                    .enumerate()
                    .map(|(nth, (&at, &field))| {
                        let value = match &values {
                            Some(values) => values[nth],
                            None => &*plan.redacted[field],
                        };
                        (at, Replacement::Raw(value))
                    })
                    .collect();
                return Ok(Some(members.rewrite(&replaced)));
            }
            if fields.is_empty() {
                return Ok(None);
            }
        }
        self.open_value(plan, event, keys)
    }

    /// [`open_one`](Self::open_one) through a `serde_json::Value`: for pointers below the
    /// top level and fields of the first stored form.
    fn open_value(
        &self,
        plan: &Plan,
        event: &RecordedEvent,
        keys: &KeyCache,
    ) -> Result<Option<Box<RawValue>>, Stop> {
        let Ok(mut payload) = serde_json::from_str::<Value>(event.payload.get()) else {
            return Ok(None);
        };
        let Some(subject) = subject_at(&payload, &plan.entry.subject) else {
            return Ok(None);
        };
        let (v1, v2): (Vec<usize>, Vec<usize>) = (0..plan.entry.fields.len())
            .filter(|&field| {
                matches!(payload.pointer(&plan.entry.fields[field].pointer),
                    Some(Value::String(text)) if text.starts_with("pii:"))
            })
            .partition(|&field| {
                matches!(payload.pointer(&plan.entry.fields[field].pointer),
                    Some(Value::String(text)) if text.starts_with(super::cipher::SEALED_PREFIX))
            });
        if v1.is_empty() && v2.is_empty() {
            return Ok(None);
        }
        let key = keys.cached(&subject)?;
        let mut replacements: Vec<(usize, Value)> = Vec::new();
        for &field in &v1 {
            let pointer = &plan.entry.fields[field].pointer;
            let value = match &key.state {
                KeyState::Active(data_key) => {
                    let aad = Aad::new(event.event_id, &event.name, event.schema_version, pointer);
                    let stored = payload.pointer(pointer).expect("present");
                    open(data_key, stored, &aad)
                        .map_err(|error| Stop::Failed(corrupt(event, pointer, error)))?
                }
                KeyState::Forgotten(_) | KeyState::Absent => {
                    plan.entry.fields[field].redacted.clone()
                }
            };
            replacements.push((field, value));
        }
        if !v2.is_empty() {
            let texts: Vec<String> = plan
                .pointers(&v2)
                .map(|pointer| {
                    payload
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .expect("a sealed string")
                        .to_owned()
                })
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let plaintext = open_bundle(plan, event, key, &v2, &texts)?;
            let holder = &plan.entry.fields[v2[0]].pointer;
            let values = match &plaintext {
                Some(plaintext) => Some(split(plaintext, v2.len(), event, holder)?),
                None => None,
            };
            for (nth, &field) in v2.iter().enumerate() {
                let value = match &values {
                    Some(values) => serde_json::from_str(values[nth].get())
                        .expect("an element of a JSON array is JSON"),
                    None => plan.entry.fields[field].redacted.clone(),
                };
                replacements.push((field, value));
            }
        }
        for (field, value) in replacements {
            *payload
                .pointer_mut(&plan.entry.fields[field].pointer)
                .expect("present") = value;
        }
        to_raw(&payload).map(Some).map_err(Stop::Failed)
    }
}

/// The plaintext of the bundle of an event's sealed fields (`fields`, stored as
/// `texts`) with an active key; `None` when the subject is forgotten or has no key (the
/// fields then read as their replacements).
fn open_bundle(
    plan: &Plan,
    event: &RecordedEvent,
    key: &CachedKey,
    fields: &[usize],
    texts: &[&str],
) -> Result<Option<Zeroizing<Vec<u8>>>, Stop> {
    let holder = &plan.entry.fields[fields[0]].pointer;
    if texts[0] == BUNDLED || !texts[0].starts_with(BUNDLE_PREFIX) {
        let reason = if texts[0].starts_with(BUNDLE_PREFIX) {
            "`pii:v2:bundled` in the first sealed field, which holds the bundle".to_owned()
        } else {
            format!(
                "`{}…`: an unknown format version (this code reads `pii:v1:` and `pii:v2:`)",
                &texts[0][..texts[0].len().min(7)]
            )
        };
        return Err(Stop::Failed(malformed(event, holder, reason)));
    }
    for (&field, text) in fields.iter().zip(texts).skip(1) {
        if *text != BUNDLED {
            let pointer = &plan.entry.fields[field].pointer;
            return Err(Stop::Failed(malformed(
                event,
                pointer,
                "a second bundle: every sealed field but the first holds `pii:v2:bundled`".into(),
            )));
        }
    }
    let Some(cipher) = &key.cipher else {
        return Ok(None);
    };
    let mut aad = Vec::with_capacity(128);
    bundle::aad(
        &mut aad,
        event.event_id,
        &event.name,
        event.schema_version,
        plan.pointers(fields),
    );
    cipher.open(&aad, texts[0]).map(Some).map_err(|fault| {
        Stop::Failed(corrupt(
            event,
            holder,
            fault.at(event.event_id, &event.name, holder),
        ))
    })
}

/// The values of a bundle's fields, in order, as slices of its plaintext (a JSON array
/// of `count` values).
fn split<'p>(
    plaintext: &'p [u8],
    count: usize,
    event: &RecordedEvent,
    holder: &str,
) -> Result<Vec<&'p RawValue>, Stop> {
    let values: Vec<&RawValue> = serde_json::from_slice(plaintext).map_err(|error| {
        Stop::Failed(malformed(
            event,
            holder,
            format!("the opened bundle is not a JSON array: {error}"),
        ))
    })?;
    if values.len() != count {
        return Err(Stop::Failed(malformed(
            event,
            holder,
            format!(
                "the opened bundle holds {} values for {count} sealed fields",
                values.len()
            ),
        )));
    }
    Ok(values)
}

/// An event's payload, parsed as its plan needs.
enum Parsed<'p> {
    /// Top-level members, on the text.
    Members(&'p TopLevel, Members<'p>),
    /// A whole value, for pointers below the top level.
    Value(Value),
}

/// Why an event could not be opened yet.
enum Stop {
    /// The key of this subject is not in the cache: fetch it, then open again.
    NeedKey(SubjectId),
    /// The event does not open.
    Failed(StoreError),
}

/// A subject's key as one read needs it.
struct CachedKey {
    state: KeyState,
    /// The key, ready to seal and open, when it is active.
    cipher: Option<BundleCipher>,
}

impl CachedKey {
    fn new(state: KeyState) -> Self {
        let cipher = match &state {
            KeyState::Active(key) => Some(BundleCipher::new(key)),
            KeyState::Forgotten(_) | KeyState::Absent => None,
        };
        Self { state, cipher }
    }
}

/// The keys appends seal with, kept from call to call (up to [`SealingKeys::CAPACITY`]
/// subjects): an append then costs no key-store read and no unwrapping.
///
/// Only sealing uses them, because sealing under a stale key is safe: a subject forgotten
/// by another process (its key destroyed there) while this store still holds the key
/// gets events sealed under a key that no longer exists anywhere else, so they read as
/// the replacement, as everything of a forgotten subject does. Reads fetch keys afresh
/// for each call, so they see a forgetting at once. A forgetting through this store
/// drops its key here too.
#[derive(Default)]
struct SealingKeys {
    keys: std::sync::Mutex<HashMap<SubjectId, Arc<CachedKey>>>,
}

impl SealingKeys {
    /// Subjects whose keys are kept; past it, the table starts again empty.
    const CAPACITY: usize = 4096;

    async fn get_or_create<K: KeyStore>(
        &self,
        keys: &K,
        subject: &SubjectId,
    ) -> Result<Arc<CachedKey>, StoreError> {
        if let Some(key) = self.lock().get(subject) {
            return Ok(Arc::clone(key));
        }
        let state = keys
            .data_key_or_create(subject)
            .await
            .map_err(key_failure)?;
        let key = Arc::new(CachedKey::new(state));
        let mut kept = self.lock();
        if kept.len() >= Self::CAPACITY {
            kept.clear();
        }
        kept.insert(subject.clone(), Arc::clone(&key));
        Ok(key)
    }

    fn remove(&self, subject: &SubjectId) {
        self.lock().remove(subject);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SubjectId, Arc<CachedKey>>> {
        // A panic while holding the table leaves it consistent (inserts and removes are
        // whole), so a poisoned lock is still usable.
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKeys")
            .field("subjects", &self.lock().len())
            .finish()
    }
}

/// The data keys one call needs, looked up once per subject.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<SubjectId, CachedKey>,
}

impl KeyCache {
    /// The key of `subject` if it was fetched already.
    fn cached(&self, subject: &SubjectId) -> Result<&CachedKey, Stop> {
        self.keys
            .get(subject)
            .ok_or_else(|| Stop::NeedKey(subject.clone()))
    }

    async fn get<K: KeyStore>(
        &mut self,
        keys: &K,
        subject: &SubjectId,
    ) -> Result<&CachedKey, StoreError> {
        if !self.keys.contains_key(subject) {
            let state = keys.data_key(subject).await.map_err(key_failure)?;
            self.keys.insert(subject.clone(), CachedKey::new(state));
        }
        Ok(&self.keys[subject])
    }
}

fn key_failure(error: PersonalError) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// A sealed field that does not open, as the error of its event's row.
fn corrupt(event: &RecordedEvent, pointer: &str, error: PersonalError) -> StoreError {
    StoreError::CorruptRow {
        stream_id: event.stream_id.clone(),
        stream_version: event.stream_version,
        position: Some(event.position),
        reason: format!("personal field `{pointer}`: {error}"),
    }
}

fn malformed(event: &RecordedEvent, pointer: &str, reason: String) -> StoreError {
    corrupt(
        event,
        pointer,
        PersonalError::Malformed {
            event_id: event.event_id,
            event_name: event.name.clone(),
            pointer: pointer.to_owned(),
            reason,
        },
    )
}

/// `scratch` made a copy of `from` with `payload`, reusing its buffers from the previous
/// event of a visit.
fn refill<'s>(
    scratch: &'s mut Option<RecordedEvent>,
    from: &RecordedEvent,
    payload: Box<RawValue>,
) -> &'s RecordedEvent {
    let Some(to) = scratch else {
        let mut copy = from.clone();
        copy.payload = payload;
        return scratch.insert(copy);
    };
    // Every field named, so a new one cannot be forgotten here.
    let RecordedEvent {
        event_id,
        stream_id,
        stream_type,
        stream_version,
        position,
        name,
        schema_version,
        stored_schema_version,
        payload: _,
        timestamp,
        metadata,
        tags,
    } = from;
    to.event_id = *event_id;
    to.stream_id.clone_from(stream_id);
    to.stream_type.clone_from(stream_type);
    to.stream_version = *stream_version;
    to.position = *position;
    to.name.clone_from(name);
    to.schema_version = *schema_version;
    to.stored_schema_version = *stored_schema_version;
    to.payload = payload;
    to.timestamp = *timestamp;
    to.tags.clone_from(tags);
    to.metadata.clone_from(metadata);
    to
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

    /// Visits through the wrapped store's own visit (SQLite's streams its rows from
    /// another thread), opening each event on the way. The visit needs the subjects'
    /// keys but cannot wait for the key store: on meeting a subject whose key it has not
    /// fetched, it stops, fetches the key and goes on from that event.
    async fn for_each_in_stream<E, F>(
        &self,
        stream_id: &str,
        from_version: u64,
        mut visit: F,
    ) -> Result<(), VisitError<E>>
    where
        E: Send,
        F: FnMut(&RecordedEvent) -> Result<(), E> + Send,
    {
        enum Halt<E> {
            Visitor(E),
            Stop(Stop, u64),
        }
        let mut keys = KeyCache::default();
        let mut scratch: Option<RecordedEvent> = None;
        let mut from = from_version;
        loop {
            let visited = self
                .inner
                .for_each_in_stream(stream_id, from, |event| {
                    match self.open_one(event, &keys) {
                        Ok(None) => visit(event),
                        Ok(Some(payload)) => visit(refill(&mut scratch, event, payload)),
                        Err(stop) => return Err(Halt::Stop(stop, event.stream_version)),
                    }
                    .map_err(Halt::Visitor)
                })
                .await;
            match visited {
                Ok(()) => return Ok(()),
                Err(VisitError::Store(error)) => return Err(VisitError::Store(error)),
                Err(VisitError::Visitor(Halt::Visitor(error))) => {
                    return Err(VisitError::Visitor(error));
                }
                Err(VisitError::Visitor(Halt::Stop(Stop::Failed(error), _))) => {
                    return Err(VisitError::Store(error));
                }
                Err(VisitError::Visitor(Halt::Stop(Stop::NeedKey(subject), at))) => {
                    keys.get(&*self.keys, &subject)
                        .await
                        .map_err(VisitError::Store)?;
                    from = at;
                }
            }
        }
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

/// Decisions through the protected store: the query's events opened as they are read,
/// the decided events sealed before they are appended. Tags are stored in the clear (a
/// `#[pii]` field cannot be one), so the wrapped store finds and locks them as it would
/// without this wrapper. A decision runs in steps (read, decide, append under the
/// condition), never inside the wrapped store's own session: sealing fetches keys from
/// the key store, which a session on SQLite's writer thread cannot wait for.
impl<S, K> crate::store::decision::DecisionStore for ProtectedStore<S, K>
where
    S: crate::store::decision::DecisionStore,
    K: KeyStore,
{
    async fn read_matching(
        &self,
        query: &crate::store::decision::Query,
        after: u64,
    ) -> Result<crate::store::decision::MatchedEvents, StoreError> {
        let mut matched = self.inner.read_matching(query, after).await?;
        self.open_all(&mut matched.events).await?;
        Ok(matched)
    }

    async fn append_if(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: &crate::store::decision::AppendCondition,
    ) -> Result<AppendOutcome, StoreError> {
        let events = self.seal_all(events).await?;
        self.inner
            .append_if(stream_id, stream_type, expected, events, condition)
            .await
    }

    async fn append_command_if(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
        condition: &crate::store::decision::AppendCondition,
    ) -> Result<CommandAppend, StoreError> {
        let events = self.seal_all(events).await?;
        self.inner
            .append_command_if(stream_id, stream_type, expected, events, command, condition)
            .await
    }
}

/// Archiving through the protected store moves the stored form: an archive holds the
/// sealed fields, so forgetting a subject reaches their archived events too.
impl<S, K> crate::archive::ArchiveStore for ProtectedStore<S, K>
where
    S: crate::archive::ArchiveStore,
    K: KeyStore,
{
    async fn archives(&self) -> Result<Vec<crate::archive::ArchiveRecord>, StoreError> {
        self.inner.archives().await
    }

    async fn stored_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<crate::archive::ArchivedEvent>, StoreError> {
        self.inner.stored_events(after, upto, limit).await
    }

    async fn record_archive(
        &self,
        archive: &crate::archive::Archive,
        file: &str,
    ) -> Result<crate::archive::ArchiveRecord, crate::archive::ArchivingError> {
        self.inner.record_archive(archive, file).await
    }

    async fn last_position_before(
        &self,
        time: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.last_position_before(time).await
    }
}
