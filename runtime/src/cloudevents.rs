//! CloudEvents 1.0: a recorded event as a CloudEvent in structured JSON mode, and files
//! of them (JSON Lines) exported from a store and imported into one.
//!
//! # The mapping
//!
//! | CloudEvents | from the envelope |
//! |---|---|
//! | `specversion` | `"1.0"` |
//! | `id` | the event id |
//! | `source` | the service, from [`CloudEvents::new`] (a URI-reference) |
//! | `type` | `<domain>.<stream type>.<event name>`, e.g. `shop.Order.OrderPlaced` |
//! | `subject` | the stream id |
//! | `time` | when it happened (RFC 3339, microseconds, UTC) |
//! | `datacontenttype` | `"application/json"` |
//! | `data` | the payload, as JSON |
//! | `eventversion` (extension) | the payload's schema version |
//! | `sequence` (extension) | the global position, zero-padded to 20 digits so it sorts as a string |
//! | `streamversion` (extension) | the version in the stream |
//! | `storedversion` (extension) | the version on disk, when the event is delivered upcast (see [`crate::upcast`]) |
//! | `correlationid`, `causationid`, `actor`, `actorkind`, `tenant`, `traceparent` (extensions) | the metadata's, when set |
//! | `factumextra` (extension) | the metadata's free-form entries, as a JSON string (extension values cannot be objects) |
//! | `factumtags` (extension) | the event's tags (see [`crate::tag`]), when it has any, as a JSON array of strings in a string |
//!
//! The integer extensions are CloudEvents Integers (signed 32-bit): an event whose schema
//! version or stream version does not fit is refused on export
//! ([`CloudEventError::OutOfRange`]) rather than written as something a consumer reads
//! differently.
//!
//! # Import
//!
//! [`CloudEvents::import_jsonl`] reads the whole file and checks every line first — the
//! CloudEvent, the store's [`limits`], the stream versions running on
//! from the stream's — so a bad line is an error naming its line and nothing is written.
//! Then each run of consecutive events of one stream is appended as one batch, at the
//! versions it carries, in the file's order: an export imported into an empty store
//! comes back with the same positions. An import runs again harmlessly: re-appending the
//! same event ids as the same batch is idempotent in every store. A store failure half
//! way ([`ImportError::Store`]) leaves the batches before it written; running the import
//! again after the cause is fixed completes it.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::envelope::{Metadata, NewEvent, RecordedEvent};
use crate::store::{EventStore, ExpectedVersion, StoreError, limits};
use crate::upcast::{UpcastError, Upcaster};

/// The media type of one CloudEvent in structured mode.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The media type of a batch of CloudEvents: a JSON array of structured events.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// The CloudEvents version written and read.
pub const SPEC_VERSION: &str = "1.0";
/// How wide the zero-padded `sequence` extension is: every `u64` fits.
const SEQUENCE_WIDTH: usize = 20;

/// Why an envelope or a CloudEvent cannot be mapped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudEventError {
    /// A required attribute is missing.
    #[error("the CloudEvent has no `{attribute}`")]
    Missing {
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute has the wrong type or an unreadable value.
    #[error("the CloudEvent's `{attribute}` is invalid: {reason}")]
    Invalid {
        /// The attribute.
        attribute: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An attribute (or the event, or its data) does not parse, or does not write.
    #[error("the CloudEvent's `{attribute}` is invalid (expected {expected})")]
    Unparsable {
        /// The attribute (`event` for the whole text, `data` for the payload).
        attribute: &'static str,
        /// What it should be.
        expected: &'static str,
        /// The parser's error.
        #[source]
        source: crate::error::BoxError,
    },
    /// The event's `type` belongs to another domain (or is not `<domain>.<aggregate>.<event>`).
    #[error("the CloudEvent's type `{found}` is not `{domain}.<aggregate>.<event>`")]
    NotOurs {
        /// The type found.
        found: String,
        /// The domain expected.
        domain: String,
    },
    /// A number does not fit a CloudEvents Integer (signed 32-bit).
    #[error(
        "`{attribute}` {value} does not fit a CloudEvents Integer (at most {})",
        i32::MAX
    )]
    OutOfRange {
        /// The attribute.
        attribute: &'static str,
        /// Its value.
        value: u64,
    },
    /// The source or domain given to [`CloudEvents::new`] cannot be used.
    #[error("invalid CloudEvents configuration: {0}")]
    Config(String),
}

/// Why a JSON Lines import wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A line is not a CloudEvent factum can import; nothing was written.
    #[error("line {line}: not importable; nothing was written")]
    Line {
        /// The line, counted from 1.
        line: usize,
        /// Why.
        #[source]
        source: LineError,
    },
    /// Reading the file failed; nothing was written.
    #[error("reading line {line} failed; nothing was written")]
    Read {
        /// The line, counted from 1.
        line: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store refused or failed an append. The batches before it were written; running
    /// the import again once the cause is fixed completes it (the written batches are
    /// taken again as the same batches).
    #[error("appending to stream `{stream_id}` failed")]
    Store {
        /// The stream.
        stream_id: String,
        /// What the store said.
        #[source]
        source: StoreError,
    },
}

/// What is wrong with one line of an import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Not a CloudEvent of this domain.
    #[error(transparent)]
    CloudEvent(#[from] CloudEventError),
    /// Beyond what the store keeps ([`limits`]).
    #[error(transparent)]
    Refused(StoreError),
    /// The stream version does not follow the stream's previous event (in the file or
    /// the store).
    #[error("stream `{stream_id}`: version {found} follows version {previous}")]
    OutOfOrder {
        /// The stream.
        stream_id: String,
        /// The version before it.
        previous: u64,
        /// Its version.
        found: u64,
    },
    /// The stream's type differs from the type of its earlier events.
    #[error("stream `{stream_id}` is of type `{expected}`, not `{found}`")]
    StreamType {
        /// The stream.
        stream_id: String,
        /// The type of its earlier events.
        expected: String,
        /// This event's.
        found: String,
    },
}

/// A CloudEvent read back: where it goes and what to append.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The stream id (`subject`).
    pub stream_id: String,
    /// The stream type (the aggregate in `type`).
    pub stream_type: String,
    /// The version in the stream (`streamversion`).
    pub stream_version: u64,
    /// The version the payload is stored with when the event was delivered upcast
    /// (`storedversion`). An import appends the payload as delivered, in `schema_version`.
    pub stored_schema_version: Option<u32>,
    /// The event.
    pub event: NewEvent,
}

/// What an import appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Events read from the file.
    pub events: usize,
    /// Streams appended to.
    pub streams: usize,
    /// Appends made: one per run of consecutive events of one stream, so the log keeps
    /// the file's order.
    pub batches: usize,
}

/// The CloudEvents mapping of one service: its `source` and the domain its event types
/// are named in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvents {
    source: String,
    domain: String,
}

fn name_part(what: &str, name: &str) -> Result<(), CloudEventError> {
    if name.is_empty() || name.contains('.') || name.chars().any(char::is_whitespace) {
        return Err(CloudEventError::Config(format!(
            "{what} `{name}` must be non-empty, without dots or spaces"
        )));
    }
    Ok(())
}

impl Default for CloudEvents {
    /// Source `urn:factum`, domain `factum`: what factum's command line and buses use
    /// when not told otherwise.
    fn default() -> Self {
        Self {
            source: "urn:factum".to_owned(),
            domain: "factum".to_owned(),
        }
    }
}

impl CloudEvents {
    /// The mapping for a service whose CloudEvents `source` is `source` (a
    /// URI-reference, e.g. `/services/orders` or `https://shop.example/orders`) and whose
    /// event types are named `<domain>.<aggregate>.<event>`.
    pub fn new(
        source: impl Into<String>,
        domain: impl Into<String>,
    ) -> Result<Self, CloudEventError> {
        let (source, domain) = (source.into(), domain.into());
        if source.is_empty() || source.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CloudEventError::Config(format!(
                "source `{source}` must be a non-empty URI-reference"
            )));
        }
        name_part("domain", &domain)?;
        Ok(Self { source, domain })
    }

    /// The CloudEvents `type` of an event.
    pub fn type_of(&self, stream_type: &str, name: &str) -> String {
        format!("{}.{stream_type}.{name}", self.domain)
    }

    /// The attributes of `event` (all but `data`), by name.
    fn attributes(&self, event: &RecordedEvent) -> Result<Map<String, Value>, CloudEventError> {
        let integer = |attribute: &'static str, value: u64| {
            i32::try_from(value)
                .map(Value::from)
                .map_err(|_| CloudEventError::OutOfRange { attribute, value })
        };
        let mut object = Map::new();
        object.insert("specversion".into(), json!(SPEC_VERSION));
        object.insert("id".into(), json!(event.event_id));
        object.insert("source".into(), json!(self.source));
        object.insert(
            "type".into(),
            json!(self.type_of(&event.stream_type, &event.name)),
        );
        object.insert("subject".into(), json!(event.stream_id));
        object.insert(
            "time".into(),
            json!(event.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        object.insert("datacontenttype".into(), json!("application/json"));
        object.insert(
            "eventversion".into(),
            integer("eventversion", u64::from(event.schema_version))?,
        );
        object.insert(
            "sequence".into(),
            json!(format!(
                "{:0width$}",
                event.position,
                width = SEQUENCE_WIDTH
            )),
        );
        object.insert(
            "streamversion".into(),
            integer("streamversion", event.stream_version)?,
        );
        if let Some(stored) = event.stored_schema_version {
            object.insert(
                "storedversion".into(),
                integer("storedversion", u64::from(stored))?,
            );
        }
        let metadata = &event.metadata;
        if let Some(correlation_id) = metadata.correlation_id {
            object.insert("correlationid".into(), json!(correlation_id));
        }
        if let Some(causation_id) = metadata.causation_id {
            object.insert("causationid".into(), json!(causation_id));
        }
        if let Some(actor) = &metadata.actor {
            object.insert("actor".into(), json!(actor));
        }
        if let Some(kind) = &metadata.actor_kind {
            object.insert("actorkind".into(), json!(kind));
        }
        if let Some(tenant) = &metadata.tenant {
            object.insert("tenant".into(), json!(tenant));
        }
        if let Some(traceparent) = &metadata.traceparent {
            object.insert(crate::trace::TRACEPARENT.into(), json!(traceparent));
        }
        if !metadata.extra.is_empty() {
            object.insert(
                "factumextra".into(),
                json!(serde_json::to_string(&metadata.extra).unwrap_or_default()),
            );
        }
        if !event.tags.is_empty() {
            object.insert(
                "factumtags".into(),
                json!(serde_json::to_string(&event.tags).unwrap_or_default()),
            );
        }
        Ok(object)
    }

    /// `event` as a CloudEvent in structured mode: one JSON object, its attributes in
    /// alphabetical order and `data` last, the payload's bytes as stored.
    pub fn to_structured(&self, event: &RecordedEvent) -> Result<String, CloudEventError> {
        structured_text(self.attributes(event)?, &event.payload)
    }

    /// `events` as a batch in structured mode ([`BATCH_CONTENT_TYPE`]): a JSON array of
    /// [`to_structured`](Self::to_structured) objects, in the order given, so a batch
    /// holds exactly what the single events would.
    pub fn to_batch(&self, events: &[RecordedEvent]) -> Result<String, CloudEventError> {
        let mut batch = String::from("[");
        for (index, event) in events.iter().enumerate() {
            if index > 0 {
                batch.push(',');
            }
            batch.push_str(&self.to_structured(event)?);
        }
        batch.push(']');
        Ok(batch)
    }

    /// `event` as a CloudEvent in binary mode (the NATS and HTTP bindings): every
    /// attribute as a `ce-` header (integers in decimal), `datacontenttype` as
    /// `content-type`, and the payload, as stored, as the body.
    pub fn to_binary<'e>(&self, event: &'e RecordedEvent) -> Result<Binary<'e>, CloudEventError> {
        let headers = self
            .attributes(event)?
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                if name == "datacontenttype" {
                    ("content-type".to_owned(), value)
                } else {
                    (format!("ce-{name}"), value)
                }
            })
            .collect();
        Ok(Binary {
            headers,
            data: &event.payload,
        })
    }

    /// Reads a structured-mode CloudEvent of this domain (JSON text) back into the
    /// stream it belongs to and the event to append; `data` keeps its bytes.
    pub fn from_structured(&self, text: &str) -> Result<Imported, CloudEventError> {
        #[derive(serde::Deserialize)]
        struct Data {
            data: Option<Box<RawValue>>,
        }
        let not_json = |error: serde_json::Error| CloudEventError::Unparsable {
            attribute: "event",
            expected: "a JSON object",
            source: Box::new(error),
        };
        let object: Map<String, Value> = serde_json::from_str(text).map_err(not_json)?;
        let Data { data } = serde_json::from_str(text).map_err(not_json)?;
        // `data: null` is a payload (a unit event's); no `data` at all is not.
        let payload = match data {
            Some(data) => data,
            None if object.contains_key("data") => RawValue::NULL.to_owned(),
            None => return Err(CloudEventError::Missing { attribute: "data" }),
        };
        parse(Some(&self.domain), &object, payload)
    }

    /// Reads a binary-mode CloudEvent — `header` gives a header's value by its
    /// (lower-case) name, `body` is the data — back into the recorded event, its
    /// position taken from `sequence`. Any domain is accepted: the consumer of a bus reads
    /// what the publisher sent.
    pub fn recorded_from_binary(
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<RecordedEvent, CloudEventError> {
        let mut object = Map::new();
        for name in ATTRIBUTES {
            let Some(value) = header(&format!("ce-{name}")) else {
                continue;
            };
            let value = if INTEGER_ATTRIBUTES.contains(name) {
                value.parse::<i64>().map(Value::from).map_err(|error| {
                    CloudEventError::Unparsable {
                        attribute: name,
                        expected: "an integer",
                        source: Box::new(error),
                    }
                })?
            } else {
                Value::String(value)
            };
            object.insert((*name).to_owned(), value);
        }
        if let Some(content_type) = header("content-type") {
            object.insert("datacontenttype".into(), Value::String(content_type));
        }
        let payload = std::str::from_utf8(body)
            .map_err(crate::error::BoxError::from)
            .and_then(|text| {
                RawValue::from_string(text.to_owned()).map_err(crate::error::BoxError::from)
            })
            .map_err(|source| CloudEventError::Unparsable {
                attribute: "data",
                expected: "JSON text",
                source,
            })?;
        let sequence =
            object
                .get("sequence")
                .and_then(Value::as_str)
                .ok_or(CloudEventError::Missing {
                    attribute: "sequence",
                })?;
        let position = sequence
            .parse::<u64>()
            .map_err(|error| CloudEventError::Unparsable {
                attribute: "sequence",
                expected: "a position",
                source: Box::new(error),
            })?;
        let imported = parse(None, &object, payload)?;
        Ok(RecordedEvent {
            event_id: imported.event.event_id,
            stream_id: imported.stream_id,
            stream_type: imported.stream_type,
            stream_version: imported.stream_version,
            position,
            name: imported.event.name,
            schema_version: imported.event.schema_version,
            stored_schema_version: imported.stored_schema_version,
            payload: imported.event.payload,
            timestamp: imported.event.timestamp,
            metadata: imported.event.metadata,
            tags: imported.event.tags,
        })
    }

    /// Writes every event of `store` after global position `after` to `out`, one
    /// structured CloudEvent per line (JSON Lines), in log order, as stored. Returns how
    /// many. An export read back by [`import_jsonl`](Self::import_jsonl) gives the same
    /// store; for consumers in other languages, export with
    /// [`export_jsonl_upcast`](Self::export_jsonl_upcast).
    pub async fn export_jsonl<S: EventStore>(
        &self,
        store: &S,
        after: u64,
        out: &mut impl Write,
    ) -> Result<u64, ExportError> {
        self.export_jsonl_upcast(store, after, &Upcaster::new(), out)
            .await
    }

    /// Like [`export_jsonl`](Self::export_jsonl), each event delivered in its newest
    /// version by `upcaster` (the version on disk in the `storedversion` extension), so
    /// consumers of the generated contracts never meet a retired version. Imported
    /// again, the events are stored in their newest version.
    pub async fn export_jsonl_upcast<S: EventStore>(
        &self,
        store: &S,
        after: u64,
        upcaster: &Upcaster,
        out: &mut impl Write,
    ) -> Result<u64, ExportError> {
        let mut position = after;
        let mut written = 0;
        loop {
            let page = store.read_all(position, 1000).await?;
            let Some(last) = page.last() else {
                return Ok(written);
            };
            position = last.position;
            for event in page {
                let event = upcaster.upcast(event).map_err(Box::new)?;
                let structured =
                    self.to_structured(&event)
                        .map_err(|source| ExportError::Event {
                            position: event.position,
                            source,
                        })?;
                out.write_all(structured.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(ExportError::Write)?;
                written += 1;
            }
        }
    }

    /// Appends the events of a JSON Lines file of CloudEvents (blank lines skipped) to
    /// `store`, checking every line before anything is written (see the [module
    /// documentation](self)).
    pub async fn import_jsonl<S: EventStore>(
        &self,
        store: &S,
        input: impl BufRead,
    ) -> Result<ImportReport, ImportError> {
        // Runs of consecutive events of one stream, in file order, each appended as one
        // batch: the log keeps the file's order (the positions of an export come back).
        let mut runs: Vec<(String, String, u64, Vec<NewEvent>)> = Vec::new();
        // Per stream: its type and the version of its last event so far.
        let mut streams: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let mut events = 0;
        for (number, line) in input.lines().enumerate() {
            let line_number = number + 1;
            let line = line.map_err(|source| ImportError::Read {
                line: line_number,
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |source: LineError| ImportError::Line {
                line: line_number,
                source,
            };
            let imported = self
                .from_structured(&line)
                .map_err(|error| bad(error.into()))?;
            let previous = match streams.get(&imported.stream_id) {
                Some((stream_type, last)) => {
                    if *stream_type != imported.stream_type {
                        return Err(bad(LineError::StreamType {
                            stream_id: imported.stream_id,
                            expected: stream_type.clone(),
                            found: imported.stream_type,
                        }));
                    }
                    *last
                }
                None => {
                    // The file may go on from the stored stream, or hold events the store
                    // has already (an import run again): the store then takes each batch
                    // as the same batch again. A gap is refused here, before any write.
                    let stored = store
                        .stream_version(&imported.stream_id)
                        .await
                        .map_err(|error| bad(LineError::Refused(error)))?
                        .unwrap_or(0);
                    let before = imported.stream_version - 1;
                    if before > stored {
                        return Err(bad(LineError::OutOfOrder {
                            stream_id: imported.stream_id,
                            previous: stored,
                            found: imported.stream_version,
                        }));
                    }
                    before
                }
            };
            if imported.stream_version != previous + 1 {
                return Err(bad(LineError::OutOfOrder {
                    stream_id: imported.stream_id,
                    previous,
                    found: imported.stream_version,
                }));
            }
            streams.insert(
                imported.stream_id.clone(),
                (imported.stream_type.clone(), imported.stream_version),
            );
            match runs.last_mut() {
                Some((stream_id, _, _, batch)) if *stream_id == imported.stream_id => {
                    batch.push(imported.event);
                }
                _ => runs.push((
                    imported.stream_id,
                    imported.stream_type,
                    previous,
                    vec![imported.event],
                )),
            }
            if let Some((stream_id, stream_type, _, batch)) = runs.last() {
                limits::check_append(stream_id, stream_type, batch)
                    .map_err(|error| bad(LineError::Refused(error)))?;
            }
            events += 1;
        }
        for (stream_id, stream_type, before, batch) in &runs {
            let expected = if *before == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(*before)
            };
            store
                .append(stream_id, stream_type, expected, batch.clone())
                .await
                .map_err(|source| ImportError::Store {
                    stream_id: stream_id.clone(),
                    source,
                })?;
        }
        Ok(ImportReport {
            events,
            streams: streams.len(),
            batches: runs.len(),
        })
    }
}

/// Every attribute factum writes (the context attributes and its extensions), `data` and
/// `datacontenttype` aside: in binary mode each is a `ce-<attribute>` header. Documents
/// describing the binary form (the generated AsyncAPI) are checked against this list.
pub const ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "eventversion",
    "sequence",
    "streamversion",
    "storedversion",
    "correlationid",
    "causationid",
    "actor",
    "actorkind",
    "tenant",
    "traceparent",
    "factumextra",
    "factumtags",
];
/// The attributes that are CloudEvents Integers.
const INTEGER_ATTRIBUTES: &[&str] = &["eventversion", "streamversion", "storedversion"];

/// A CloudEvent in binary mode: the headers and the body.
#[derive(Debug, Clone)]
pub struct Binary<'e> {
    /// `ce-<attribute>` and `content-type` headers, with their values.
    pub headers: Vec<(String, String)>,
    /// The body: the event's payload, as stored.
    pub data: &'e RawValue,
}

/// One structured CloudEvent's text: the attributes, then `data` with its bytes.
fn structured_text(
    attributes: Map<String, Value>,
    data: &RawValue,
) -> Result<String, CloudEventError> {
    #[derive(serde::Serialize)]
    struct Structured<'a> {
        #[serde(flatten)]
        attributes: Map<String, Value>,
        data: &'a RawValue,
    }
    serde_json::to_string(&Structured { attributes, data }).map_err(|error| {
        CloudEventError::Unparsable {
            attribute: "data",
            expected: "JSON it can write",
            source: Box::new(error),
        }
    })
}

/// Reads the attributes of a CloudEvent (of `domain`, or of any when `None`) and its
/// payload back into the stream it belongs to and the event to append.
fn parse(
    domain: Option<&str>,
    object: &Map<String, Value>,
    payload: Box<RawValue>,
) -> Result<Imported, CloudEventError> {
    let text = |attribute: &'static str| -> Result<&str, CloudEventError> {
        match object.get(attribute) {
            None | Some(Value::Null) => Err(CloudEventError::Missing { attribute }),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(CloudEventError::Invalid {
                attribute,
                reason: format!("expected a string, found {other}"),
            }),
        }
    };
    let optional_text = |attribute: &'static str| match text(attribute) {
        Err(CloudEventError::Missing { .. }) => Ok(None),
        other => other.map(Some),
    };
    let uuid = |attribute: &'static str, text: &str| {
        Uuid::parse_str(text).map_err(|error| CloudEventError::Unparsable {
            attribute,
            expected: "a UUID",
            source: Box::new(error),
        })
    };
    let integer = |attribute: &'static str| -> Result<u64, CloudEventError> {
        let value = object
            .get(attribute)
            .ok_or(CloudEventError::Missing { attribute })?;
        value
            .as_i64()
            .filter(|number| (1..=i64::from(i32::MAX)).contains(number))
            .and_then(|number| u64::try_from(number).ok())
            .ok_or_else(|| CloudEventError::Invalid {
                attribute,
                reason: format!("expected an integer from 1 to {}, found {value}", i32::MAX),
            })
    };

    let spec = text("specversion")?;
    if spec != SPEC_VERSION {
        return Err(CloudEventError::Invalid {
            attribute: "specversion",
            reason: format!("expected `{SPEC_VERSION}`, found `{spec}`"),
        });
    }
    let event_id = uuid("id", text("id")?)?;
    text("source")?;
    let kind = text("type")?;
    let not_ours = || CloudEventError::NotOurs {
        found: kind.to_owned(),
        domain: domain.unwrap_or("<domain>").to_owned(),
    };
    let rest = match domain {
        Some(domain) => kind
            .strip_prefix(domain)
            .and_then(|rest| rest.strip_prefix('.')),
        None => kind.split_once('.').map(|(_, rest)| rest),
    };
    let (stream_type, name) = rest
        .and_then(|rest| rest.split_once('.'))
        .filter(|(aggregate, name)| {
            !aggregate.is_empty() && !name.is_empty() && !name.contains('.')
        })
        .ok_or_else(not_ours)?;
    let stream_id = text("subject")?;
    let time = text("time")?;
    let timestamp = DateTime::parse_from_rfc3339(time)
        .map_err(|error| CloudEventError::Unparsable {
            attribute: "time",
            expected: "an RFC 3339 time",
            source: Box::new(error),
        })?
        .with_timezone(&Utc);
    if let Some(content_type) = optional_text("datacontenttype")?
        && content_type != "application/json"
    {
        return Err(CloudEventError::Invalid {
            attribute: "datacontenttype",
            reason: format!("expected `application/json`, found `{content_type}`"),
        });
    }
    let schema_version = u32::try_from(integer("eventversion")?).unwrap_or(u32::MAX);
    let stream_version = integer("streamversion")?;
    let stored_schema_version = match object.get("storedversion") {
        None => None,
        Some(_) => Some(u32::try_from(integer("storedversion")?).unwrap_or(u32::MAX)),
    };
    let extra = match optional_text("factumextra")? {
        None => BTreeMap::new(),
        Some(extra) => {
            serde_json::from_str(extra).map_err(|error| CloudEventError::Unparsable {
                attribute: "factumextra",
                expected: "a JSON object in a string",
                source: Box::new(error),
            })?
        }
    };
    let tags: Vec<crate::tag::Tag> = match optional_text("factumtags")? {
        None => Vec::new(),
        Some(tags) => serde_json::from_str(tags).map_err(|error| CloudEventError::Unparsable {
            attribute: "factumtags",
            expected: "a JSON array of `key:value` strings in a string",
            source: Box::new(error),
        })?,
    };
    let metadata = Metadata {
        correlation_id: optional_text("correlationid")?
            .map(|text| uuid("correlationid", text))
            .transpose()?,
        causation_id: optional_text("causationid")?
            .map(|text| uuid("causationid", text))
            .transpose()?,
        actor: optional_text("actor")?.map(str::to_owned),
        actor_kind: optional_text("actorkind")?.map(str::to_owned),
        tenant: optional_text("tenant")?.map(str::to_owned),
        traceparent: optional_text(crate::trace::TRACEPARENT)?.map(str::to_owned),
        extra,
    };
    Ok(Imported {
        stream_id: stream_id.to_owned(),
        stream_type: stream_type.to_owned(),
        stream_version,
        stored_schema_version,
        event: NewEvent {
            event_id,
            name: name.to_owned(),
            schema_version,
            payload,
            timestamp,
            metadata,
            tags,
        },
    })
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error("reading the store failed")]
    Store(#[from] StoreError),
    /// An event cannot be read in its newest version.
    #[error("an event cannot be exported in its newest version")]
    Upcast(#[from] Box<UpcastError>),
    /// An event cannot be written as a CloudEvent.
    #[error("the event at position {position} cannot be exported")]
    Event {
        /// Its position.
        position: u64,
        /// Why.
        #[source]
        source: CloudEventError,
    },
    /// Writing failed.
    #[error("writing the export failed")]
    Write(#[source] std::io::Error),
}
