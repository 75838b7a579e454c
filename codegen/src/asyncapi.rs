//! An AsyncAPI 3.0.0 document generated from a domain's schema registry.
//!
//! [`asyncapi`] reads the registry as JSON (the serialised `factum::registry::Registry`:
//! `{"entries": [{"kind", "name", "version", "aggregates", "doc", "schema", ...}]}`), like
//! [`typescript`](crate::typescript), and returns one deterministic AsyncAPI document
//! (every object's keys sorted):
//!
//! * **Channels and addressing.** One channel per stream type (aggregate), keyed by the
//!   aggregate name with a lower-case first letter (`Order` → `order`), at the address
//!   `factum.events.<stream type>` (`factum.events.Order`): a broker adapter publishes every
//!   event of a stream type to that one topic / subject / routing key, in stream order. Its
//!   messages are every event version of the aggregate. Commands get a second channel per
//!   aggregate, `<key>Commands` (`orderCommands`) at `factum.commands.<stream type>`.
//! * **Operations.** The service *sends* events: `send<Aggregate>Events`
//!   (`sendOrderEvents`, action `send`) on the events channel; it *receives* commands:
//!   `receive<Aggregate>Commands` (action `receive`) on the commands channel.
//! * **Messages** live in `components.messages`, keyed `OrderPlacedV2` for event versions
//!   and `PlaceOrder` for commands, and channels and operations refer to them. Each has
//!   `name` (the key), `title` (`OrderPlaced v2`), `summary` (the doc comment's first line)
//!   and `description` (the whole doc comment, when longer), `contentType`
//!   `application/json`, the payload schema, and an `x-factum` extension with the kind, name
//!   and version. An event's `headers` are the envelope's fields but its payload, read
//!   from the registry document's `envelope` (the JSON Schema of
//!   `factum::envelope::RecordedEvent` as the Rust serializer writes it: `event_id`,
//!   `stream_id`, `stream_type`, `stream_version`, `position`, `name`, `schema_version`,
//!   `timestamp`, `metadata`): the shared `components.schemas.EventHeaders` (with
//!   `EnvelopeMetadata` beside it), narrowed per message to its constant name and version
//!   and its aggregates' `stream_type`s; `correlationId` points at
//!   `$message.header#/metadata/correlation_id`. Commands have no headers.
//! * Entries without an aggregate are still in `components.messages`, on no channel.
//!
//! **Schema format.** The registry's schemas are JSON Schema draft 2020-12. AsyncAPI 3.0
//! does not list draft 2020-12 among its schema formats: tools MUST support only the
//! AsyncAPI Schema Object (a superset of draft-07, the default format) and
//! `application/schema+json;version=draft-07`, and the official specification JSON Schema
//! validates payloads against draft-07. A multi-format object declaring draft 2020-12 would
//! pass the specification's JSON Schema (any string is allowed there) but no mainstream
//! tool would read it. So the payloads are converted to the default format (draft-07
//! semantics), without a `schemaFormat` wrapper, because a `$ref` from a draft-07
//! multi-format schema into `components.schemas` (Schema Objects) would cross formats,
//! which the specification forbids, and `$ref`s resolve against the whole AsyncAPI
//! document, so a definitions section inside the payload would not be reachable as
//! `#/definitions/...`. The conversion:
//!
//! * root `$defs` move to `components.schemas` (shared between entries) and
//!   `#/$defs/X` becomes `#/components/schemas/X`;
//! * a `$ref` with sibling keywords (draft-07 ignores them) becomes
//!   `{"allOf": [{"$ref": ...}], ...siblings}`;
//! * `prefixItems` becomes array-form `items`, and the 2020-12 `items` next to it becomes
//!   `additionalItems`; `dependentRequired` and `dependentSchemas` become `dependencies`;
//! * `$schema` is dropped;
//! * keywords without a draft-07 equivalent (`unevaluatedProperties`, `unevaluatedItems`,
//!   `$dynamicRef`, `$anchor`, `minContains`, ..., nested `$defs`, references outside
//!   `#/$defs/`) are refused with [`AsyncApiError::Unsupported`].
//!
//! Two definitions with the same name and different shapes are refused with
//! [`AsyncApiError::NameCollision`] rather than suffixed, so names never depend on
//! registration order.
//!
//! ```
//! use factum_codegen::asyncapi::{asyncapi, AsyncApiInfo};
//! use serde_json::json;
//!
//! let registry = json!({"envelope": factum::envelope::envelope_schema(), "entries": [{
//!     "kind": "event", "name": "Opened", "version": 1, "aggregates": ["Account"],
//!     "doc": "An account was opened.",
//!     "schema": {"type": "object", "properties": {"owner": {"type": "string"}}}
//! }]});
//! let info = AsyncApiInfo {
//!     title: "Accounts".to_owned(),
//!     version: "1.0.0".to_owned(),
//!     description: String::new(),
//! };
//! let document = asyncapi(&registry, &info).unwrap();
//! assert_eq!(document["asyncapi"], "3.0.0");
//! assert_eq!(document["channels"]["account"]["address"], "factum.events.Account");
//! assert_eq!(
//!     document["channels"]["account"]["messages"]["OpenedV1"]["$ref"],
//!     "#/components/messages/OpenedV1"
//! );
//! assert_eq!(document["operations"]["sendAccountEvents"]["action"], "send");
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::{self, Entry, Kind, from_model_error, pointer_escape};

/// The document's `info` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncApiInfo {
    /// The application's title.
    pub title: String,
    /// The version of the API (not of AsyncAPI).
    pub version: String,
    /// A description (CommonMark); omitted when empty.
    pub description: String,
}

/// Why no AsyncAPI document could be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AsyncApiError {
    /// The input is not a serialised registry.
    #[error("the registry JSON is malformed at {path}: {message}")]
    MalformedRegistry {
        /// Where in the registry JSON.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A schema uses a construct without a draft-07 equivalent.
    #[error("{entry}: unsupported schema construct at {path}: {construct}")]
    Unsupported {
        /// The entry, e.g. `event OrderPlaced v2` or `command PlaceOrder`.
        entry: String,
        /// The JSON pointer inside the entry's schema.
        path: String,
        /// What was found.
        construct: String,
    },
    /// Two different things would get the same name in the document.
    #[error(
        "two different shapes are named `{name}` (from {first} and {second}): rename one of the Rust types"
    )]
    NameCollision {
        /// The name (a component, channel or operation key).
        name: String,
        /// What defined it first.
        first: String,
        /// What defined the other one.
        second: String,
    },
    /// A name is not usable as an AsyncAPI component key (`^[\w\d.\-_]+$`).
    #[error("{entry}: `{name}` is not a valid AsyncAPI component key")]
    InvalidName {
        /// The entry.
        entry: String,
        /// The name.
        name: String,
    },
}

from_model_error!(AsyncApiError);

/// The AsyncAPI version emitted.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The schema holding the envelope headers every event message carries.
const EVENT_HEADERS: &str = "EventHeaders";

/// Generates the AsyncAPI 3.0.0 document for a serialised registry.
///
/// The output depends only on the registry's content and `info`: entries are sorted by
/// kind, name and version, and every object's keys are sorted.
pub fn asyncapi(registry_json: &Value, info: &AsyncApiInfo) -> Result<Value, AsyncApiError> {
    let entries = model::parse_entries(registry_json, true)?;
    let mut schemas = Named::default();
    let envelope = Envelope::read(registry_json, &mut schemas)?;
    let mut messages = Named::default();
    // Aggregate -> (event message keys, command message keys).
    let mut aggregates: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for entry in &entries {
        let label = entry.label();
        let converter = Converter { entry: &label };
        let root = entry
            .schema
            .as_object()
            .ok_or_else(|| converter.unsupported("", "a root schema that is not an object"))?;
        if let Some(defs) = root.get("$defs") {
            let defs = defs
                .as_object()
                .ok_or_else(|| converter.unsupported("/$defs", "`$defs` that is not an object"))?;
            for (name, schema) in defs {
                check_key(&label, name)?;
                let path = format!("/$defs/{}", pointer_escape(name));
                let converted = converter.convert(schema, &path)?;
                schemas.insert(name, converted, &label)?;
            }
        }
        let mut payload = Map::new();
        for (keyword, value) in root {
            if keyword != "$defs" {
                payload.insert(keyword.clone(), value.clone());
            }
        }
        let payload = converter.convert(&Value::Object(payload), "")?;
        let key = entry.type_name();
        check_key(&label, &key)?;
        messages.insert(&key, entry.message(&key, payload, &envelope), &label)?;
        for aggregate in &entry.aggregates {
            let lists = aggregates.entry(aggregate.clone()).or_default();
            match entry.kind {
                Kind::Event => lists.0.push(key.clone()),
                Kind::Command => lists.1.push(key.clone()),
            }
        }
    }

    let mut channels = Named::default();
    let mut operations = Named::default();
    for (aggregate, (events, commands)) in &aggregates {
        let origin = format!("aggregate {aggregate}");
        check_key(&origin, aggregate)?;
        let key = lower_first(aggregate);
        let upper = upper_first(aggregate);
        for (channel_key, keys, kind) in [
            (key.clone(), events, Kind::Event),
            (format!("{key}Commands"), commands, Kind::Command),
        ] {
            if keys.is_empty() {
                continue;
            }
            let channel_messages: Map<String, Value> = keys
                .iter()
                .map(|message| {
                    (
                        message.clone(),
                        json!({"$ref": format!("#/components/messages/{message}")}),
                    )
                })
                .collect();
            let operation_messages: Vec<Value> = keys
                .iter()
                .map(|message| {
                    json!({"$ref": format!("#/channels/{channel_key}/messages/{message}")})
                })
                .collect();
            let (address, channel_doc, operation_key, operation) = match kind {
                Kind::Event => (
                    format!("factum.events.{aggregate}"),
                    format!(
                        "Every event of `{aggregate}` streams, in stream order; the stream is \
                         in the `stream_id` header."
                    ),
                    format!("send{upper}Events"),
                    json!({
                        "action": "send",
                        "summary": format!("The service publishes the events it records for `{aggregate}` streams."),
                    }),
                ),
                Kind::Command => (
                    format!("factum.commands.{aggregate}"),
                    format!("The commands the `{aggregate}` aggregate accepts."),
                    format!("receive{upper}Commands"),
                    json!({
                        "action": "receive",
                        "summary": format!("The service handles commands for `{aggregate}`."),
                    }),
                ),
            };
            let mut operation = operation;
            operation["channel"] = json!({"$ref": format!("#/channels/{channel_key}")});
            operation["messages"] = Value::Array(operation_messages);
            channels.insert(
                &channel_key,
                json!({
                    "address": address,
                    "title": match kind {
                        Kind::Event => format!("{aggregate} events"),
                        Kind::Command => format!("{aggregate} commands"),
                    },
                    "description": channel_doc,
                    "messages": channel_messages,
                }),
                &origin,
            )?;
            operations.insert(&operation_key, operation, &origin)?;
        }
    }

    let mut info_object = json!({"title": info.title, "version": info.version});
    if !info.description.trim().is_empty() {
        info_object["description"] = json!(info.description);
    }
    let document = json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": info_object,
        "defaultContentType": "application/json",
        "channels": channels.into_map(),
        "operations": operations.into_map(),
        "components": {
            "messages": messages.into_map(),
            "schemas": schemas.into_map(),
        },
    });
    Ok(sorted(document))
}

/// The envelope as the registry document defines it: its header schema is
/// `components.schemas.EventHeaders`, its definitions are components too.
struct Envelope {
    /// The properties holding the event name and version.
    name: String,
    version: String,
}

impl Envelope {
    /// Reads the registry's envelope, adding `EventHeaders` (the envelope without its
    /// payload) and the envelope's definitions to `schemas`.
    fn read(registry_json: &Value, schemas: &mut Named) -> Result<Self, AsyncApiError> {
        let schema = model::envelope_schema(registry_json)?;
        let name = model::role_property(schema, "name")?.to_owned();
        let version = model::role_property(schema, "version")?.to_owned();
        let payload = model::role_property(schema, "payload")?;
        let converter = Converter {
            entry: model::ENVELOPE_ORIGIN,
        };
        if let Some(Value::Object(defs)) = schema.get("$defs") {
            for (def, def_schema) in defs {
                check_key(model::ENVELOPE_ORIGIN, def)?;
                let path = format!("/$defs/{}", pointer_escape(def));
                let converted = converter.convert(def_schema, &path)?;
                schemas.insert(def, converted, model::ENVELOPE_ORIGIN)?;
            }
        }
        let mut headers = schema.clone();
        for keyword in ["$defs", "$schema", "title"] {
            headers.remove(keyword);
        }
        if let Some(Value::Object(properties)) = headers.get_mut("properties") {
            properties.remove(payload);
        }
        if let Some(Value::Array(required)) = headers.get_mut("required") {
            required.retain(|item| item != payload);
        }
        headers.insert(
            "description".to_owned(),
            json!(format!(
                "The envelope of a stored event: every field besides `{payload}`. {}",
                model::description(&Value::Object(schema.clone()))
            )),
        );
        let headers = converter.convert(&Value::Object(headers), "")?;
        schemas.insert(EVENT_HEADERS, headers, model::ENVELOPE_ORIGIN)?;
        Ok(Self { name, version })
    }
}

impl Entry {
    fn message(&self, key: &str, payload: Value, envelope: &Envelope) -> Value {
        let mut message = json!({
            "name": key,
            "contentType": "application/json",
            "payload": payload,
        });
        let doc = self.doc.trim();
        if let Some(first) = doc.lines().next() {
            message["summary"] = json!(first.trim());
            if doc.lines().nth(1).is_some() {
                message["description"] = json!(doc);
            }
        }
        match self.kind {
            Kind::Event => {
                message["title"] = json!(format!("{} v{}", self.name, self.version));
                message["x-factum"] =
                    json!({"kind": "event", "name": self.name, "version": self.version});
                let mut narrowed = Map::new();
                narrowed.insert(envelope.name.clone(), json!({"const": self.name}));
                narrowed.insert(envelope.version.clone(), json!({"const": self.version}));
                let mut narrowed = Value::Object(narrowed);
                if !self.aggregates.is_empty() {
                    narrowed["stream_type"] = json!({"enum": self.aggregates});
                }
                message["headers"] = json!({
                    "allOf": [{"$ref": format!("#/components/schemas/{EVENT_HEADERS}")}],
                    "properties": narrowed,
                });
                message["correlationId"] = json!({
                    "description": "Groups every message of one business transaction.",
                    "location": "$message.header#/metadata/correlation_id",
                });
            }
            Kind::Command => {
                message["title"] = json!(self.name);
                message["x-factum"] = json!({"kind": "command", "name": self.name, "version": 1});
            }
        }
        message
    }
}

/// AsyncAPI's component key pattern, `^[\w\d\.\-_]+$`.
fn is_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_key(entry: &str, name: &str) -> Result<(), AsyncApiError> {
    if is_key(name) {
        Ok(())
    } else {
        Err(AsyncApiError::InvalidName {
            entry: entry.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// Named things of one document section, refusing two different values under one name.
#[derive(Default)]
struct Named {
    values: BTreeMap<String, (Value, String)>,
}

impl Named {
    fn insert(&mut self, name: &str, value: Value, origin: &str) -> Result<(), AsyncApiError> {
        match self.values.get(name) {
            Some((existing, _)) if *existing == value => Ok(()),
            Some((_, first)) => Err(AsyncApiError::NameCollision {
                name: name.to_owned(),
                first: first.clone(),
                second: origin.to_owned(),
            }),
            None => {
                self.values
                    .insert(name.to_owned(), (value, origin.to_owned()));
                Ok(())
            }
        }
    }

    fn into_map(self) -> Map<String, Value> {
        self.values
            .into_iter()
            .map(|(name, (value, _))| (name, value))
            .collect()
    }
}

/// Keywords of draft 2020-12 without a draft-07 equivalent.
const UNSUPPORTED: &[&str] = &[
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$anchor",
    "$vocabulary",
    "minContains",
    "maxContains",
    "contentSchema",
];

/// Keywords whose value is one subschema.
const ONE_SCHEMA: &[&str] = &[
    "additionalProperties",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
];

/// Keywords whose value is a list of subschemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf"];

/// Keywords whose value maps names to subschemas.
const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties"];

struct Converter<'a> {
    entry: &'a str,
}

impl Converter<'_> {
    fn unsupported(&self, path: &str, construct: impl Into<String>) -> AsyncApiError {
        AsyncApiError::Unsupported {
            entry: self.entry.to_owned(),
            path: path.to_owned(),
            construct: construct.into(),
        }
    }

    /// Converts a draft 2020-12 schema to an AsyncAPI Schema Object (draft-07).
    fn convert(&self, schema: &Value, path: &str) -> Result<Value, AsyncApiError> {
        let object = match schema {
            Value::Bool(_) => return Ok(schema.clone()),
            Value::Object(object) => object,
            _ => return Err(self.unsupported(path, "a schema that is not an object or boolean")),
        };
        let mut out = Map::new();
        let mut reference = None;
        let mut dependencies = Map::new();
        for (keyword, value) in object {
            let at = format!("{path}/{}", pointer_escape(keyword));
            match keyword.as_str() {
                "$schema" => {}
                "$defs" | "definitions" => {
                    return Err(self.unsupported(&at, "definitions below the root schema"));
                }
                "$ref" => {
                    let target = value
                        .as_str()
                        .ok_or_else(|| self.unsupported(&at, "a `$ref` that is not a string"))?;
                    let name = target
                        .strip_prefix("#/$defs/")
                        .filter(|name| !name.contains('/') && is_key(name))
                        .ok_or_else(|| {
                            self.unsupported(&at, format!("a reference to `{target}`"))
                        })?;
                    reference = Some(json!({"$ref": format!("#/components/schemas/{name}")}));
                }
                "prefixItems" => {
                    let items = value
                        .as_array()
                        .ok_or_else(|| self.unsupported(&at, "`prefixItems` that is not a list"))?;
                    let items = items
                        .iter()
                        .enumerate()
                        .map(|(index, item)| self.convert(item, &format!("{at}/{index}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.insert("items".to_owned(), Value::Array(items));
                }
                "items" => {
                    let converted = self.convert(value, &at)?;
                    let target = if object.contains_key("prefixItems") {
                        "additionalItems"
                    } else {
                        "items"
                    };
                    out.insert(target.to_owned(), converted);
                }
                "dependentRequired" => {
                    let map = value.as_object().ok_or_else(|| {
                        self.unsupported(&at, "`dependentRequired` that is not an object")
                    })?;
                    for (name, required) in map {
                        dependencies.insert(name.clone(), required.clone());
                    }
                }
                "dependentSchemas" => {
                    let map = value.as_object().ok_or_else(|| {
                        self.unsupported(&at, "`dependentSchemas` that is not an object")
                    })?;
                    for (name, schema) in map {
                        let converted =
                            self.convert(schema, &format!("{at}/{}", pointer_escape(name)))?;
                        dependencies.insert(name.clone(), converted);
                    }
                }
                keyword if UNSUPPORTED.contains(&keyword) => {
                    return Err(self.unsupported(&at, format!("`{keyword}`")));
                }
                keyword if ONE_SCHEMA.contains(&keyword) => {
                    out.insert(keyword.to_owned(), self.convert(value, &at)?);
                }
                keyword if SCHEMA_LISTS.contains(&keyword) => {
                    let list = value.as_array().ok_or_else(|| {
                        self.unsupported(&at, format!("`{keyword}` that is not a list"))
                    })?;
                    let list = list
                        .iter()
                        .enumerate()
                        .map(|(index, item)| self.convert(item, &format!("{at}/{index}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.insert(keyword.to_owned(), Value::Array(list));
                }
                keyword if SCHEMA_MAPS.contains(&keyword) => {
                    let map = value.as_object().ok_or_else(|| {
                        self.unsupported(&at, format!("`{keyword}` that is not an object"))
                    })?;
                    let mut converted = Map::new();
                    for (name, schema) in map {
                        let schema =
                            self.convert(schema, &format!("{at}/{}", pointer_escape(name)))?;
                        converted.insert(name.clone(), schema);
                    }
                    out.insert(keyword.to_owned(), Value::Object(converted));
                }
                _ => {
                    out.insert(keyword.clone(), value.clone());
                }
            }
        }
        if !dependencies.is_empty() {
            out.insert("dependencies".to_owned(), Value::Object(dependencies));
        }
        Ok(match reference {
            None => Value::Object(out),
            // Draft-07 ignores a `$ref`'s siblings: keep them by wrapping the reference.
            Some(reference) if !out.is_empty() => {
                if out.contains_key("allOf") {
                    out["allOf"]
                        .as_array_mut()
                        .expect("converted as a list")
                        .insert(0, reference);
                } else {
                    out.insert("allOf".to_owned(), Value::Array(vec![reference]));
                }
                Value::Object(out)
            }
            Some(reference) => reference,
        })
    }
}

/// The value with every object's keys sorted, whatever `serde_json`'s map order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sorted(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
