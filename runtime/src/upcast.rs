//! Events delivered in their newest version, so consumers in other languages never meet
//! a version they would have to upcast themselves.
//!
//! A store keeps every event as it was written: `ItemAdded` version 1 stays version 1 on
//! disk, and Rust reads it through the upcasts the `#[event]` attribute declares. A
//! consumer written against the generated contracts (TypeScript, Python) has no such
//! upcasts, and a retired version has no schema in the contracts at all. So whatever
//! factum delivers outside the process — the event bus (`bus::NatsPublisher::upcast`,
//! feature `nats`), and anything else that hands envelopes to other services — goes through an [`Upcaster`]:
//!
//! - an event already in its newest version is delivered exactly as stored, payload bytes
//!   included;
//! - an older one is decoded with its aggregate's event set (running the same upcasts the
//!   aggregate runs) and encoded again in the newest version; the envelope then says
//!   `schema_version` = the newest version and keeps the version on disk in
//!   [`RecordedEvent::stored_schema_version`];
//! - an event of a stream type the upcaster was not given is delivered as stored: it is
//!   another domain's, and the consumers of that domain decide what it means.
//!
//! An event of a known stream type that cannot be decoded (an unknown name, a version
//! newer than the code, a payload that does not match its version) is an
//! [`UpcastError`], never delivered half-read.
//!
//! ```
//! # use factum::prelude::*;
//! # use factum::upcast::Upcaster;
//! # #[event(name = "Opened", version = 2, upcast_json(from = 1, with = v1_to_v2))]
//! # pub struct Opened { pub owner: String }
//! # fn v1_to_v2(mut value: serde_json::Value) -> Result<serde_json::Value, No> {
//! #     Ok(serde_json::json!({ "owner": value["name"].take() }))
//! # }
//! # #[derive(Events)] pub enum AccountEvent { Opened(Opened) }
//! # #[command] pub struct Open { #[aggregate_id] pub id: String }
//! # #[derive(Commands)] pub enum AccountCommand { Open(Open) }
//! # #[derive(Debug, thiserror::Error)] #[error("no")] pub struct No;
//! # #[derive(Default)] pub struct Account;
//! # #[aggregate(events = AccountEvent, commands = AccountCommand, error = No)]
//! # impl Account {
//! #     #[handle] fn open(&self, _: Open) -> Result<Opened, No> { Ok(Opened { owner: "x".into() }) }
//! #     #[apply] fn opened(&mut self, _: &Opened) {}
//! # }
//! # fn stored_v1() -> RecordedEvent {
//! #     RecordedEvent {
//! #         event_id: factum::uuid::Uuid::now_v7(),
//! #         stream_id: "Account-1".into(),
//! #         stream_type: "Account".into(),
//! #         stream_version: 1,
//! #         position: 1,
//! #         name: "Opened".into(),
//! #         schema_version: 1,
//! #         stored_schema_version: None,
//! #         payload: serde_json::value::to_raw_value(&serde_json::json!({"name": "ada"})).unwrap(),
//! #         timestamp: factum::envelope::now(),
//! #         metadata: Default::default(),
//! #         tags: Vec::new(),
//! #     }
//! # }
//! let upcaster = Upcaster::new().aggregate::<Account>();
//! let delivered = upcaster.upcast(stored_v1()).unwrap();
//! assert_eq!(delivered.schema_version, 2);
//! assert_eq!(delivered.stored_schema_version, Some(1));
//! assert_eq!(delivered.payload.get(), r#"{"owner":"ada"}"#);
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::envelope::RecordedEvent;
use crate::error::{DecodeError, EncodeError};
use crate::event::EventSet;
use crate::registry::{EntryKind, Registry};

/// Reads a payload stored at any version and writes it in the newest: an event set's
/// `decode` followed by `encode`.
type Recode = fn(&str, u32, &str) -> Result<(u32, Box<RawValue>), RecodeError>;

/// The events of one stream type: the newest version of each name, and how to recode.
struct StreamType {
    newest: HashMap<String, u32>,
    recode: Recode,
}

/// Delivers recorded events in their newest version; see the [module docs](self).
#[derive(Default)]
pub struct Upcaster {
    stream_types: HashMap<String, StreamType>,
}

impl fmt::Debug for Upcaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.stream_types.keys().collect();
        names.sort();
        f.debug_struct("Upcaster")
            .field("stream_types", &names)
            .finish()
    }
}

impl Upcaster {
    /// An upcaster that knows no stream type yet: it delivers everything as stored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Upcasts the events of `A`'s streams (stream type [`Aggregate::NAME`]) with its
    /// event set.
    pub fn aggregate<A: Aggregate>(self) -> Self {
        self.events::<A::Events>(A::NAME)
    }

    /// Upcasts the events of streams of type `stream_type` with the event set `S`.
    pub fn events<S: EventSet>(mut self, stream_type: &str) -> Self {
        let mut builder = Registry::builder();
        S::register(&mut builder, None);
        let mut newest = HashMap::new();
        // An event set's registry never conflicts with itself; if it somehow did, the
        // recode path below still decides every event, only without the fast path.
        if let Ok(registry) = builder.build() {
            for entry in registry.entries() {
                if entry.kind == EntryKind::Event {
                    let version = newest.entry(entry.name.clone()).or_insert(entry.version);
                    *version = (*version).max(entry.version);
                }
            }
        }
        self.stream_types.insert(
            stream_type.to_owned(),
            StreamType {
                newest,
                recode: recode::<S>,
            },
        );
        self
    }

    /// Whether events of streams of this type are upcast (rather than delivered as
    /// stored, as another domain's).
    pub fn knows(&self, stream_type: &str) -> bool {
        self.stream_types.contains_key(stream_type)
    }

    /// `event` in its newest version (see the [module docs](self)).
    pub fn upcast(&self, event: RecordedEvent) -> Result<RecordedEvent, UpcastError> {
        Ok(match self.upcast_ref(&event)? {
            Cow::Borrowed(_) => event,
            Cow::Owned(upcast) => upcast,
        })
    }

    /// Like [`Upcaster::upcast`], for a borrowed event: the event itself when it is
    /// delivered as stored (nothing copied), a new one when it was upcast.
    pub fn upcast_ref<'e>(
        &self,
        event: &'e RecordedEvent,
    ) -> Result<Cow<'e, RecordedEvent>, UpcastError> {
        let Some(stream_type) = self.stream_types.get(&event.stream_type) else {
            return Ok(Cow::Borrowed(event));
        };
        if stream_type.newest.get(&event.name) == Some(&event.schema_version) {
            return Ok(Cow::Borrowed(event));
        }
        let (version, payload) =
            (stream_type.recode)(&event.name, event.schema_version, event.payload.get()).map_err(
                |source| UpcastError {
                    stream_id: event.stream_id.clone(),
                    stream_version: event.stream_version,
                    position: event.position,
                    event_id: event.event_id,
                    source: Box::new(source),
                },
            )?;
        if version == event.schema_version {
            return Ok(Cow::Borrowed(event));
        }
        Ok(Cow::Owned(RecordedEvent {
            // An event delivered upcast once keeps the version first read from disk.
            stored_schema_version: event.stored_schema_version.or(Some(event.schema_version)),
            schema_version: version,
            payload,
            ..event.clone()
        }))
    }
}

fn recode<S: EventSet>(
    name: &str,
    version: u32,
    payload: &str,
) -> Result<(u32, Box<RawValue>), RecodeError> {
    let event = S::decode(name, version, payload).map_err(RecodeError::Decode)?;
    let encoded = event.encode().map_err(RecodeError::Encode)?;
    Ok((encoded.schema_version, encoded.payload))
}

/// A stored event of a known stream type that cannot be delivered in its newest version.
#[derive(Debug, thiserror::Error)]
#[error(
    "stream `{stream_id}` version {stream_version} (position {position}, event {event_id}) cannot be delivered in its newest version"
)]
pub struct UpcastError {
    /// The stream.
    pub stream_id: String,
    /// The event's version in its stream.
    pub stream_version: u64,
    /// The event's global position.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// Why.
    #[source]
    pub source: Box<RecodeError>,
}

/// Why an event could not be read in one version and written in the newest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecodeError {
    /// The stored event does not decode with its stream type's event set.
    #[error(transparent)]
    Decode(DecodeError),
    /// The decoded event does not encode (a map with non-string keys, say).
    #[error(transparent)]
    Encode(EncodeError),
}
