//! The AsyncAPI document generated for the example domain: its snapshot, its determinism,
//! and a real validation against the official AsyncAPI 3.0.0 JSON Schema.
//!
//! The validation test needs `node` and `npm` on the `PATH`; it installs pinned
//! `@asyncapi/specs` (the official specification JSON Schemas), `ajv` 8 and `ajv-formats`
//! once into `<target>/tmp/asyncapi-tools` (or the directory in `FACTUM_ASYNCAPI_TOOLS`).
//! It fails, never skips, when they are missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use factum_codegen::asyncapi::{AsyncApiError, AsyncApiInfo, asyncapi};
use serde_json::{Value, json};
use support::{registry_json, run};

/// The pinned tools: the official specification schemas and a draft-07 validator.
const TOOLS: &[(&str, &str)] = &[
    ("@asyncapi/specs", "6.11.1"),
    ("ajv", "8.17.1"),
    ("ajv-formats", "3.0.1"),
];

fn info() -> AsyncApiInfo {
    AsyncApiInfo {
        title: "Orders".to_owned(),
        version: "1.0.0".to_owned(),
        description: "The events the order service publishes and the commands it accepts."
            .to_owned(),
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

#[test]
fn channels_operations_and_messages_follow_the_documented_layout() {
    let document = generate();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document["channels"]["order"]["address"],
        "factum.events.Order"
    );
    assert_eq!(
        document["channels"]["orderCommands"]["address"],
        "factum.commands.Order"
    );
    let event_messages: Vec<&String> = document["channels"]["order"]["messages"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        event_messages,
        [
            "ItemAddedV2",
            "ItemRemovedV1",
            "OrderCancelledV1",
            "OrderConfirmedV1",
            "OrderDeliveredV1",
            "OrderNoteAddedV1",
            "OrderPlacedV1",
            "OrderPlacedV2",
            "OrderShippedV1"
        ]
    );
    let send = &document["operations"]["sendOrderEvents"];
    assert_eq!(send["action"], "send");
    assert_eq!(send["channel"]["$ref"], "#/channels/order");
    assert_eq!(send["messages"].as_array().unwrap().len(), 9);
    assert_eq!(
        document["operations"]["receiveOrderCommands"]["action"],
        "receive"
    );

    let placed = &document["components"]["messages"]["OrderPlacedV2"];
    assert_eq!(placed["name"], "OrderPlacedV2");
    assert_eq!(placed["title"], "OrderPlaced v2");
    assert_eq!(placed["summary"], "A customer placed an order.");
    // `$defs` moved to components, references rewritten, `$ref` siblings kept via allOf.
    let payload = &placed["payload"];
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
    assert!(!serde_json::to_string(&document).unwrap().contains("$defs"));
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
    let payload = &document["components"]["messages"]["ShapedV1"]["payload"];
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
const WHY: &str = "the generated AsyncAPI document must be validated against the official \
                   specification schema";

/// The pinned validation tools, installed once and cached.
fn tools() -> PathBuf {
    support::npm_tools("FACTUM_ASYNCAPI_TOOLS", "asyncapi-tools", TOOLS, WHY)
}

/// Documents the official schema must reject, each broken in one place.
fn broken_documents(valid: &Value) -> Vec<(&'static str, Value)> {
    let mut wrong_version = valid.clone();
    wrong_version["asyncapi"] = json!("2.6.0");
    let mut operation_without_action = valid.clone();
    operation_without_action["operations"]["sendOrderEvents"]
        .as_object_mut()
        .unwrap()
        .remove("action");
    let mut misspelt_channel_field = valid.clone();
    let channel = misspelt_channel_field["channels"]["order"]
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

/// Messages checked against the generated payload and header schemas: (sample, accepted).
/// The valid one is a real envelope: an `OrderPlaced` v2 written through the repository to
/// SQLite and read back, split into its payload and the rest (the headers).
fn samples() -> Vec<(Value, bool)> {
    let placed: Value = support::sqlite_envelopes(0)
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).unwrap())
        .find(|envelope| envelope["name"] == "OrderPlaced" && envelope["schema_version"] == 2)
        .expect("an OrderPlaced v2 envelope");
    let mut headers = placed.clone();
    let payload = headers
        .as_object_mut()
        .unwrap()
        .remove("payload")
        .expect("a payload");
    let sample = |payload: &Value, headers: &Value| json!({"message": "OrderPlacedV2", "payload": payload, "headers": headers});
    let mut yen = payload.clone();
    yen["currency"] = json!("Yen");
    let mut string_quantity = payload.clone();
    string_quantity["lines"][0]["quantity"] = json!("2");
    let mut other_name = headers.clone();
    other_name["name"] = json!("ItemAdded");
    let mut no_event_id = headers.clone();
    no_event_id.as_object_mut().unwrap().remove("event_id");
    let command = json!({"order_id": "o-1", "customer_id": "c-7",
        "lines": [{"sku": "tea", "quantity": 2}], "currency": "Eur"});
    vec![
        (sample(&payload, &headers), true),
        (sample(&yen, &headers), false),
        (sample(&string_quantity, &headers), false),
        (sample(&payload, &other_name), false),
        (sample(&payload, &no_event_id), false),
        (json!({"message": "PlaceOrder", "payload": command}), true),
        (
            json!({"message": "PlaceOrder", "payload": {"order_id": "o-1"}}),
            false,
        ),
    ]
}

#[test]
fn the_document_is_valid_against_the_official_asyncapi_3_schema() {
    support::require_tool("node", WHY);
    let tools = tools();

    let dir = support::scratch_dir("asyncapi-check");
    let document = generate();
    let generated = dir.join("generated.json");
    std::fs::write(&generated, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    let broken = broken_documents(&document);
    let mut files = vec![generated.clone()];
    for (name, broken) in &broken {
        let file = dir.join(format!("broken-{name}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(broken).unwrap()).unwrap();
        files.push(file);
    }
    let samples = samples();
    let samples_file = dir.join("samples.json");
    let sample_values: Vec<&Value> = samples.iter().map(|(sample, _)| sample).collect();
    std::fs::write(
        &samples_file,
        serde_json::to_string(&sample_values).unwrap(),
    )
    .unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/asyncapi/validate.js");
    let output = run(
        Command::new("node")
            .arg(script)
            .arg(&tools)
            .arg(&samples_file)
            .args(&files),
        "node validate.js",
    );
    println!("{output}");
    assert!(
        output.contains(&format!("VALID {}\n", generated.display())),
        "the generated document must be valid AsyncAPI 3.0.0:\n{output}"
    );
    for (name, _) in &broken {
        let file = dir.join(format!("broken-{name}.json"));
        assert!(
            output.contains(&format!("INVALID {} ", file.display())),
            "the official schema must reject the {name} document:\n{output}"
        );
    }
    for (index, (sample, accepted)) in samples.iter().enumerate() {
        let expected = if *accepted { "accepted" } else { "rejected" };
        assert!(
            output.contains(&format!("SAMPLE {index} {expected}\n")),
            "sample {index} must be {expected}: {sample}\n{output}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
