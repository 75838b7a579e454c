//! Events, their stable identity, and sets of events that one aggregate records.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::registry::{RegistryBuilder, UpcastPath};
use crate::tag::{Tag, TagField};

/// A fact that happened, identified by a stable name and an integer schema version.
///
/// Implemented by `#[event]`; the name and version, never the Rust type path, are what
/// reaches storage, so renaming a type does not change stored data.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a factum event",
    label = "not an event",
    note = "annotate the type with `#[factum::event(name = \"...\", version = N)]`"
)]
pub trait Event:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The stable event name stored with every payload.
    const NAME: &'static str;
    /// The schema version of this type's payload shape.
    const VERSION: u32;
    /// The oldest stored version that [`Event::decode_version`] can turn into `Self`.
    const OLDEST_VERSION: u32;

    /// Decodes a payload stored at `version` into `Self`, running every upcast between
    /// that version and [`Event::VERSION`]. `payload` is the JSON text as stored, parsed
    /// once here: text that is not JSON is a [`DecodeErrorKind::Payload`] whose source is
    /// a syntax error.
    fn decode_version(version: u32, payload: &str) -> Result<Self, DecodeErrorKind>;

    /// The type's doc comment, for the registry and generated contracts.
    const DOC: &'static str = "";

    /// How older stored versions reach this one.
    const UPCAST: UpcastPath = UpcastPath::None;

    /// The event's data subject and personal fields (`#[subject]`, `#[pii]`); none by
    /// default.
    const PERSONAL: crate::personal::PersonalFields = crate::personal::PersonalFields::NONE;

    /// Whether the event is critical: each one stored carries the service's Ed25519
    /// signature of its hash (`#[event(.., signed)]`, see
    /// [`integrity::EventSigner`](crate::integrity::EventSigner)).
    const SIGNED: bool = false;

    /// The tags the event declares (`#[tag]` on its fields), in field order; none by
    /// default. See [`tag`](crate::tag).
    const TAGS: &'static [TagField] = &[];

    /// Appends the event's tags to `tags`, in the order of [`Event::TAGS`] (a field that
    /// is `None` gives none, a collection one per element).
    fn tags(&self, tags: &mut Vec<Tag>) {
        let _ = tags;
    }

    /// Registers this version and every older version that has a Rust type.
    fn register(registry: &mut RegistryBuilder, aggregate: Option<&str>) {
        registry.add_event::<Self>(aggregate);
    }
}

/// An event serialised for storage: its identity and its JSON payload.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// The event name.
    pub name: &'static str,
    /// The schema version the payload was written with.
    pub schema_version: u32,
    /// The JSON payload.
    pub payload: Box<RawValue>,
}

/// The closed set of events an aggregate records, as an enum with one variant per event.
///
/// Implemented by `#[derive(Events)]`. Decoding accepts every stored version of every
/// event in the set and always yields the newest shape.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event set",
    label = "not a #[derive(Events)] enum",
    note = "an aggregate's `events = ...` names an enum with `#[derive(Events)]` and one variant per event"
)]
pub trait EventSet: Sized + Send + Sync + 'static {
    /// The Rust name of the set, for messages.
    const SET_NAME: &'static str;
    /// The names of the events in the set, in declaration order.
    const EVENT_NAMES: &'static [&'static str];

    /// The stable name of this event.
    fn event_name(&self) -> &'static str;
    /// The schema version this event is written with.
    fn event_version(&self) -> u32;
    /// Serialises the event for storage.
    fn encode(&self) -> Result<EncodedEvent, EncodeError>;
    /// Appends the event's tags to `tags` ([`Event::tags`] of the member it holds).
    fn tags(&self, tags: &mut Vec<Tag>);
    /// Decodes a stored event into the newest variant, upcasting older versions.
    ///
    /// `payload` is the JSON text as stored (a [`RawValue`]'s is
    /// [`get`](RawValue::get)); it is parsed once, here, and text that is not JSON is an
    /// error ([`DecodeError::not_json`]), not a panic.
    fn decode(name: &str, version: u32, payload: &str) -> Result<Self, DecodeError>;

    /// Registers every event of the set, with its older versions.
    fn register(registry: &mut RegistryBuilder, aggregate: Option<&str>);
}

/// Values a `#[handle]` method may return as its `Ok` value: one event of the set,
/// `Option` or `Vec` of such events, the set enum itself, `Vec` of it, or `()` for none.
#[diagnostic::on_unimplemented(
    message = "a #[handle] method cannot return `{Self}` as the events of `{S}`",
    label = "not convertible into events of `{S}`",
    note = "return `Result<T, Error>` where T is one event of `{S}`, `Option<Event>`, `Vec<Event>`, `{S}`, `Vec<{S}>` or `()`"
)]
pub trait IntoEvents<S> {
    /// Converts the value into the events to append, in order.
    fn into_events(self) -> Vec<S>;
}

impl<S: EventSet> IntoEvents<S> for S {
    fn into_events(self) -> Vec<S> {
        vec![self]
    }
}

impl<S: EventSet> IntoEvents<S> for Vec<S> {
    fn into_events(self) -> Vec<S> {
        self
    }
}

impl<S: EventSet> IntoEvents<S> for Option<S> {
    fn into_events(self) -> Vec<S> {
        self.into_iter().collect()
    }
}

impl<S: EventSet> IntoEvents<S> for () {
    fn into_events(self) -> Vec<S> {
        Vec::new()
    }
}

/// Marks an event type as a member of the event set `S`; implemented by `#[derive(Events)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of the set `{S}`",
    label = "not a variant of `{S}`",
    note = "add a variant holding `{Self}` to the #[derive(Events)] enum `{S}`, or remove this handler"
)]
pub trait EventOf<S> {}

/// Decodes the payload of `T`'s own version, naming the path of a mismatching field.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    version: u32,
    payload: &str,
) -> Result<T, DecodeErrorKind> {
    // One decoder, the plain one: the path of a failure is found from its position, not by
    // a second, path-tracking decode of `T` (see `json_path`). A `match`, not `map_err`
    // with a closure: one function fewer per event type.
    match serde_json::from_str(payload) {
        Ok(value) => Ok(value),
        Err(source) => Err(payload_error(version, payload, source)),
    }
}

/// The error for a payload of `version`, `json`, that does not decode.
#[cold]
pub(crate) fn payload_error(
    version: u32,
    json: &str,
    source: serde_json::Error,
) -> DecodeErrorKind {
    DecodeErrorKind::Payload {
        version,
        path: crate::json_path::error_path(json, &source),
        source,
    }
}
