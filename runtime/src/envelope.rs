//! What is stored around an event payload: identity, position and metadata.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::context::CommandContext;
use crate::tag::Tag;

/// Who and what caused an event, carried from the command into every event it records.
///
/// Its JSON Schema is part of [`envelope_schema`], as `EnvelopeMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(
    rename = "EnvelopeMetadata",
    description = "Who and what caused an event, carried from the command into every event it records."
)]
pub struct Metadata {
    /// Groups every message of one business transaction.
    pub correlation_id: Option<Uuid>,
    /// The id of the message (a command's id) that caused this one.
    pub causation_id: Option<Uuid>,
    /// Who acted: the actor's id (see [`Actor`](crate::context::Actor)).
    pub actor: Option<String>,
    /// The kind of the actor (`care_coordinator`, `service`, ...); absent when the
    /// command named no actor, or for events recorded before actors had kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_kind: Option<String>,
    /// The tenant the command was issued in; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The W3C trace context (`traceparent`) of the command that recorded the event, so
    /// that what the event causes joins its trace; absent when the command was not
    /// traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Free-form entries; absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An event ready to be appended to a stream.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Unique id (UUID v7); re-appending the same id is idempotent.
    pub event_id: Uuid,
    /// The stable event name.
    pub name: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The JSON payload.
    pub payload: Box<RawValue>,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// Correlation, causation, actor and free-form entries.
    pub metadata: Metadata,
    /// What the event is about beyond its stream (see [`tag`](crate::tag)); a set: a
    /// store keeps each tag once, sorted.
    pub tags: Vec<Tag>,
}

impl NewEvent {
    /// A new event with a fresh UUID v7 and the current time, to the microsecond (the
    /// precision every store keeps, PostgreSQL's included: see [`now`]).
    pub fn new(
        name: impl Into<String>,
        schema_version: u32,
        payload: Box<RawValue>,
        metadata: Metadata,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            name: name.into(),
            schema_version,
            payload,
            timestamp: now(),
            metadata,
            tags: Vec::new(),
        }
    }

    /// The event with `tags` (see [`tag`](crate::tag)).
    #[must_use]
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        self.tags = tags.into_iter().collect();
        self
    }
}

/// The current time, truncated to whole microseconds: the precision every store keeps
/// (see [`limits`](crate::store::limits)). Stores refuse finer timestamps rather than
/// round them, so set a [`NewEvent::timestamp`] or a [`Snapshot::taken_at`] from this,
/// not from `Utc::now()`.
pub fn now() -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
}

/// An event as the store recorded it.
///
/// It serialises as one JSON object (the payload inline), the shape the event bus carries.
/// That shape has one definition, [`envelope_schema`], derived from this type: the
/// registry document carries it, and the contracts for other languages are generated
/// from it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(
    description = "A stored event, as factum writes it: read back from a store, carried by the event bus, exported."
)]
pub struct RecordedEvent {
    /// Unique id (UUID v7).
    pub event_id: Uuid,
    /// The stream the event belongs to.
    pub stream_id: String,
    /// The stream's type: the name of the aggregate that owns it.
    #[schemars(extend("x-factum-envelope" = "stream_type"))]
    pub stream_type: String,
    /// Position in the stream: 1, 2, 3 … without gaps.
    #[schemars(range(min = 1))]
    #[serde(deserialize_with = "versions::at_least_one")]
    pub stream_version: u64,
    /// Position in the whole store: strictly increasing in commit order.
    pub position: u64,
    /// The stable event name.
    #[schemars(extend("x-factum-envelope" = "name"))]
    pub name: String,
    /// The payload's schema version.
    #[schemars(range(min = 1, max = u32::MAX), extend("x-factum-envelope" = "version"))]
    pub schema_version: u32,
    /// The version the payload is stored with, when the event is delivered upcast to its
    /// newest version (`schema_version`); absent when the payload is as stored.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "versions::at_least_one_if_set"
    )]
    #[schemars(range(min = 1, max = u32::MAX))]
    pub stored_schema_version: Option<u32>,
    /// The JSON payload: the event's own schema, per name and version.
    #[schemars(extend("x-factum-envelope" = "payload"))]
    pub payload: Box<RawValue>,
    /// When the event happened (RFC 3339, UTC, to the microsecond).
    pub timestamp: DateTime<Utc>,
    /// Correlation, causation, actor and free-form entries.
    pub metadata: Metadata,
    /// What the event is about beyond its stream: its tags, `key:value` strings, each
    /// once, sorted; absent when it has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

/// Reads back a [`RecordedEvent`] factum stored as a dead letter. The placeholder kept for
/// a row that could not be read at all has stream version 0 (the version is unknown),
/// which the envelope's wire form refuses: it is read here, and only here, as stored.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn parked_from_value(
    mut value: serde_json::Value,
) -> Result<RecordedEvent, serde_json::Error> {
    let placeholder = value.get("stream_version") == Some(&serde_json::Value::from(0));
    if placeholder {
        value["stream_version"] = serde_json::Value::from(1);
    }
    let mut event: RecordedEvent = serde_json::from_value(value)?;
    if placeholder {
        event.stream_version = 0;
    }
    Ok(event)
}

/// [`parked_from_value`] from JSON text, keeping the payload's bytes when the event is
/// not a placeholder.
#[cfg(feature = "sqlite")]
pub(crate) fn parked_from_str(text: &str) -> Result<RecordedEvent, serde_json::Error> {
    serde_json::from_str(text).or_else(|error| match serde_json::from_str(text) {
        Ok(value) => parked_from_value(value),
        Err(_) => Err(error),
    })
}

/// Versions count from 1: an envelope read with a 0 where the schema says "from 1" is
/// refused, as every consumer generated from that schema refuses it.
mod versions {
    use serde::de::{Deserialize, Deserializer, Error};

    fn checked<'de, D: Deserializer<'de>, T: PartialOrd + From<u8>>(
        value: T,
    ) -> Result<T, D::Error> {
        if value < T::from(1) {
            return Err(D::Error::custom("a version counts from 1, found 0"));
        }
        Ok(value)
    }

    pub(super) fn at_least_one<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u64, D::Error> {
        checked::<D, _>(u64::deserialize(deserializer)?)
    }

    pub(super) fn at_least_one_if_set<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        Option::<u32>::deserialize(deserializer)?
            .map(checked::<D, _>)
            .transpose()
    }
}

/// The keyword [`envelope_schema`] marks the envelope's stream type, event name, version
/// and payload properties with (`"stream_type"`, `"name"`, `"version"`, `"payload"`), so
/// generators find them whatever the properties are called.
pub const ENVELOPE_ROLE_KEYWORD: &str = "x-factum-envelope";

/// The JSON Schema (draft 2020-12) of a [`RecordedEvent`] as it serialises: the one
/// definition of the envelope that stores' readers, the event bus and exports carry.
///
/// It is the serialize contract (`Option`s that are always written are required and
/// nullable; `metadata.extra` is absent when empty), with `EnvelopeMetadata` in `$defs`.
/// The properties holding the stream type, event name, version and payload are marked with
/// [`ENVELOPE_ROLE_KEYWORD`]; the payload's schema is left open here: it is the event's
/// own schema for that name and version, in the registry.
pub fn envelope_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<RecordedEvent>()
        .to_value()
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event_id == other.event_id
            && self.stream_id == other.stream_id
            && self.stream_type == other.stream_type
            && self.stream_version == other.stream_version
            && self.position == other.position
            && self.name == other.name
            && self.schema_version == other.schema_version
            && self.stored_schema_version == other.stored_schema_version
            && self.payload.get() == other.payload.get()
            && self.timestamp == other.timestamp
            && self.metadata == other.metadata
    }
}

/// The [`Metadata::extra`] key under which an event records the causation id of the
/// command that recorded it (see [`CommandContext::event_metadata`]).
pub const COMMAND_CAUSATION_KEY: &str = "command_causation_id";

/// The command context's former name.
#[deprecated(since = "0.1.0", note = "renamed `factum::context::CommandContext`")]
pub type CommandMetadata = CommandContext;

/// The saved state of an aggregate at a stream version, so loading it replays only the
/// events after that version.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The stream the state was built from.
    pub stream_id: String,
    /// The last stream version applied to the state.
    pub stream_version: u64,
    /// The aggregate's snapshot schema version: a snapshot of another schema is never
    /// deserialised, only replaced.
    pub schema_version: u32,
    /// The serialised state.
    pub state: Box<RawValue>,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn sorted_strings(value: &Value) -> Vec<String> {
        let mut items: Vec<String> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect();
        items.sort();
        items
    }

    fn recorded(extra: BTreeMap<String, Value>) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::now_v7(),
            stream_id: "Order-1".to_owned(),
            stream_type: "Order".to_owned(),
            stream_version: 1,
            position: 1,
            name: "OrderPlaced".to_owned(),
            schema_version: 2,
            stored_schema_version: None,
            payload: serde_json::value::to_raw_value(&json!({"a": 1})).unwrap(),
            timestamp: now(),
            metadata: Metadata {
                extra,
                ..Metadata::default()
            },
            tags: Vec::new(),
        }
    }

    /// The schema is the serialize contract: the properties are what serde writes, the
    /// required ones what it always writes, and the roles mark the name, version and
    /// payload.
    #[test]
    fn the_envelope_schema_describes_what_serde_writes() {
        let schema = envelope_schema();
        let metadata_schema = &schema["$defs"]["EnvelopeMetadata"];
        let bare = serde_json::to_value(recorded(BTreeMap::new())).unwrap();
        let mut full = recorded(BTreeMap::from([("channel".to_owned(), json!("web"))]));
        full.stored_schema_version = Some(1);
        full.metadata.actor_kind = Some("care_coordinator".to_owned());
        full.metadata.tenant = Some("clinic-7".to_owned());
        full.metadata.traceparent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned());
        full.tags = vec![Tag::new("course", "c-1")];
        let full = serde_json::to_value(full).unwrap();

        assert_eq!(keys(&schema["properties"]), keys(&full));
        assert_eq!(sorted_strings(&schema["required"]), keys(&bare));
        assert_eq!(
            schema["properties"]["stored_schema_version"]["type"],
            json!(["integer", "null"]),
            "absent unless the event is delivered upcast"
        );
        assert_eq!(
            keys(&metadata_schema["properties"]),
            keys(&full["metadata"])
        );
        assert_eq!(
            sorted_strings(&metadata_schema["required"]),
            keys(&bare["metadata"])
        );
        for (property, role) in [
            ("stream_type", "stream_type"),
            ("name", "name"),
            ("schema_version", "version"),
            ("payload", "payload"),
        ] {
            assert_eq!(
                schema["properties"][property][ENVELOPE_ROLE_KEYWORD],
                json!(role)
            );
        }
        let tags = &schema["properties"]["tags"];
        assert_eq!(tags["type"], "array", "{tags}");
        let tag = &schema["$defs"]["Tag"];
        assert_eq!(
            (&tag["type"], &tag["pattern"]),
            (&json!("string"), &json!("^[A-Za-z0-9_.-]+:")),
            "{tag}"
        );
        assert_eq!(schema["properties"]["event_id"]["format"], "uuid");
        assert_eq!(schema["properties"]["timestamp"]["format"], "date-time");
        assert_eq!(
            metadata_schema["properties"]["correlation_id"]["type"],
            json!(["string", "null"])
        );
    }
}
