//! The AsyncAPI document generated for the example domain: its snapshot, its determinism,
//! its validation by independent tools, and the messages factum's NATS and Kafka
//! publishers really send, checked against it.
//!
//! The tools: pinned `@asyncapi/parser` (the AsyncAPI initiative's parser, with its
//! Spectral rules), installed once into `<target>/tmp/asyncapi-parser` (or
//! `FACTUM_ASYNCAPI_PARSER`), and `@asyncapi/specs` (the official specification JSON
//! Schemas), `ajv` 8 and `ajv-formats`, into `<target>/tmp/asyncapi-tools` (or
//! `FACTUM_ASYNCAPI_TOOLS`). Two prefixes, because the parser's own Ajv and `ajv-errors`
//! break when npm hoists them next to another Ajv version. They need `node` and `npm` on
//! the `PATH`; the publisher tests need a NATS server with JetStream (`FACTUM_NATS_URL`,
//! from `eval "$(scripts/nats.sh start)"`) and a Kafka-protocol broker
//! (`FACTUM_KAFKA_BROKERS`, from `eval "$(scripts/kafka.sh start)"`). Missing, they fail
//! the test, never skip it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use factum::bus::NatsPublisher;
use factum::cloudevents::CloudEvents;
use factum::kafka::KafkaPublisher;
use factum::projection::sqlite::SqliteReadModel;
use factum::sqlite::SqliteStore;
use factum::store::EventStore;
use factum_codegen::asyncapi::{AsyncApiError, AsyncApiInfo, asyncapi};
use serde_json::{Value, json};
use support::{registry_json, run};

/// The pinned tools: the official specification schemas and a draft-07 validator.
const TOOLS: &[(&str, &str)] = &[
    ("@asyncapi/specs", "6.11.1"),
    ("ajv", "8.17.1"),
    ("ajv-formats", "3.0.1"),
];

/// The pinned AsyncAPI parser, in a prefix of its own.
const PARSER: &[(&str, &str)] = &[("@asyncapi/parser", "3.6.6")];

fn info() -> AsyncApiInfo {
    AsyncApiInfo {
        title: "Orders".to_owned(),
        description: "The events the order service publishes.".to_owned(),
        ..AsyncApiInfo::default()
    }
}

fn generate() -> Value {
    asyncapi(&registry_json(), &info()).expect("the example domain maps to AsyncAPI")
}

#[test]
fn the_example_domain_document_matches_its_snapshot() {
    insta::assert_snapshot!(
        "orders_asyncapi",
        serde_json::to_string_pretty(&generate()).unwrap()
    );
}

#[test]
fn generating_twice_gives_identical_bytes() {
    let first = serde_json::to_string_pretty(&generate()).unwrap();
    let second = serde_json::to_string_pretty(&generate()).unwrap();
    assert_eq!(first.as_bytes(), second.as_bytes());

    // Entry order in the input does not matter either.
    let reversed = support::reversed_registry_json();
    let reversed = serde_json::to_string_pretty(&asyncapi(&reversed, &info()).unwrap()).unwrap();
    assert_eq!(reversed, first);
}

/// The CloudEvents binary form's headers are written out in the generator: each attribute
/// the runtime's mapping writes must be a documented header, and nothing else.
#[test]
fn every_cloudevents_attribute_is_a_documented_header() {
    let document = generate();
    let headers = document["components"]["schemas"]["CloudEventsHeaders"]["properties"]
        .as_object()
        .expect("the CloudEvents headers schema");
    let mut documented: Vec<&str> = headers
        .keys()
        .filter_map(|header| header.strip_prefix("ce-"))
        .collect();
    documented.sort_unstable();
    let mut written = factum::cloudevents::ATTRIBUTES.to_vec();
    written.sort_unstable();
    assert_eq!(documented, written);
}

#[test]
fn channels_operations_and_messages_follow_the_documented_layout() {
    let document = generate();
    assert_eq!(document["asyncapi"], "3.0.0");
    // One channel per event name and stream type, at the publisher's subject.
    let channels = document["channels"].as_object().unwrap();
    let keys: Vec<&String> = channels.keys().collect();
    assert_eq!(
        keys,
        [
            "Order.ItemAdded",
            "Order.ItemRemoved",
            "Order.OrderCancelled",
            "Order.OrderConfirmed",
            "Order.OrderDelivered",
            "Order.OrderNoteAdded",
            "Order.OrderPlaced",
            "Order.OrderShipped",
            "kafka.Order"
        ]
    );
    for (key, channel) in channels {
        match key.strip_prefix("kafka.") {
            // One Kafka channel per stream type, at the Kafka publisher's topic.
            Some(stream_type) => {
                let topic = factum::kafka::topic_for("domain-events", stream_type);
                assert_eq!(channel["address"], topic.as_str());
                assert_eq!(
                    channel["bindings"],
                    json!({"kafka": {"topic": topic, "bindingVersion": "0.5.0"}})
                );
            }
            None => assert_eq!(channel["address"], format!("factum.{key}")),
        }
    }
    // The topic holds every version of every event of its stream type.
    let on_topic = channels["kafka.Order"]["messages"].as_object().unwrap();
    assert_eq!(on_topic.len(), 9, "one per event version");
    assert!(on_topic.keys().all(|key| key.ends_with("Kafka")));
    // Every version of the event, in both forms.
    let placed: Vec<&String> = channels["Order.OrderPlaced"]["messages"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        placed,
        [
            "OrderPlacedV1",
            "OrderPlacedV1CloudEvent",
            "OrderPlacedV2",
            "OrderPlacedV2CloudEvent"
        ]
    );
    // Two send operations per NATS channel, one per form, and one per topic; no command
    // is on any channel.
    let operations = document["operations"].as_object().unwrap();
    assert_eq!(operations.len(), 17);
    let to_kafka = &operations["sendOrderToKafka"];
    assert_eq!(to_kafka["channel"]["$ref"], "#/channels/kafka.Order");
    assert_eq!(to_kafka["messages"].as_array().unwrap().len(), 9);
    assert_eq!(
        to_kafka["messages"][0]["$ref"],
        "#/channels/kafka.Order/messages/ItemAddedV2Kafka"
    );
    assert!(
        operations
            .values()
            .all(|operation| operation["action"] == "send")
    );
    let envelope = &operations["sendOrderOrderPlaced"];
    assert_eq!(envelope["channel"]["$ref"], "#/channels/Order.OrderPlaced");
    assert_eq!(
        envelope["messages"],
        json!([
            {"$ref": "#/channels/Order.OrderPlaced/messages/OrderPlacedV1"},
            {"$ref": "#/channels/Order.OrderPlaced/messages/OrderPlacedV2"}
        ])
    );
    assert_eq!(
        operations["sendOrderOrderPlacedCloudEvent"]["messages"][1]["$ref"],
        "#/channels/Order.OrderPlaced/messages/OrderPlacedV2CloudEvent"
    );
    let text = serde_json::to_string(&document).unwrap();
    let all_messages = document["components"]["messages"].as_object().unwrap();
    assert_eq!(all_messages.len(), 27, "three per event version");
    assert!(
        all_messages
            .values()
            .all(|message| message["x-factum"]["kind"] == "event")
    );
    assert!(
        document["components"]["schemas"]["PlaceOrder"]["description"]
            .as_str()
            .unwrap()
            .contains("over no broker")
    );

    // The envelope form: NATS headers, the envelope narrowed to the version as the body.
    // The envelope form: NATS headers, the envelope narrowed to the version as the body;
    // the CloudEvents form: `ce-` headers narrowed to the version, the payload as the body.
    let envelope_form = "/components/messages/OrderPlacedV2";
    let binary_form = "/components/messages/OrderPlacedV2CloudEvent";
    let kafka_form = "/components/messages/OrderPlacedV2Kafka";
    let placed_payload = json!({"$ref": "#/components/schemas/OrderPlacedV2Payload"});
    for (pointer, expected) in [
        (format!("{envelope_form}/name"), json!("OrderPlacedV2")),
        (format!("{envelope_form}/title"), json!("OrderPlaced v2")),
        (
            format!("{envelope_form}/summary"),
            json!("A customer placed an order."),
        ),
        (
            format!("{envelope_form}/headers"),
            json!({"$ref": "#/components/schemas/NatsHeaders"}),
        ),
        (
            format!("{envelope_form}/payload"),
            json!({"allOf": [{"$ref": "#/components/schemas/Envelope"}], "properties": {
                "name": {"const": "OrderPlaced"}, "schema_version": {"const": 2},
                "stream_type": {"enum": ["Order"]}, "payload": placed_payload}}),
        ),
        (
            format!("{envelope_form}/correlationId/location"),
            json!("$message.payload#/metadata/correlation_id"),
        ),
        (format!("{binary_form}/payload"), placed_payload.clone()),
        (
            format!("{binary_form}/headers/allOf/0/$ref"),
            json!("#/components/schemas/CloudEventsHeaders"),
        ),
        (
            format!("{binary_form}/headers/properties/ce-eventversion"),
            json!({"const": "2"}),
        ),
        (
            format!("{binary_form}/x-factum/form"),
            json!("cloudevents-binary"),
        ),
        // A Kafka record: the `ce_` headers narrowed to the version, the stream id as the
        // key, the envelope narrowed to the version as the value.
        (
            format!("{kafka_form}/headers/allOf/0/$ref"),
            json!("#/components/schemas/KafkaHeaders"),
        ),
        (
            format!("{kafka_form}/headers/properties/ce_eventversion"),
            json!({"const": "2"}),
        ),
        (
            format!("{kafka_form}/payload"),
            document
                .pointer(&format!("{envelope_form}/payload"))
                .unwrap()
                .clone(),
        ),
        (
            format!("{kafka_form}/bindings/kafka/key/type"),
            json!("string"),
        ),
        (format!("{kafka_form}/x-factum/form"), json!("kafka")),
        (
            "/components/schemas/KafkaHeaders/required".to_owned(),
            json!([
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_subject",
                "ce_time",
                "ce_eventversion",
                "ce_sequence",
                "ce_streamversion",
                "content-type",
                "factum_position"
            ]),
        ),
    ] {
        assert_eq!(document.pointer(&pointer), Some(&expected), "{pointer}");
    }
    // The envelope is the registry's, whole.
    let envelope_schema = &document["components"]["schemas"]["Envelope"];
    let registry = registry_json();
    assert_eq!(
        envelope_schema["required"],
        registry["envelope"]["required"]
    );
    assert_eq!(
        envelope_schema["properties"].as_object().unwrap().len(),
        registry["envelope"]["properties"]
            .as_object()
            .unwrap()
            .len()
    );

    // `$defs` moved to components, references rewritten, `$ref` siblings kept via allOf.
    let payload = &document["components"]["schemas"]["OrderPlacedV2Payload"];
    assert!(payload.get("$schema").is_none() && payload.get("$defs").is_none());
    assert_eq!(
        payload["properties"]["lines"]["items"]["$ref"],
        "#/components/schemas/Line"
    );
    assert_eq!(
        payload["properties"]["currency"]["allOf"][0]["$ref"],
        "#/components/schemas/Currency"
    );
    assert!(document["components"]["schemas"]["Line"].is_object());
    assert!(!text.contains("$defs"));
}

#[test]
fn the_subject_and_topic_prefixes_change_the_addresses_only() {
    let other = AsyncApiInfo {
        subject_prefix: "shop.orders".to_owned(),
        ..info()
    };
    let mut document = asyncapi(&registry_json(), &other).unwrap();
    for (key, channel) in document["channels"].as_object_mut().unwrap() {
        if key.starts_with("kafka.") {
            continue;
        }
        let address = channel["address"].as_str().unwrap();
        let rest = address
            .strip_prefix("shop.orders.")
            .unwrap_or_else(|| panic!("{address}"));
        channel["address"] = json!(format!("factum.{rest}"));
    }
    assert_eq!(document, generate());

    // The Kafka topic prefix changes the topics only.
    let other = AsyncApiInfo {
        kafka_topic_prefix: "shop.events".to_owned(),
        ..info()
    };
    let mut document = asyncapi(&registry_json(), &other).unwrap();
    let channel = &mut document["channels"]["kafka.Order"];
    assert_eq!(channel["address"], "shop.events.Order");
    channel["address"] = json!("domain-events.Order");
    channel["bindings"]["kafka"]["topic"] = json!("domain-events.Order");
    assert_eq!(document, generate());
    for prefix in ["", "a b", "a/b"] {
        let info = AsyncApiInfo {
            kafka_topic_prefix: prefix.to_owned(),
            ..info()
        };
        let refused = asyncapi(&registry_json(), &info);
        assert_eq!(
            refused,
            Err(AsyncApiError::InvalidTopicPrefix {
                prefix: prefix.to_owned()
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            format!(
                "the Kafka topic prefix `{prefix}` is invalid: use 1 to 200 ASCII letters, digits, `.`, `_` or `-`"
            )
        );
    }

    for (prefix, reason) in [
        ("", "it is empty"),
        ("a..b", "it has an empty token"),
        ("a b", "it holds whitespace"),
        ("a.>", "wildcards are not allowed"),
    ] {
        let info = AsyncApiInfo {
            subject_prefix: prefix.to_owned(),
            ..info()
        };
        assert_eq!(
            asyncapi(&registry_json(), &info),
            Err(AsyncApiError::InvalidSubjectPrefix {
                prefix: prefix.to_owned(),
                reason
            })
        );
    }

    // Subject tokens are escaped as the publisher escapes them; the CloudEvents type
    // (not a subject) keeps the names.
    let dotted = json!({"envelope": factum::envelope::envelope_schema(), "entries": [{
        "kind": "event", "name": "Opened", "version": 1, "aggregates": ["bank.Account"],
        "doc": "", "schema": {"type": "object"}}]});
    let document = asyncapi(&dotted, &info()).unwrap();
    let channel = &document["channels"]["bank.Account.Opened"];
    assert_eq!(
        channel["address"],
        factum::bus::subject_for("factum", "bank.Account", "Opened")
    );
    assert_eq!(
        document["channels"]["kafka.bank.Account"]["address"],
        factum::kafka::topic_for("domain-events", "bank.Account")
    );
    assert_eq!(
        document["components"]["messages"]["OpenedV1CloudEvent"]["headers"]["properties"]["ce-type"]
            ["pattern"],
        "^[^.\\s]+\\.(?:bank\\.Account)\\.Opened$"
    );
}

#[test]
fn draft_2020_12_constructs_are_converted_or_refused() {
    let entry = |schema: Value| {
        json!({"envelope": factum::envelope::envelope_schema(),
            "entries": [{"kind": "event", "name": "Shaped", "version": 1,
            "aggregates": ["Shape"], "doc": "", "schema": schema}]})
    };
    let tuple = entry(json!({"type": "object", "properties": {"pair": {
        "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": false}},
        "dependentRequired": {"a": ["b"]}}));
    let document = asyncapi(&tuple, &info()).unwrap();
    let payload = &document["components"]["schemas"]["ShapedV1Payload"];
    assert_eq!(
        payload["properties"]["pair"],
        json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
               "additionalItems": false})
    );
    assert_eq!(payload["dependencies"], json!({"a": ["b"]}));

    let unevaluated = entry(json!({"type": "object", "properties": {
        "x": {"type": "object", "unevaluatedProperties": false}}}));
    assert_eq!(
        asyncapi(&unevaluated, &info()),
        Err(AsyncApiError::Unsupported {
            entry: "event Shaped v1".to_owned(),
            path: "/properties/x/unevaluatedProperties".to_owned(),
            construct: "`unevaluatedProperties`".to_owned(),
        })
    );
    let external = entry(json!({"$ref": "https://example.com/schema.json"}));
    assert!(matches!(
        asyncapi(&external, &info()),
        Err(AsyncApiError::Unsupported { path, .. }) if path == "/$ref"
    ));

    // The same definition name with two shapes is refused, not suffixed.
    let collision = json!({"envelope": factum::envelope::envelope_schema(), "entries": [
        {"kind": "event", "name": "A", "version": 1, "aggregates": ["X"], "doc": "",
         "schema": {"$ref": "#/$defs/T", "$defs": {"T": {"type": "string"}}}},
        {"kind": "event", "name": "B", "version": 1, "aggregates": ["X"], "doc": "",
         "schema": {"$ref": "#/$defs/T", "$defs": {"T": {"type": "integer"}}}},
    ]});
    assert_eq!(
        asyncapi(&collision, &info()),
        Err(AsyncApiError::NameCollision {
            name: "T".to_owned(),
            first: "event A v1".to_owned(),
            second: "event B v1".to_owned(),
        })
    );
    assert!(matches!(
        asyncapi(&json!({"entries": 3}), &info()),
        Err(AsyncApiError::MalformedRegistry { .. })
    ));
}

/// Why node and npm are needed.
const WHY: &str = "the generated AsyncAPI document must be validated by independent tools";

/// The pinned specification schemas and validator, installed once and cached.
fn tools() -> PathBuf {
    support::npm_tools("FACTUM_ASYNCAPI_TOOLS", "asyncapi-tools", TOOLS, WHY)
}

/// The pinned parser, installed once and cached.
fn parser() -> PathBuf {
    support::npm_tools("FACTUM_ASYNCAPI_PARSER", "asyncapi-parser", PARSER, WHY)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/asyncapi")
        .join(name)
}

/// The committed document of the example domain.
fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/orders/contracts/asyncapi.json")
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// Documents the official schema must reject, each broken in one place.
fn broken_documents(valid: &Value) -> Vec<(&'static str, Value)> {
    let mut wrong_version = valid.clone();
    wrong_version["asyncapi"] = json!("2.6.0");
    let mut operation_without_action = valid.clone();
    operation_without_action["operations"]["sendOrderOrderPlaced"]
        .as_object_mut()
        .unwrap()
        .remove("action");
    let mut misspelt_channel_field = valid.clone();
    let channel = misspelt_channel_field["channels"]["Order.OrderPlaced"]
        .as_object_mut()
        .unwrap();
    let address = channel.remove("address").unwrap();
    channel.insert("adress".to_owned(), address);
    let mut without_info = valid.clone();
    without_info.as_object_mut().unwrap().remove("info");
    vec![
        ("wrong-version", wrong_version),
        ("operation-without-action", operation_without_action),
        ("misspelt-channel-field", misspelt_channel_field),
        ("without-info", without_info),
    ]
}

#[test]
fn the_document_is_valid_against_the_official_asyncapi_3_schema() {
    support::require_tool("node", WHY);
    let tools = tools();
    let dir = support::scratch_dir("asyncapi-check");
    let generated = dir.join("generated.json");
    let document = generate();
    write_json(&generated, &document);
    let broken = broken_documents(&document);
    let mut files = vec![generated.clone(), committed()];
    for (name, broken) in &broken {
        let file = dir.join(format!("broken-{name}.json"));
        write_json(&file, broken);
        files.push(file);
    }
    let none = dir.join("received.json");
    std::fs::write(&none, "[]").unwrap();
    let output = run(
        Command::new("node")
            .arg(script("validate.js"))
            .arg(&tools)
            .arg(&none)
            .args(&files),
        "node validate.js",
    );
    println!("{output}");
    for file in [&generated, &committed()] {
        assert!(
            output.contains(&format!("VALID {}\n", file.display())),
            "{} must be valid AsyncAPI 3.0.0:\n{output}",
            file.display()
        );
    }
    for (name, _) in &broken {
        let file = dir.join(format!("broken-{name}.json"));
        assert!(
            output.contains(&format!("INVALID {} ", file.display())),
            "the official schema must reject the {name} document:\n{output}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The diagnostics `parse.js` printed for `file`, as (severity, code, line), and whether
/// the parser returned a document.
fn diagnostics(output: &str, file: &Path) -> (Vec<(String, String, String)>, bool) {
    let prefix = format!("DIAGNOSTIC {} ", file.display());
    let found = output
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix).map(|rest| (rest, line)))
        .map(|(rest, line)| {
            let mut words = rest.split(' ');
            let severity = words.next().unwrap_or_default().to_owned();
            let code = words.next().unwrap_or_default().to_owned();
            (severity, code, line.to_owned())
        })
        .collect();
    let parsed = output.contains(&format!("PARSED {} ", file.display()));
    (found, parsed)
}

/// The committed document parses with `@asyncapi/parser` without a diagnostic but one
/// (its `info` that 3.1.0 is out: the document is 3.0.0 on purpose, the version the
/// specification schemas and tools above read), and documents broken in ways only a
/// parser that resolves references sees are refused.
#[test]
fn the_asyncapi_parser_reads_the_committed_document_without_errors_or_warnings() {
    support::require_tool("node", WHY);
    let parser = parser();
    let dir = support::scratch_dir("asyncapi-parse");
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(committed()).unwrap()).unwrap();

    // An operation sending a message of another channel; a reference to nothing.
    let mut foreign_message = document.clone();
    foreign_message["operations"]["sendOrderOrderPlaced"]["messages"][0] =
        json!({"$ref": "#/channels/Order.ItemAdded/messages/ItemAddedV2"});
    let mut dangling = document.clone();
    dangling["components"]["messages"]["OrderPlacedV2"]["headers"] =
        json!({"$ref": "#/components/schemas/Nowhere"});
    let broken = [
        ("foreign-message", foreign_message),
        ("dangling-reference", dangling),
    ];
    let mut files = vec![committed()];
    for (name, value) in &broken {
        let file = dir.join(format!("{name}.json"));
        write_json(&file, value);
        files.push(file);
    }
    let output = run(
        Command::new("node")
            .arg(script("parse.js"))
            .arg(&parser)
            .args(&files),
        "node parse.js",
    );
    println!("{output}");

    let (found, parsed) = diagnostics(&output, &committed());
    assert!(parsed, "the parser returned no document:\n{output}");
    let unexpected: Vec<&String> = found
        .iter()
        .filter(|(severity, code, _)| !(severity == "info" && code == "asyncapi-latest-version"))
        .map(|(_, _, line)| line)
        .collect();
    assert!(
        unexpected.is_empty(),
        "the parser's diagnostics of the committed document (all of them):\n{output}"
    );
    for (name, _) in &broken {
        let (found, _) = diagnostics(&output, &dir.join(format!("{name}.json")));
        assert!(
            found.iter().any(|(severity, _, _)| severity == "error"),
            "the parser must refuse the {name} document:\n{output}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A message as the NATS server stored it.
fn stored_message(form: &str, message: &async_nats::jetstream::message::StreamMessage) -> Value {
    let headers: serde_json::Map<String, Value> = message
        .headers
        .iter()
        .map(|(name, values)| {
            let values: Vec<&str> = values.iter().map(|value| value.as_str()).collect();
            (name.to_string(), json!(values))
        })
        .collect();
    json!({
        "form": form,
        "subject": message.subject.as_str(),
        "headers": headers,
        "body": String::from_utf8(message.payload.to_vec()).expect("a UTF-8 body"),
    })
}

/// The real NATS publisher publishes the example domain's history (every event version,
/// written through the repository to SQLite) to a real server, once as envelopes and once
/// in CloudEvents binary mode; every message the server stored (subject, headers and body)
/// matches exactly the document's message for its event's name, version and form on the
/// channel at its subject. Copies of stored messages broken in one place match none.
#[test]
fn what_the_nats_publisher_sends_is_what_the_document_describes() {
    let url = std::env::var("FACTUM_NATS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        panic!(
            "FACTUM_NATS_URL is not set{}: what the NATS publisher sends must be checked \
             against the AsyncAPI document. Start a throwaway server with \
             `eval \"$(scripts/nats.sh start)\"`",
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                " (CI=true: a missing server is a failure, not a skip)"
            } else {
                ""
            }
        );
    };
    support::require_tool("node", WHY);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tag = format!("{}_{nanos}", std::process::id());
    // A prefix of its own, so no other test's stream overlaps; the document says it.
    let prefix = format!("t_asyncapi_{tag}");
    let info = AsyncApiInfo {
        subject_prefix: prefix.clone(),
        ..info()
    };
    let document = asyncapi(&registry_json(), &info).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (events, received) = support::runtime().block_on(async {
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .unwrap();
        support::write_history(&store, 0).await;
        let events = store.read_all(0, 1000).await.unwrap();
        let client = async_nats::connect(url.as_str())
            .await
            .expect("connect to FACTUM_NATS_URL");
        let jetstream = async_nats::jetstream::new(client);
        let mut received = Vec::new();
        let forms = [
            ("envelope", None),
            (
                "cloudevents-binary",
                Some(CloudEvents::new("/services/orders", "shop").unwrap()),
            ),
        ];
        for (form, mapping) in forms {
            let stream = format!("T_asyncapi_{form}_{tag}");
            let checkpoints = SqliteReadModel::open(dir.path().join(format!("{form}.sqlite3")))
                .await
                .unwrap();
            let mut publisher = NatsPublisher::new(store.clone(), checkpoints, url.as_str())
                .stream(&stream)
                .subject_prefix(&prefix);
            if let Some(mapping) = mapping {
                publisher = publisher.cloudevents(mapping);
            }
            let published = publisher.publish_pending().await.expect("publish");
            assert_eq!(published.published, events.len() as u64);
            let mut stored = jetstream.get_stream(&stream).await.unwrap();
            assert_eq!(
                stored.info().await.unwrap().state.messages,
                events.len() as u64
            );
            // The care task in the history is another domain's: its own document
            // describes it, this one has no channel for it.
            for (sequence, event) in (1..).zip(&events) {
                if event.stream_type == "Order" {
                    let message = stored.get_raw_message(sequence).await.unwrap();
                    received.push(stored_message(form, &message));
                }
            }
            // Both forms go to the same subjects: one stream at a time.
            jetstream.delete_stream(&stream).await.unwrap();
        }
        let ours = events
            .into_iter()
            .filter(|event| event.stream_type == "Order")
            .collect::<Vec<_>>();
        (ours, received)
    });
    support::assert_every_event_version(
        &events
            .iter()
            .map(|event| serde_json::to_value(event).unwrap())
            .collect::<Vec<_>>(),
        &registry_json(),
    );

    // Copies of real messages, each broken in one place.
    let envelope = received[0].clone();
    let last_binary = received.last().unwrap().clone();
    let mut other_subject = envelope.clone();
    other_subject["subject"] = received[1]["subject"].clone();
    let mut no_position = envelope.clone();
    no_position["headers"]
        .as_object_mut()
        .unwrap()
        .remove("Factum-Position");
    let mut wrong_version = envelope.clone();
    let mut body: Value = serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap();
    body["schema_version"] = json!(99);
    wrong_version["body"] = json!(body.to_string());
    let mut undocumented_header = last_binary.clone();
    undocumented_header["headers"]["X-Unknown"] = json!(["1"]);
    let mut wrong_event_version = last_binary.clone();
    wrong_event_version["headers"]["ce-eventversion"] = json!(["99"]);
    let mut envelope_as_binary = last_binary.clone();
    envelope_as_binary["body"] = received[events.len() - 1]["body"].clone();
    let broken = [
        other_subject,
        no_position,
        wrong_version,
        undocumented_header,
        wrong_event_version,
        envelope_as_binary,
    ];

    let expected: Vec<(String, u32)> = (0..received.len())
        .map(|index| {
            let event = &events[index % events.len()];
            (event.name.clone(), event.schema_version)
        })
        .collect();
    assert_matched("nats", &document, &received, &expected, &broken);
}

/// Runs the validator on `document` and the real messages `received` (each of the event
/// name and version `expected` at its index), then on the `broken` copies: the document
/// is valid, each received message matches exactly its event version's message of its
/// form, and no broken copy matches anything. `bus` names the scratch directory: the
/// tests of both buses run at once.
fn assert_matched(
    bus: &str,
    document: &Value,
    received: &[Value],
    expected: &[(String, u32)],
    broken: &[Value],
) {
    let tools = tools();
    let scratch = support::scratch_dir(&format!("asyncapi-received-{bus}"));
    let document_file = scratch.join("document.json");
    write_json(&document_file, document);
    let received_file = scratch.join("received.json");
    let all: Vec<&Value> = received.iter().chain(broken).collect();
    write_json(&received_file, &json!(all));
    let output = run(
        Command::new("node")
            .arg(script("validate.js"))
            .arg(&tools)
            .arg(&received_file)
            .arg(&document_file),
        "node validate.js",
    );
    println!("{output}");
    assert!(
        output.contains(&format!("VALID {}\n", document_file.display())),
        "{output}"
    );
    let messages = &document["components"]["messages"];
    for (index, message) in received.iter().enumerate() {
        let (name, version) = &expected[index];
        let key = output
            .lines()
            .find_map(|line| line.strip_prefix(&format!("RECEIVED {index} ")))
            .unwrap_or_else(|| panic!("no verdict on message {index}:\n{output}"));
        let matched = &messages[key]["x-factum"];
        assert!(
            matched["name"] == name.as_str()
                && matched["version"] == *version
                && matched["form"] == message["form"],
            "message {index} ({} {name} v{version}, {}) must match its event's message, not `{key}`:\n{message}\n{output}",
            message["form"],
            message["subject"]
        );
    }
    for (index, message) in all.iter().enumerate().skip(received.len()) {
        assert!(
            output.contains(&format!("RECEIVED {index} unmatched ")),
            "the broken message {index} must match nothing: {message}\n{output}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The records of `topic`, read back from the start with a plain consumer until `count`
/// arrived (a liveness bound of a minute), as the validator takes them.
fn kafka_records(brokers: &str, topic: &str, count: usize) -> Vec<Value> {
    use factum::kafka::rdkafka::config::ClientConfig;
    use factum::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
    use factum::kafka::rdkafka::message::{Headers, Message};

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("asyncapi-reader-{nanos}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribes");
    let started = std::time::Instant::now();
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "read {} of {count} records of {topic} within a minute",
            records.len()
        );
        let Some(message) = consumer.poll(std::time::Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a record");
        let headers: serde_json::Map<String, Value> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        let value = std::str::from_utf8(header.value.unwrap_or_default())
                            .expect("a UTF-8 header");
                        (header.key.to_owned(), json!([value]))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut record = json!({
            "form": "kafka",
            "subject": message.topic(),
            "headers": headers,
            "body": std::str::from_utf8(message.payload().unwrap_or_default()).expect("a UTF-8 value"),
        });
        if let Some(key) = message.key() {
            record["key"] = json!(std::str::from_utf8(key).expect("a UTF-8 key"));
        }
        records.push(record);
    }
    records
}

/// The real Kafka publisher publishes the example domain's history (every event version,
/// written through the repository to SQLite) to a real Kafka-protocol broker; every record
/// of the order topic (topic, key, headers and value) matches exactly the document's
/// Kafka message for its event's name and version on the channel at its topic. Copies of
/// stored records broken in one place match none.
#[test]
fn what_the_kafka_publisher_sends_is_what_the_document_describes() {
    let brokers = std::env::var("FACTUM_KAFKA_BROKERS")
        .ok()
        .filter(|brokers| !brokers.trim().is_empty());
    let Some(brokers) = brokers else {
        panic!(
            "FACTUM_KAFKA_BROKERS is not set{}: what the Kafka publisher sends must be \
             checked against the AsyncAPI document. Start a throwaway broker with \
             `eval \"$(scripts/kafka.sh start)\"`",
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                " (CI=true: a missing broker is a failure, not a skip)"
            } else {
                ""
            }
        );
    };
    support::require_tool("node", WHY);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // A prefix of its own, so no other test's topics overlap; the document says it.
    let prefix = format!("t-asyncapi-{}-{nanos}", std::process::id());
    let info = AsyncApiInfo {
        kafka_topic_prefix: prefix.clone(),
        ..info()
    };
    let document = asyncapi(&registry_json(), &info).unwrap();
    let topic = format!("{prefix}.Order");

    let dir = tempfile::tempdir().unwrap();
    let events = support::runtime().block_on(async {
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .unwrap();
        support::write_history(&store, 0).await;
        let events = store.read_all(0, 1000).await.unwrap();
        let checkpoints = SqliteReadModel::open(dir.path().join("kafka"))
            .await
            .unwrap();
        let published = KafkaPublisher::new(store.clone(), checkpoints, brokers.as_str())
            .topic_prefix(&prefix)
            .publish_pending()
            .await
            .expect("publish");
        assert_eq!(published.published, events.len() as u64);
        events
    });
    // The care task in the history is another domain's, on a topic of its own.
    let ours: Vec<_> = events
        .iter()
        .filter(|event| event.stream_type == "Order")
        .collect();
    let received = kafka_records(&brokers, &topic, ours.len());
    support::assert_every_event_version(
        &ours
            .iter()
            .map(|event| serde_json::to_value(event).unwrap())
            .collect::<Vec<_>>(),
        &registry_json(),
    );
    // Records come partition by partition: each is matched to its event by position.
    let expected: Vec<(String, u32)> = received
        .iter()
        .map(|record| {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            let event = ours
                .iter()
                .find(|event| body["position"] == event.position)
                .unwrap_or_else(|| panic!("a record of no event of ours: {record}"));
            (event.name.clone(), event.schema_version)
        })
        .collect();

    // Copies of real records, each broken in one place.
    let record = &received[0];
    let mut other_topic = record.clone();
    other_topic["subject"] = json!(format!("{prefix}.Elsewhere"));
    let mut no_position = record.clone();
    no_position["headers"]
        .as_object_mut()
        .unwrap()
        .remove("factum_position");
    let mut no_key = record.clone();
    no_key.as_object_mut().unwrap().remove("key");
    let mut wrong_event_version = record.clone();
    wrong_event_version["headers"]["ce_eventversion"] = json!(["99"]);
    let mut undocumented_header = record.clone();
    undocumented_header["headers"]["X-Unknown"] = json!(["1"]);
    let mut nats_header_names = record.clone();
    let ce_id = nats_header_names["headers"]
        .as_object_mut()
        .unwrap()
        .remove("ce_id")
        .unwrap();
    nats_header_names["headers"]["ce-id"] = ce_id;
    let mut payload_alone = record.clone();
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    payload_alone["body"] = json!(body["payload"].to_string());
    let broken = [
        other_topic,
        no_position,
        no_key,
        wrong_event_version,
        undocumented_header,
        nats_header_names,
        payload_alone,
    ];
    assert_matched("kafka", &document, &received, &expected, &broken);
}
