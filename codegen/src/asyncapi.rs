//! An AsyncAPI 3.0.0 document generated from a domain's schema registry, describing what
//! factum's NATS publisher (`factum::bus::NatsPublisher`) and Kafka publisher
//! (`factum::kafka::KafkaPublisher`) really send.
//!
//! [`asyncapi`] reads the registry as JSON (the serialised `factum::registry::Registry`:
//! `{"envelope": ..., "entries": [{"kind", "name", "version", "aggregates", "doc",
//! "schema", ...}]}`), like [`typescript`](crate::typescript), and returns one deterministic
//! AsyncAPI document (every object's keys sorted).
//!
//! # What the publisher sends, and how the document says it
//!
//! The publisher reads the store's log and publishes each event to the NATS subject
//! `<prefix>.<stream type>.<event name>` (`factum.Order.OrderPlaced`; the stream type and
//! the event name with `.`, `*`, `>`, whitespace and control characters replaced by `_`,
//! as `factum::bus::subject_for` does). Every message carries the headers `Nats-Msg-Id`
//! (the event id, for JetStream's deduplication), `Factum-Position` (the global position,
//! in decimal) and `Factum-Stream-Id`; every message of a publish batch but the first also
//! `Nats-Expected-Last-Msg-Id` (the previous event's id, so JetStream keeps the order);
//! and `traceparent`, the W3C trace context a consumer continues, when there is one.
//! The body is one of two forms, chosen when the publisher is built:
//!
//! * **envelope** (the default): the whole envelope, the JSON of
//!   `factum::envelope::RecordedEvent`;
//! * **CloudEvents binary mode** (`NatsPublisher::cloudevents`): the CloudEvents
//!   attributes as `ce-` headers (`ce-id`, `ce-type` `<domain>.<stream type>.<event
//!   name>`, `ce-source`, `ce-subject` the stream id, `ce-time`, `ce-eventversion`,
//!   `ce-sequence` the zero-padded position, `ce-streamversion`, and `ce-storedversion`,
//!   `ce-correlationid`, `ce-causationid`, `ce-actor`, `ce-actorkind`, `ce-tenant`,
//!   `ce-traceparent`, `ce-factumextra`, `ce-factumtags` when set) with `content-type:
//!   application/json`, and the payload alone as the body; the headers above stay.
//!
//! The document maps that as follows.
//!
//! * **One channel per event name and stream type**, keyed `<stream type>.<event name>`
//!   (`Order.OrderPlaced`), at the subject as its `address`. A channel in AsyncAPI 3 is
//!   one address, and the subject is the finest address the publisher uses: it holds
//!   every version of the event, so the versions are messages of the channel, not
//!   channels (a channel per stream type would hide the subject consumers filter on; a
//!   channel per version would repeat one address). An event handled by two aggregates
//!   is on a channel of each.
//! * **The subject prefix** is [`AsyncApiInfo::subject_prefix`] (the CLI's
//!   `--subject-prefix`), default [`DEFAULT_SUBJECT_PREFIX`] (`factum`, the publisher's
//!   default): a publisher built with another `subject_prefix` needs the document
//!   generated with the same one. Concrete addresses rather than a `{prefix}` channel
//!   parameter, because the prefix is fixed per deployment and may hold dots, which a
//!   parameter (one value in one place of the address) does not express as a subject.
//! * **Two messages per event version**, both on the event's channel: `OrderPlacedV2`
//!   (the envelope form) and `OrderPlacedV2CloudEvent` (the CloudEvents binary form).
//!   They share the address, so they are messages of one channel rather than a second set
//!   of channels, and the forms are told apart by **two `send` operations per channel**,
//!   `send<StreamType><EventName>` (envelope messages) and
//!   `send<StreamType><EventName>CloudEvent` (CloudEvents messages): one publisher
//!   performs one of them. Each message has `name` (its key), `title` (`OrderPlaced v2`),
//!   `summary` (the doc comment's first line) and `description` (the whole doc comment,
//!   when longer), `contentType` `application/json`, an `x-factum` extension (kind, name,
//!   version and `form`: `envelope` or `cloudevents-binary`), and:
//!   * envelope form: `headers` = `components.schemas.NatsHeaders`; `payload` = the
//!     registry document's `envelope` schema (`components.schemas.Envelope`, the schema of
//!     `RecordedEvent` as the Rust serializer writes it) narrowed to the message: the
//!     properties marked (`x-factum-envelope`) as the event's name and version constant,
//!     the one marked as the payload the event version's schema
//!     (`components.schemas.OrderPlacedV2Payload`), and `stream_type`, when the envelope
//!     has it, one of the event's aggregates. Nothing else of the envelope is written
//!     here: its properties are whatever the registry's schema says (a field added to
//!     `RecordedEvent` reaches the document at the next generation); `correlationId`
//!     points at the envelope property whose schema has a `correlation_id`, when one has.
//!   * CloudEvents form: `headers` = `components.schemas.CloudEventsHeaders` (the NATS
//!     headers and the `ce-` ones) narrowed to the message's `ce-type` (a pattern: the
//!     domain and `ce-source` come from the publisher's `CloudEvents` mapping, which the
//!     registry does not know) and `ce-eventversion`; `payload` = the event version's
//!     schema; `correlationId` = the `ce-correlationid` header.
//!
//!   Header values are strings, as on the wire: numbers are decimal strings.
//! * **Kafka: one channel per stream type**, keyed `kafka.<stream type>`
//!   (`kafka.Order`), at the topic the Kafka publisher writes as its `address` and in its
//!   `kafka` channel binding: `<kafka topic prefix>.<stream type>` (`domain-events.Order`,
//!   [`AsyncApiInfo::kafka_topic_prefix`], the CLI's `--kafka-topic-prefix`; the stream
//!   type with anything but ASCII letters, digits, `.`, `_` and `-` replaced by `_`, as
//!   `factum::kafka::topic_for` does). A topic holds every event of its stream type, so
//!   every version of every one of them is a message of the channel: `OrderPlacedV2Kafka`
//!   (`x-factum.form` `kafka`), whose value (`payload`) is the envelope narrowed to the
//!   event version as in the envelope form, whose `headers` are
//!   `components.schemas.KafkaHeaders` (the CloudEvents Kafka binding's `ce_` headers,
//!   `content-type`, `factum_position`, `traceparent`) narrowed to its `ce_type` and
//!   `ce_eventversion`, and whose `kafka` message binding says the record key is the
//!   stream id. One `send` operation per topic, `send<StreamType>ToKafka`.
//! * **Commands** travel over no broker: factum has no command transport, so they are on
//!   no channel and in no operation. Their schemas are kept in `components.schemas`
//!   (keyed by the command's name, described as such) for whoever carries them over
//!   their own transport.
//! * Events without an aggregate have no subject: their messages are in
//!   `components.messages`, on no channel.
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
//!     ..AsyncApiInfo::default()
//! };
//! let document = asyncapi(&registry, &info).unwrap();
//! assert_eq!(document["asyncapi"], "3.0.0");
//! let channel = &document["channels"]["Account.Opened"];
//! assert_eq!(channel["address"], "factum.Account.Opened");
//! assert_eq!(
//!     channel["messages"]["OpenedV1"]["$ref"],
//!     "#/components/messages/OpenedV1"
//! );
//! assert_eq!(
//!     channel["messages"]["OpenedV1CloudEvent"]["$ref"],
//!     "#/components/messages/OpenedV1CloudEvent"
//! );
//! assert_eq!(document["operations"]["sendAccountOpened"]["action"], "send");
//! assert_eq!(document["operations"]["sendAccountOpenedCloudEvent"]["action"], "send");
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::model::{self, Entry, Kind, from_model_error, pointer_escape};

/// The document's `info` object, and the one deployment setting the addresses depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncApiInfo {
    /// The application's title.
    pub title: String,
    /// The version of the API (not of AsyncAPI).
    pub version: String,
    /// A description (CommonMark); omitted when empty.
    pub description: String,
    /// The NATS publisher's subject prefix (`NatsPublisher::subject_prefix`): the NATS
    /// channels' addresses are `<subject_prefix>.<stream type>.<event name>`.
    pub subject_prefix: String,
    /// The Kafka publisher's topic prefix (`KafkaPublisher::topic_prefix`): the Kafka
    /// channels' addresses (topics) are `<kafka_topic_prefix>.<stream type>`.
    pub kafka_topic_prefix: String,
}

impl Default for AsyncApiInfo {
    /// Title `factum events`, version `1.0.0`, no description, the publishers' default
    /// subject and topic prefixes.
    fn default() -> Self {
        Self {
            title: "factum events".to_owned(),
            version: "1.0.0".to_owned(),
            description: String::new(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            kafka_topic_prefix: DEFAULT_KAFKA_TOPIC_PREFIX.to_owned(),
        }
    }
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
    /// The subject prefix is not one the publisher accepts.
    #[error("the subject prefix `{prefix}` is invalid: {reason}")]
    InvalidSubjectPrefix {
        /// The prefix.
        prefix: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The Kafka topic prefix is not one the Kafka publisher accepts.
    #[error(
        "the Kafka topic prefix `{prefix}` is invalid: use 1 to 200 ASCII letters, digits, `.`, `_` or `-`"
    )]
    InvalidTopicPrefix {
        /// The prefix.
        prefix: String,
    },
}

from_model_error!(AsyncApiError);

/// The AsyncAPI version emitted.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The publisher's default subject prefix (`factum::bus::DEFAULT_SUBJECT_PREFIX`).
pub const DEFAULT_SUBJECT_PREFIX: &str = "factum";

/// The Kafka publisher's default topic prefix (`factum::kafka::DEFAULT_TOPIC_PREFIX`).
pub const DEFAULT_KAFKA_TOPIC_PREFIX: &str = "domain-events";

/// The version of the AsyncAPI Kafka bindings the document uses.
const KAFKA_BINDING_VERSION: &str = "0.5.0";

/// The schema of the envelope, as the registry defines it.
const ENVELOPE: &str = "Envelope";
/// The headers of every message the publisher sends.
const NATS_HEADERS: &str = "NatsHeaders";
/// The headers of a message in CloudEvents binary mode.
const CLOUDEVENTS_HEADERS: &str = "CloudEventsHeaders";
/// The suffix of the CloudEvents form's message keys.
const CLOUDEVENT: &str = "CloudEvent";
/// The headers of every record the Kafka publisher sends.
const KAFKA_HEADERS: &str = "KafkaHeaders";
/// The suffix of the Kafka messages' keys.
const KAFKA: &str = "Kafka";

/// Generates the AsyncAPI 3.0.0 document for a serialised registry.
///
/// The output depends only on the registry's content and `info`: entries are sorted by
/// kind, name and version, and every object's keys are sorted.
pub fn asyncapi(registry_json: &Value, info: &AsyncApiInfo) -> Result<Value, AsyncApiError> {
    check_prefix(&info.subject_prefix)?;
    check_topic_prefix(&info.kafka_topic_prefix)?;
    let entries = model::parse_entries(registry_json, true)?;
    let mut schemas = Named::default();
    let envelope = Envelope::read(registry_json, &mut schemas)?;
    schemas.insert(NATS_HEADERS, nats_headers(), "the NATS publisher")?;
    schemas.insert(
        CLOUDEVENTS_HEADERS,
        cloudevents_headers(),
        "the NATS publisher",
    )?;
    schemas.insert(KAFKA_HEADERS, kafka_headers(), "the Kafka publisher")?;
    let mut messages = Named::default();
    // (stream type, event name) -> (envelope message keys, CloudEvents message keys).
    let mut events: BTreeMap<(String, String), (Vec<String>, Vec<String>)> = BTreeMap::new();
    // stream type -> the Kafka message keys of its events (one topic per stream type).
    let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        let mut payload = converter.convert(&Value::Object(payload), "")?;
        let key = entry.type_name();
        check_key(&label, &key)?;
        if entry.kind == Kind::Command {
            payload["description"] = json!(format!(
                "The command `{}`. factum sends commands over no broker: this is its \
                 schema only, for a transport of your own. {}",
                entry.name,
                entry.doc.trim()
            ));
            schemas.insert(&key, payload, &label)?;
            continue;
        }
        let payload_key = format!("{key}Payload");
        schemas.insert(&payload_key, payload, &label)?;
        let payload_ref = json!({"$ref": format!("#/components/schemas/{payload_key}")});
        let cloudevent_key = format!("{key}{CLOUDEVENT}");
        messages.insert(
            &key,
            entry.envelope_message(&key, &payload_ref, &envelope),
            &label,
        )?;
        let kafka_key = format!("{key}{KAFKA}");
        messages.insert(
            &kafka_key,
            entry.kafka_message(&kafka_key, &payload_ref, &envelope),
            &label,
        )?;
        messages.insert(
            &cloudevent_key,
            entry.cloudevent_message(&cloudevent_key, payload_ref),
            &label,
        )?;
        for aggregate in &entry.aggregates {
            let lists = events
                .entry((aggregate.clone(), entry.name.clone()))
                .or_default();
            lists.0.push(key.clone());
            lists.1.push(cloudevent_key.clone());
            topics
                .entry(aggregate.clone())
                .or_default()
                .push(kafka_key.clone());
        }
    }

    let mut channels = Named::default();
    let mut operations = Named::default();
    for ((aggregate, event), (plain, cloudevents)) in &events {
        let origin = format!("event {event} of aggregate {aggregate}");
        check_key(&origin, aggregate)?;
        let channel_key = format!("{aggregate}.{event}");
        let channel_messages: Map<String, Value> = plain
            .iter()
            .chain(cloudevents)
            .map(|message| {
                (
                    message.clone(),
                    json!({"$ref": format!("#/components/messages/{message}")}),
                )
            })
            .collect();
        channels.insert(
            &channel_key,
            json!({
                "address": format!("{}.{}.{}", info.subject_prefix, token(aggregate), token(event)),
                "title": format!("{event} of {aggregate}"),
                "description": format!(
                    "Every `{event}` event of `{aggregate}` streams, in global position \
                     order, each version a message of its own (the version is the body's \
                     `{}` in the envelope form, the `ce-eventversion` header in the \
                     CloudEvents form).",
                    envelope.version
                ),
                "messages": channel_messages,
            }),
            &origin,
        )?;
        let operation_key = format!("send{}{}", upper_first(aggregate), upper_first(event));
        let refs = |keys: &[String]| -> Vec<Value> {
            keys.iter()
                .map(|message| {
                    json!({"$ref": format!("#/channels/{}/messages/{message}", pointer_escape(&channel_key))})
                })
                .collect()
        };
        let channel_ref = json!({"$ref": format!("#/channels/{}", pointer_escape(&channel_key))});
        operations.insert(
            &operation_key,
            json!({
                "action": "send",
                "channel": channel_ref,
                "messages": refs(plain),
                "summary": format!("The publisher sends each recorded `{event}` of `{aggregate}` as its envelope."),
                "description": "What `NatsPublisher` sends by default: the whole envelope as \
                                the JSON body.",
            }),
            &origin,
        )?;
        operations.insert(
            &format!("{operation_key}{CLOUDEVENT}"),
            json!({
                "action": "send",
                "channel": channel_ref,
                "messages": refs(cloudevents),
                "summary": format!("The publisher sends each recorded `{event}` of `{aggregate}` as a CloudEvent in binary mode."),
                "description": "What `NatsPublisher` sends when built with `.cloudevents(mapping)` \
                                instead of the envelope form: the CloudEvents attributes as \
                                `ce-` headers, the payload alone as the body.",
            }),
            &origin,
        )?;
    }

    for (aggregate, keys) in &topics {
        kafka_channel(
            aggregate,
            keys,
            &info.kafka_topic_prefix,
            &mut channels,
            &mut operations,
        )?;
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

/// A W3C `traceparent` value (version `00`, as factum writes it).
const TRACEPARENT_PATTERN: &str = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$";

/// The NATS headers the publisher sets on every message (`factum::bus`'s
/// `POSITION_HEADER` and `STREAM_ID_HEADER`, and JetStream's own).
fn nats_headers() -> Value {
    json!({
        "type": "object",
        "description": "The NATS headers factum's publisher sets on every message, in both forms.",
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "format": "uuid",
                "description": "The event id: JetStream stores a republished event once within the stream's duplicate window.",
            },
            "Factum-Position": {
                "type": "string",
                "pattern": "^(0|[1-9][0-9]{0,19})$",
                "description": "The event's global position, in decimal: strictly increasing in commit order.",
            },
            "Factum-Stream-Id": {
                "type": "string",
                "description": "The stream the event belongs to.",
            },
            "Nats-Expected-Last-Msg-Id": {
                "type": "string",
                "format": "uuid",
                "description": "On every message of a publish batch but the first: the previous event's id, so JetStream stores the event only right after it (the stream keeps position order).",
            },
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT_PATTERN,
                "description": "The W3C trace context of the publish (with tracing through OpenTelemetry) or else the one the event recorded; when there is one. A consumer continues the trace from it.",
            },
        },
        "required": ["Nats-Msg-Id", "Factum-Position", "Factum-Stream-Id"],
    })
}

/// The headers of the CloudEvents binary form (`factum::cloudevents::CloudEvents::to_binary`).
fn cloudevents_headers() -> Value {
    let decimal = |description: &str| json!({"type": "string", "pattern": "^[1-9][0-9]{0,9}$", "description": description});
    let uuid =
        |description: &str| json!({"type": "string", "format": "uuid", "description": description});
    json!({
        "description": "The headers of a CloudEvent in binary mode (the NATS binding): every attribute as a `ce-` header, `datacontenttype` as `content-type`, beside the NATS headers of every message.",
        "allOf": [{"$ref": format!("#/components/schemas/{NATS_HEADERS}")}],
        "type": "object",
        "properties": {
            "ce-specversion": {"const": "1.0", "description": "The CloudEvents version."},
            "ce-id": uuid("The event id."),
            "ce-source": {"type": "string", "minLength": 1, "description": "The service (a URI-reference), from the publisher's CloudEvents mapping."},
            "ce-type": {"type": "string", "description": "`<domain>.<stream type>.<event name>`; the domain is the publisher's CloudEvents mapping's."},
            "ce-subject": {"type": "string", "description": "The stream id."},
            "ce-time": {"type": "string", "format": "date-time", "description": "When the event happened (RFC 3339, UTC, to the microsecond)."},
            "ce-eventversion": decimal("The payload's schema version, in decimal."),
            "ce-sequence": {"type": "string", "pattern": "^[0-9]{20}$", "description": "The global position, zero-padded to 20 digits so it sorts as a string."},
            "ce-streamversion": decimal("The version in the stream, in decimal."),
            "ce-correlationid": uuid("Groups every message of one business transaction; when set."),
            "ce-causationid": uuid("The id of the message that caused this one; when set."),
            "ce-storedversion": decimal("The version the payload is stored with, in decimal, when the event is published upcast to its newest version (`NatsPublisher::upcast`)."),
            "ce-actor": {"type": "string", "description": "Who acted (the actor's id); when set."},
            "ce-actorkind": {"type": "string", "description": "The kind of the actor; when set."},
            "ce-tenant": {"type": "string", "description": "The tenant the command was issued in; when set."},
            "ce-traceparent": {"type": "string", "pattern": TRACEPARENT_PATTERN, "description": "The W3C trace context of the command that recorded the event (the distributed tracing extension); when it was traced."},
            "ce-factumextra": {"type": "string", "contentMediaType": "application/json", "description": "The metadata's free-form entries as a JSON object in a string; when there are any."},
            "ce-factumtags": {"type": "string", "contentMediaType": "application/json", "description": "The event's tags (`key:value`) as a JSON array in a string; when it has any."},
            "content-type": {"const": "application/json", "description": "The body's media type."},
        },
        "required": [
            "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time",
            "ce-eventversion", "ce-sequence", "ce-streamversion", "content-type",
        ],
    })
}

/// The headers of every record the Kafka publisher sends (`factum::kafka`): the
/// CloudEvents Kafka binding's `ce_` headers (the binary form's attributes), the global
/// position and the trace context.
fn kafka_headers() -> Value {
    let binary = cloudevents_headers();
    let rename = |name: &str| match name.strip_prefix("ce-") {
        Some(attribute) => format!("ce_{attribute}"),
        None => name.to_owned(),
    };
    let mut properties: Map<String, Value> = binary["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| (rename(name), schema.clone()))
        .collect();
    properties.insert(
        "ce_storedversion".to_owned(),
        json!({"type": "string", "pattern": "^[1-9][0-9]{0,9}$", "description": "The version the payload is stored with, in decimal, when it differs from the event's (an upcast event)."}),
    );
    properties.insert(
        "factum_position".to_owned(),
        json!({
            "type": "string",
            "pattern": "^(0|[1-9][0-9]{0,19})$",
            "description": "The event's global position, in decimal (also in the envelope): in each partition the first copies of the events come in position order, and a copy republished after a failure carries an older position than the records before it.",
        }),
    );
    properties.insert(
        "traceparent".to_owned(),
        json!({"type": "string", "pattern": TRACEPARENT_PATTERN, "description": "The W3C trace context of the publish (with tracing through OpenTelemetry) or else the one the event recorded; when there is one. A consumer continues the trace from it."}),
    );
    let mut required: Vec<String> = binary["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(rename)
        .collect();
    required.push("factum_position".to_owned());
    json!({
        "description": "The headers of every record the Kafka publisher sends: the CloudEvents Kafka binding's attributes as `ce_` headers (`datacontenttype` as `content-type`), the global position and the trace context. Header values are UTF-8 strings.",
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

/// The topic `<prefix>.<stream type>` as the Kafka publisher names it
/// (`factum::kafka::topic_for`): anything but ASCII letters, digits, `.`, `_` and `-` in
/// the stream type becomes `_`, an empty one `_`.
// Written here again so the generator does not build librdkafka; the tests hold it to
// `factum::kafka::topic_for`.
fn topic_for(prefix: &str, stream_type: &str) -> String {
    let stream_type: String = if stream_type.is_empty() {
        "_".to_owned()
    } else {
        stream_type
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{prefix}.{stream_type}")
}

/// Checks a Kafka topic prefix as the Kafka publisher does.
fn check_topic_prefix(prefix: &str) -> Result<(), AsyncApiError> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(AsyncApiError::InvalidTopicPrefix {
            prefix: prefix.to_owned(),
        })
    }
}

/// The Kafka channel of one stream type's topic, with every version of its events as
/// messages, and the operation sending them.
fn kafka_channel(
    aggregate: &str,
    keys: &[String],
    prefix: &str,
    channels: &mut Named,
    operations: &mut Named,
) -> Result<(), AsyncApiError> {
    let origin = format!("the Kafka topic of aggregate {aggregate}");
    let channel_key = format!("kafka.{aggregate}");
    check_key(&origin, &channel_key)?;
    let topic = topic_for(prefix, aggregate);
    let messages: Map<String, Value> = keys
        .iter()
        .map(|key| {
            (
                key.clone(),
                json!({"$ref": format!("#/components/messages/{key}")}),
            )
        })
        .collect();
    channels.insert(
        &channel_key,
        json!({
            "address": topic,
            "title": format!("{aggregate} events on Kafka"),
            "description": format!(
                "Every event of `{aggregate}` streams, each version a message of its own. \
                 The record key is the stream id, so a stream's events stay in one partition, \
                 in position order; there is no order across partitions."
            ),
            "messages": messages,
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
        }),
        &origin,
    )?;
    let channel_ref = json!({"$ref": format!("#/channels/{}", pointer_escape(&channel_key))});
    let refs: Vec<Value> = keys
        .iter()
        .map(|key| {
            json!({"$ref": format!("#/channels/{}/messages/{key}", pointer_escape(&channel_key))})
        })
        .collect();
    operations.insert(
        &format!("send{}ToKafka", upper_first(aggregate)),
        json!({
            "action": "send",
            "channel": channel_ref,
            "messages": refs,
            "summary": format!("The Kafka publisher sends each recorded event of `{aggregate}` streams."),
            "description": "What `KafkaPublisher` sends: the whole envelope as the record's \
                            value, the stream id as its key, the CloudEvents Kafka binding's \
                            `ce_` headers, `factum_position` and `traceparent`.",
        }),
        &origin,
    )
}

/// The envelope as the registry document defines it: its schema is
/// `components.schemas.Envelope`, its definitions are components too.
struct Envelope {
    /// The properties holding the event name, version and payload.
    name: String,
    version: String,
    payload: String,
    /// The property holding the stream type, if the envelope has one.
    stream_type: Option<String>,
    /// Where the correlation id is in the envelope, as a JSON pointer, if anywhere.
    correlation: Option<String>,
}

impl Envelope {
    /// Reads the registry's envelope, adding `Envelope` and the envelope's definitions to
    /// `schemas`.
    fn read(registry_json: &Value, schemas: &mut Named) -> Result<Self, AsyncApiError> {
        let schema = model::envelope_schema(registry_json)?;
        let name = model::role_property(schema, "name")?.to_owned();
        let version = model::role_property(schema, "version")?.to_owned();
        let payload = model::role_property(schema, "payload")?.to_owned();
        let converter = Converter {
            entry: model::ENVELOPE_ORIGIN,
        };
        let defs = schema.get("$defs").and_then(Value::as_object);
        for (def, def_schema) in defs.into_iter().flatten() {
            check_key(model::ENVELOPE_ORIGIN, def)?;
            let path = format!("/$defs/{}", pointer_escape(def));
            let converted = converter.convert(def_schema, &path)?;
            schemas.insert(def, converted, model::ENVELOPE_ORIGIN)?;
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        // A property's schema, through a `$ref` into the envelope's `$defs`.
        let resolve = |property: &Value| -> Option<Value> {
            match property.get("$ref").and_then(Value::as_str) {
                Some(target) => defs?.get(target.strip_prefix("#/$defs/")?).cloned(),
                None => Some(property.clone()),
            }
        };
        let has = |property: &Value, field: &str| {
            resolve(property).is_some_and(|schema| schema["properties"].get(field).is_some())
        };
        let correlation = properties
            .into_iter()
            .flatten()
            .find_map(|(key, property)| {
                has(property, "correlation_id")
                    .then(|| format!("/{}/correlation_id", pointer_escape(key)))
            });
        // The stream type is narrowed to the event's aggregates when the envelope has it.
        let stream_type = properties
            .and_then(|properties| properties.get("stream_type"))
            .map(|_| "stream_type".to_owned());
        let mut whole = schema.clone();
        for keyword in ["$defs", "$schema"] {
            whole.remove(keyword);
        }
        let whole = converter.convert(&Value::Object(whole), "")?;
        schemas.insert(ENVELOPE, whole, model::ENVELOPE_ORIGIN)?;
        Ok(Self {
            name,
            version,
            payload,
            stream_type,
            correlation,
        })
    }
}

impl Entry {
    /// What both forms' messages share.
    fn message_base(&self, key: &str, form: &str, payload: Value) -> Value {
        let mut message = json!({
            "name": key,
            "contentType": "application/json",
            "payload": payload,
            "x-factum": {"kind": "event", "name": self.name, "version": self.version, "form": form},
        });
        let doc = self.doc.trim();
        if let Some(first) = doc.lines().next() {
            message["summary"] = json!(first.trim());
            if doc.lines().nth(1).is_some() {
                message["description"] = json!(doc);
            }
        }
        message
    }

    /// The envelope narrowed to this event version: what the envelope form's body and a
    /// Kafka record's value are.
    fn narrowed_envelope(&self, payload_ref: &Value, envelope: &Envelope) -> Value {
        let mut narrowed = Map::new();
        narrowed.insert(envelope.name.clone(), json!({"const": self.name}));
        narrowed.insert(envelope.version.clone(), json!({"const": self.version}));
        narrowed.insert(envelope.payload.clone(), payload_ref.clone());
        if let Some(stream_type) = &envelope.stream_type
            && !self.aggregates.is_empty()
        {
            narrowed.insert(stream_type.clone(), json!({"enum": self.aggregates}));
        }
        json!({
            "allOf": [{"$ref": format!("#/components/schemas/{ENVELOPE}")}],
            "properties": narrowed,
        })
    }

    /// The correlation id's place in the envelope, if it has one.
    fn envelope_correlation(envelope: &Envelope) -> Option<Value> {
        envelope.correlation.as_ref().map(|pointer| {
            json!({
                "description": "Groups every message of one business transaction.",
                "location": format!("$message.payload#{pointer}"),
            })
        })
    }

    /// The envelope form: the NATS headers, the whole envelope narrowed to this event
    /// version as the body.
    fn envelope_message(&self, key: &str, payload_ref: &Value, envelope: &Envelope) -> Value {
        let body = self.narrowed_envelope(payload_ref, envelope);
        let mut message = self.message_base(key, "envelope", body);
        message["title"] = json!(format!("{} v{}", self.name, self.version));
        message["headers"] = json!({"$ref": format!("#/components/schemas/{NATS_HEADERS}")});
        if let Some(correlation) = Self::envelope_correlation(envelope) {
            message["correlationId"] = correlation;
        }
        message
    }

    /// A Kafka record: the `ce_` headers narrowed to this event version, the stream id as
    /// the key, the whole envelope narrowed to this event version as the value.
    fn kafka_message(&self, key: &str, payload_ref: &Value, envelope: &Envelope) -> Value {
        let body = self.narrowed_envelope(payload_ref, envelope);
        let mut message = self.message_base(key, "kafka", body);
        message["title"] = json!(format!("{} v{} (Kafka)", self.name, self.version));
        message["headers"] = json!({
            "allOf": [{"$ref": format!("#/components/schemas/{KAFKA_HEADERS}")}],
            "type": "object",
            "properties": {
                "ce_type": {"pattern": self.ce_type_pattern()},
                "ce_eventversion": {"const": self.version.to_string()},
            },
        });
        message["bindings"] = json!({"kafka": {
            "key": {"type": "string", "description": "The stream id: a stream's events share a partition."},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }});
        if let Some(correlation) = Self::envelope_correlation(envelope) {
            message["correlationId"] = correlation;
        }
        message
    }

    /// `ce_type` / `ce-type` of this event: `<domain>.<stream type>.<event name>`, the
    /// domain the publisher's CloudEvents mapping's (which the registry does not know).
    fn ce_type_pattern(&self) -> String {
        let stream_types = if self.aggregates.is_empty() {
            ".+".to_owned()
        } else {
            let escaped: Vec<String> = self.aggregates.iter().map(|a| regex_escape(a)).collect();
            format!("(?:{})", escaped.join("|"))
        };
        format!("^[^.\\s]+\\.{stream_types}\\.{}$", regex_escape(&self.name))
    }

    /// The CloudEvents binary form: the `ce-` headers narrowed to this event version, the
    /// payload alone as the body.
    fn cloudevent_message(&self, key: &str, payload_ref: Value) -> Value {
        let mut message = self.message_base(key, "cloudevents-binary", payload_ref);
        message["title"] = json!(format!(
            "{} v{} (CloudEvents binary mode)",
            self.name, self.version
        ));
        message["headers"] = json!({
            "allOf": [{"$ref": format!("#/components/schemas/{CLOUDEVENTS_HEADERS}")}],
            "type": "object",
            "properties": {
                "ce-type": {"pattern": self.ce_type_pattern()},
                "ce-eventversion": {"const": self.version.to_string()},
            },
        });
        message["correlationId"] = json!({
            "description": "Groups every message of one business transaction.",
            "location": "$message.header#/ce-correlationid",
        });
        message
    }
}

/// `text` matched literally by an ECMAScript regular expression (also in `u` mode,
/// where only syntax characters may be escaped).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A subject token as the publisher writes it (`factum::bus::subject_for`): `.`, `*`,
/// `>`, whitespace and control characters become `_`, an empty name `_`.
fn token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    text.chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The subject prefixes the publisher accepts: dot-separated non-empty tokens without
/// whitespace or wildcards.
fn check_prefix(prefix: &str) -> Result<(), AsyncApiError> {
    let reason = if prefix.is_empty() {
        Some("it is empty")
    } else if prefix.split('.').any(str::is_empty) {
        Some("it has an empty token")
    } else if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it holds whitespace")
    } else if prefix.contains(['*', '>']) {
        Some("wildcards are not allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AsyncApiError::InvalidSubjectPrefix {
            prefix: prefix.to_owned(),
            reason,
        }),
        None => Ok(()),
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
