//! The API of generated code. Not public: it changes without notice.

pub use ::chrono;
pub use ::core;
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
pub use ::std;

pub use crate::aggregate::{Aggregate, Apply, Handle};
pub use crate::command::{Command, CommandDecodeError, CommandOf, CommandSet, decode_command};
pub use crate::context::CommandContext;
pub use crate::envelope::RecordedEvent;
pub use crate::error::{BoxError, DecodeError, DecodeErrorKind, EncodeError};
pub use crate::event::{EncodedEvent, Event, EventOf, EventSet, IntoEvents};
pub use crate::projection::{Projection, ProjectionError, Reactor, Recorded};
pub use crate::registry::{RegistryBuilder, UpcastPath};

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// Decodes the payload of a type's own version.
#[inline]
pub fn decode_payload<T: DeserializeOwned>(
    version: u32,
    payload: &RawValue,
) -> Result<T, DecodeErrorKind> {
    crate::event::decode_payload(version, payload)
}

/// Decodes an older version through the previous type and converts it with `TryFrom`
/// (which every `From` conversion also provides).
#[inline]
pub fn upcast_typed<P, T>(version: u32, payload: &RawValue) -> Result<T, DecodeErrorKind>
where
    P: Event,
    T: Event + TryFrom<P>,
    <T as TryFrom<P>>::Error: Into<BoxError>,
{
    let previous = P::decode_version(version, payload)?;
    T::try_from(previous).map_err(|error| DecodeErrorKind::Upcast {
        from: P::VERSION,
        to: T::VERSION,
        source: error.into(),
    })
}

/// One JSON upcast step: turns a payload of version `from` into one of version `from + 1`.
pub type JsonStep = fn(Value) -> Result<Value, BoxError>;

/// Runs a user's JSON upcast function, boxing its error.
#[inline]
pub fn json_step<F, E>(upcast: F, payload: Value) -> Result<Value, BoxError>
where
    F: FnOnce(Value) -> Result<Value, E>,
    E: Into<BoxError>,
{
    upcast(payload).map_err(Into::into)
}

/// Decodes a retired version through consecutive JSON upcast steps, each given as
/// `(from_version, step)`, ending at `newest`, the version of `T`.
pub fn upcast_json<T: DeserializeOwned>(
    version: u32,
    payload: &RawValue,
    newest: u32,
    steps: &[(u32, JsonStep)],
) -> Result<T, DecodeErrorKind> {
    let oldest = steps.first().map_or(newest, |(from, _)| *from);
    if version < oldest {
        return Err(DecodeErrorKind::NoUpcastPath { oldest });
    }
    let mut value: Value =
        serde_json::from_str(payload.get()).map_err(|error| DecodeErrorKind::Payload {
            version,
            path: ".".to_owned(),
            message: error.to_string(),
        })?;
    for (from, step) in steps.iter().filter(|(from, _)| *from >= version) {
        value = step(value).map_err(|source| DecodeErrorKind::Upcast {
            from: *from,
            to: from + 1,
            source,
        })?;
    }
    serde_path_to_error::deserialize(value).map_err(|error| DecodeErrorKind::Payload {
        version: newest,
        path: error.path().to_string(),
        message: error.into_inner().to_string(),
    })
}

/// Encodes an event of a set.
#[inline]
pub fn encode<E: Event>(event: &E) -> Result<EncodedEvent, EncodeError> {
    serde_json::value::to_raw_value(event)
        .map(|payload| EncodedEvent {
            name: E::NAME,
            schema_version: E::VERSION,
            payload,
        })
        .map_err(|source| EncodeError {
            event: E::NAME,
            source,
        })
}

/// Decodes a stored event as the member `E` of a set and wraps it in its variant.
#[inline]
pub fn decode_member<E: Event, S>(
    version: u32,
    payload: &RawValue,
    variant: fn(E) -> S,
) -> Result<S, DecodeError> {
    match E::decode_version(version, payload) {
        Ok(event) => Ok(variant(event)),
        Err(kind) => Err(DecodeError {
            event: E::NAME.to_owned(),
            schema_version: version,
            kind,
        }),
    }
}

/// The error for a stored name that no member of a set carries.
#[cold]
pub fn unknown_event(set: &'static str, name: &str, version: u32) -> DecodeError {
    DecodeError {
        event: name.to_owned(),
        schema_version: version,
        kind: DecodeErrorKind::UnknownEvent { set },
    }
}

/// Decodes a recorded event for the `#[on]` handler taking `E`, through every upcast from
/// its stored version; a failure names the stream, its version and position, the event
/// and its schema version.
#[inline]
pub fn decode_recorded<E: Event>(record: &RecordedEvent) -> Result<E, ProjectionError> {
    E::decode_version(record.schema_version, &record.payload)
        .map_err(|kind| undecodable_record(record, kind))
}

#[cold]
fn undecodable_record(record: &RecordedEvent, kind: DecodeErrorKind) -> ProjectionError {
    ProjectionError::from(crate::repository::RecordDecodeError {
        stream_id: record.stream_id.clone(),
        stream_version: record.stream_version,
        position: record.position,
        source: Box::new(DecodeError {
            event: record.name.clone(),
            schema_version: record.schema_version,
            kind,
        }),
    })
}

/// The future of an `#[on]` or `#[setup]` method, which the runner sends between
/// threads; called at the method's name, so a future that is not `Send` is reported there.
#[inline(always)]
pub fn send_future<F: core::future::Future + Send>(future: F) -> F {
    future
}

/// The events a `#[handle]` method returned, as events of its aggregate's set.
#[inline]
pub fn events_of<A, R>(returned: R) -> Vec<A::Events>
where
    A: Aggregate,
    R: IntoEvents<A::Events>,
{
    returned.into_events()
}

/// The error a `#[handle]` method returned, as its aggregate's error.
#[inline]
pub fn error_of<A, E>(returned: E) -> A::Error
where
    A: Aggregate,
    E: Into<A::Error>,
{
    returned.into()
}

/// Wraps each event of an `Option` or `Vec` in its set's variant.
#[inline]
pub fn collect_events<I, E, S>(events: I, variant: fn(E) -> S) -> Vec<S>
where
    I: IntoIterator<Item = E>,
{
    events.into_iter().map(variant).collect()
}

/// Compiles only when `E` is an event of the set `S`.
#[inline(always)]
pub const fn assert_event_of<S, E: EventOf<S>>() {}

/// Compiles only when `C` is a command of the set `S`.
#[inline(always)]
pub const fn assert_command_of<S, C: CommandOf<S>>() {}

/// Compiles only when `T` is an event (for `ignore_events`).
#[inline(always)]
pub const fn assert_event<T: Event>() {}

/// String equality usable in constant evaluation.
pub const fn str_eq(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// Whether `names[index]` repeats an earlier entry of `names`.
pub const fn repeats_earlier(names: &[&str], index: usize) -> bool {
    let mut earlier = 0;
    while earlier < index {
        if str_eq(names[earlier], names[index]) {
            return true;
        }
        earlier += 1;
    }
    false
}
