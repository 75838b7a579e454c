//! The TypeScript module generated for the example domain: its snapshot, its determinism,
//! and a real compile (`tsc --strict --noEmit`) and run (node) against golden events that
//! factum itself encoded.
//!
//! The compile-and-run test needs `node` and `npm` on the `PATH`; it installs TypeScript
//! 5.6.3 once into `<target>/tmp/ts-tools` (or the directory in `FACTUM_TS_TOOLS`). It fails,
//! never skips, when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use factum::EventSet;
use factum::registry::Registry;
use factum_codegen::typescript::typescript;
use factum_example_orders::{
    Currency, ItemAdded, ItemRemoved, Line, Order, OrderCancelled, OrderConfirmed, OrderDelivered,
    OrderEvent, OrderNoteAdded, OrderPlaced, OrderPlacedV1, OrderShipped,
};
use serde_json::{Value, json};

const TYPESCRIPT_VERSION: &str = "5.6.3";

fn registry_json() -> Value {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicting schemas");
    serde_json::to_value(&registry).expect("the registry serialises")
}

fn generate() -> String {
    typescript(&registry_json()).expect("the example domain maps to TypeScript")
}

#[test]
fn the_example_domain_module_matches_its_snapshot() {
    insta::assert_snapshot!("orders_typescript", generate());
}

#[test]
fn generating_twice_gives_identical_bytes() {
    let first = generate();
    let second = generate();
    assert_eq!(first.as_bytes(), second.as_bytes());

    // Entry order in the input does not matter either.
    let mut reversed = registry_json();
    reversed["entries"]
        .as_array_mut()
        .expect("entries")
        .reverse();
    assert_eq!(typescript(&reversed).unwrap(), first);
}

/// One stored event as the envelope JSON the generated module describes.
fn envelope(name: &str, version: u32, payload: Value, sequence: u64) -> Value {
    let mut metadata = json!({
        "correlation_id": "0190a6f5-1c2b-7d3e-8f40-5a6b7c8d9e0f",
        "causation_id": if sequence.is_multiple_of(2) { Value::Null } else { json!("0190a6f5-1c2b-7d3e-8f40-000000000001") },
        "actor": if sequence.is_multiple_of(3) { Value::Null } else { json!("support@example.com") },
    });
    if sequence == 1 {
        metadata["extra"] = json!({"channel": "web", "attempt": 2, "tags": ["a", {"b": null}]});
    }
    json!({
        "event_id": format!("0190a6f5-1c2b-7d3e-8f40-{sequence:012}"),
        "stream_id": "order-42",
        "stream_type": "Order",
        "stream_version": sequence,
        "position": 1000 + sequence,
        "name": name,
        "version": version,
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "metadata": metadata,
        "payload": payload,
    })
}

/// Every event version of the domain, encoded by factum: the current versions through
/// `OrderEvent::encode`, the older typed version (`OrderPlacedV1`) through serde.
fn golden_events() -> Vec<Value> {
    let line = |sku: &str, quantity: u32, unit_price: u64| Line {
        sku: sku.to_owned(),
        quantity,
        unit_price,
    };
    let events = [
        OrderEvent::Placed(OrderPlaced {
            customer_id: "c-7".to_owned(),
            lines: vec![line("tea", 2, 450), line("mug", 1, 9_007_199_254_740_991)],
            currency: Currency::Gbp,
        }),
        OrderEvent::ItemAdded(ItemAdded {
            sku: "spoon \"silver\" ✓".to_owned(),
            quantity: 3,
            unit_price: 0,
        }),
        OrderEvent::ItemRemoved(ItemRemoved {
            sku: "mug".to_owned(),
        }),
        OrderEvent::Confirmed(OrderConfirmed { total: 1_350 }),
        OrderEvent::Shipped(OrderShipped {
            carrier: "DHL".to_owned(),
            tracking_code: "JD0146".to_owned(),
        }),
        OrderEvent::Delivered(OrderDelivered {}),
        OrderEvent::Cancelled(OrderCancelled {
            reason: "changed mind\nline two".to_owned(),
        }),
        OrderEvent::NoteAdded(OrderNoteAdded {
            text: String::new(),
        }),
    ];
    let mut golden = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let encoded = event.encode().expect("the event encodes");
        let payload: Value = serde_json::from_str(encoded.payload.get()).unwrap();
        golden.push(envelope(
            encoded.name,
            encoded.version,
            payload,
            index as u64 + 1,
        ));
    }
    let v1 = OrderPlacedV1 {
        customer_id: "c-1".to_owned(),
        lines: vec![],
    };
    golden.push(envelope(
        "OrderPlaced",
        1,
        serde_json::to_value(&v1).unwrap(),
        golden.len() as u64 + 1,
    ));
    golden
}

/// Malformed events and the path each error must name.
fn malformed_events(golden: &[Value]) -> Vec<(Value, &'static str)> {
    let placed = golden
        .iter()
        .find(|event| event["name"] == "OrderPlaced" && event["version"] == 2)
        .expect("an OrderPlaced v2 sample");
    let mut wrong_quantity = placed.clone();
    wrong_quantity["payload"]["lines"][1]["quantity"] = json!("2");
    let mut wrong_currency = placed.clone();
    wrong_currency["payload"]["currency"] = json!("Yen");
    let mut missing_customer = placed.clone();
    missing_customer["payload"]
        .as_object_mut()
        .unwrap()
        .remove("customer_id");
    let mut retired_version = placed.clone();
    retired_version["name"] = json!("ItemAdded");
    retired_version["version"] = json!(1);
    let mut bad_actor = placed.clone();
    bad_actor["metadata"]["actor"] = json!(7);
    let mut fractional = placed.clone();
    fractional["stream_version"] = json!(1.5);
    vec![
        (wrong_quantity, "$.payload.lines[1].quantity"),
        (wrong_currency, "$.payload.currency"),
        (missing_customer, "$.payload.customer_id"),
        (retired_version, "$"),
        (bad_actor, "$.metadata.actor"),
        (fractional, "$.stream_version"),
    ]
}

/// Constructs the order domain does not use, as schemars emits them.
fn shapes_registry() -> Value {
    json!({"entries": [{"kind": "event", "name": "Shaped", "version": 1, "doc": "Shapes.",
        "schema": {
            "type": "object",
            "properties": {
                "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                "note": {"type": ["string", "null"]},
                "shape": {"$ref": "#/$defs/Shape"},
                "maybe": {"anyOf": [{"$ref": "#/$defs/Shape"}, {"type": "null"}]},
                "either": {"anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "integer"}}
                ]},
                "any": true,
                "size": {"type": "string", "enum": ["S", "M"]}
            },
            "required": ["tags", "note", "shape", "maybe", "either", "any"],
            "$defs": {"Shape": {"oneOf": [
                {"type": "object", "properties": {
                    "kind": {"type": "string", "const": "Circle"},
                    "r": {"type": "number", "format": "double"}
                }, "required": ["kind", "r"]},
                {"type": "object", "properties": {
                    "kind": {"type": "string", "const": "Square"}
                }, "required": ["kind"]}
            ]}}
        }
    }]})
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/typescript")
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error} ({command:?})"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `node` and `npm` must be installed: the test fails (under `CI=true` and locally alike)
/// rather than silently passing without compiling anything.
fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        found,
        "`{tool}` is not on the PATH: the generated TypeScript must be compiled and run to be \
         tested. Install Node.js 18+ with npm (e.g. `apt-get install nodejs npm`){}",
        if ci {
            " — CI=true: a missing toolchain is a failure, not a skip"
        } else {
            ""
        }
    );
}

/// The pinned TypeScript compiler, installed once and cached.
fn tsc() -> PathBuf {
    let tools = std::env::var_os("FACTUM_TS_TOOLS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("ts-tools"),
        PathBuf::from,
    );
    let tsc = tools.join("node_modules/typescript/bin/tsc");
    let installed = tools.join("node_modules/typescript/package.json");
    let version_ok = std::fs::read_to_string(&installed)
        .is_ok_and(|manifest| manifest.contains(&format!("\"version\": \"{TYPESCRIPT_VERSION}\"")));
    if !version_ok {
        require_tool("npm");
        std::fs::create_dir_all(&tools).unwrap();
        run(
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&tools)
                .arg("--no-audit")
                .arg("--no-fund")
                .arg("--no-save")
                .arg(format!("typescript@{TYPESCRIPT_VERSION}")),
            "npm install typescript",
        );
    }
    tsc
}

#[test]
fn the_module_type_checks_strictly_and_round_trips_golden_events() {
    require_tool("node");
    let tsc = tsc();

    let golden = golden_events();
    let registry = registry_json();
    let mut covered: Vec<(String, u64)> = golden
        .iter()
        .map(|event| {
            (
                event["name"].as_str().unwrap().to_owned(),
                event["version"].as_u64().unwrap(),
            )
        })
        .collect();
    covered.sort();
    covered.dedup();
    let mut registered: Vec<(String, u64)> = registry["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "event")
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_owned(),
                entry["version"].as_u64().unwrap(),
            )
        })
        .collect();
    registered.sort();
    assert_eq!(
        covered, registered,
        "a golden event for every event version"
    );

    let texts: Vec<String> = golden.iter().map(Value::to_string).collect();
    let malformed: Vec<Value> = malformed_events(&golden)
        .into_iter()
        .map(|(event, path)| json!({"text": event.to_string(), "path": path}))
        .collect();
    let golden_module = format!(
        "// Written by codegen/tests/typescript.rs.\n\
         export const golden: string[] = {};\n\
         export const malformed: {{ text: string; path: string }}[] = {};\n",
        serde_json::to_string_pretty(&texts).unwrap(),
        serde_json::to_string_pretty(&malformed).unwrap(),
    );

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ts-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("generated.ts"), generate()).unwrap();
    std::fs::write(dir.join("golden.ts"), golden_module).unwrap();
    std::fs::write(
        dir.join("shapes.ts"),
        typescript(&shapes_registry()).expect("the synthetic shapes map to TypeScript"),
    )
    .unwrap();
    for fixture in ["tsconfig.json", "check.ts"] {
        std::fs::copy(fixtures().join(fixture), dir.join(fixture)).unwrap();
    }

    let compile = |extra: &[&str], what: &str| {
        run(
            Command::new("node")
                .arg(&tsc)
                .arg("--project")
                .arg(&dir)
                .arg("--strict")
                .args(extra),
            what,
        )
    };
    compile(&["--noEmit"], "tsc --strict --noEmit");
    compile(&[], "tsc (transpile)");
    let output = run(
        Command::new("node").arg(dir.join("out/check.js")),
        "node check.js",
    );
    println!("{output}");
    assert!(
        output.contains(&format!(
            "checked {} golden events ({} name/version pairs) and {} malformed ones",
            golden.len(),
            registered.len(),
            malformed.len()
        )),
        "{output}"
    );
    assert!(
        output.contains("shapes: 2 accepted, 6 rejected"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
