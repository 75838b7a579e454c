//! The Python module generated for the example domain: its snapshot, its determinism, and a
//! real type check (`mypy --strict`) and run (pydantic 2.9.2) against golden events that
//! factum itself encoded.
//!
//! The check needs `python3` (3.11+, with `venv` and `pip`) on the `PATH`; it installs the
//! pinned `pydantic` and `mypy` once into a virtual environment in `<target>/tmp/py-tools`
//! (or the directory in `FACTUM_PY_TOOLS`). It fails, never skips, when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use factum::EventSet;
use factum::registry::Registry;
use factum_codegen::python::{PythonError, python};
use factum_example_orders::{
    Currency, ItemAdded, ItemRemoved, Line, Order, OrderCancelled, OrderConfirmed, OrderDelivered,
    OrderEvent, OrderNoteAdded, OrderPlaced, OrderPlacedV1, OrderShipped,
};
use serde_json::{Value, json};

const REQUIREMENTS: &[&str] = &["pydantic==2.9.2", "mypy==1.13.0"];

fn registry_json() -> Value {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicting schemas");
    serde_json::to_value(&registry).expect("the registry serialises")
}

fn generate() -> String {
    python(&registry_json()).expect("the example domain maps to Python")
}

#[test]
fn the_example_domain_module_matches_its_snapshot() {
    insta::assert_snapshot!("orders_python", generate());
}

#[test]
fn generating_twice_gives_identical_bytes() {
    let first = generate();
    assert_eq!(first.as_bytes(), generate().as_bytes());
    let mut reversed = registry_json();
    reversed["entries"]
        .as_array_mut()
        .expect("entries")
        .reverse();
    assert_eq!(python(&reversed).unwrap(), first);
}

#[test]
fn unsupported_constructs_name_the_entry_and_the_path() {
    let registry = json!({"entries": [{"kind": "event", "name": "Moved", "version": 3,
    "doc": "", "schema": {
        "type": "object",
        "properties": {"to": {"$ref": "#/$defs/Point"}},
        "required": ["to"],
        "$defs": {"Point": {"type": "object", "properties": {
            "at": {"type": "array", "prefixItems": [{"type": "integer"}]}
        }}}
    }}]});
    assert_eq!(
        python(&registry),
        Err(PythonError::Unsupported {
            entry: "event Moved v3".to_owned(),
            path: "/$defs/Point/properties/at/prefixItems".to_owned(),
            construct: "the keyword `prefixItems`".to_owned(),
        })
    );
    let float_const = json!({"entries": [{"kind": "command", "name": "Tilt", "doc": "",
        "schema": {"type": "object", "properties": {"angle": {"const": 1.5}}}}]});
    assert!(matches!(
        python(&float_const),
        Err(PythonError::Unsupported { entry, path, .. })
            if entry == "command Tilt" && path == "/properties/angle/const"
    ));
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
            unit_price: u64::MAX,
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

/// Malformed events and the pydantic location each error must name.
fn malformed_events(golden: &[Value]) -> Vec<(Value, Value)> {
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
    let mut numeric_timestamp = placed.clone();
    numeric_timestamp["timestamp"] = json!(1_767_322_445);
    let mut naive_timestamp = placed.clone();
    naive_timestamp["timestamp"] = json!("2026-01-02T03:04:05");
    let mut bad_uuid = placed.clone();
    bad_uuid["event_id"] = json!("not-a-uuid");
    let mut negative = placed.clone();
    negative["position"] = json!(-1);
    let path = |parts: Value| parts;
    vec![
        (
            wrong_quantity,
            path(json!(["OrderPlaced", 2, "payload", "lines", 1, "quantity"])),
        ),
        (
            wrong_currency,
            path(json!(["OrderPlaced", 2, "payload", "currency"])),
        ),
        (
            missing_customer,
            path(json!(["OrderPlaced", 2, "payload", "customer_id"])),
        ),
        (retired_version, path(json!(["ItemAdded", "version"]))),
        (
            bad_actor,
            path(json!(["OrderPlaced", 2, "metadata", "actor"])),
        ),
        (
            fractional,
            path(json!(["OrderPlaced", 2, "stream_version"])),
        ),
        (
            numeric_timestamp,
            path(json!(["OrderPlaced", 2, "timestamp"])),
        ),
        (
            naive_timestamp,
            path(json!(["OrderPlaced", 2, "timestamp"])),
        ),
        (bad_uuid, path(json!(["OrderPlaced", 2, "event_id"]))),
        (negative, path(json!(["OrderPlaced", 2, "position"]))),
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
                "size": {"type": "string", "enum": ["S", "M"]},
                "class": {"type": "boolean"},
                "on": {"type": "string", "format": "date"}
            },
            "required": ["tags", "note", "shape", "maybe", "either", "any"],
            "$defs": {"Shape": {
                "description": "A shape, tagged by \"kind\".",
                "oneOf": [
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
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

/// `python3` must be installed: the test fails (under `CI=true` and locally alike) rather
/// than silently passing without running anything.
fn require_python() {
    let found = Command::new("python3")
        .args(["-c", "import sys, venv; assert sys.version_info >= (3, 11)"])
        .output()
        .is_ok_and(|output| output.status.success());
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        found,
        "`python3` (3.11+, with the venv module) is not on the PATH: the generated Python \
         must be type-checked and run to be tested. Install it (e.g. `apt-get install \
         python3 python3-venv python3-pip`){}",
        if ci {
            " — CI=true: a missing toolchain is a failure, not a skip"
        } else {
            ""
        }
    );
}

/// The virtual environment with the pinned pydantic and mypy, created once and cached;
/// returns its `python`.
fn venv_python() -> PathBuf {
    let tools = std::env::var_os("FACTUM_PY_TOOLS").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-tools"),
        PathBuf::from,
    );
    let python = tools.join("bin/python");
    let stamp = tools.join("factum-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|found| found == wanted) && python.exists() {
        return python;
    }
    require_python();
    if !python.exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&tools),
            "python3 -m venv",
        );
    }
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
        "pip install pydantic mypy",
    );
    std::fs::write(&stamp, wanted).unwrap();
    python
}

#[test]
fn the_module_type_checks_strictly_and_round_trips_golden_events() {
    let python_bin = venv_python();

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
        .map(|(event, loc)| json!({"text": event.to_string(), "loc": loc}))
        .collect();
    let cases = json!({"golden": texts, "malformed": malformed});

    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("py-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("generated.py"), generate()).unwrap();
    std::fs::write(
        dir.join("shapes.py"),
        python(&shapes_registry()).expect("the synthetic shapes map to Python"),
    )
    .unwrap();
    std::fs::write(
        dir.join("golden.json"),
        serde_json::to_string_pretty(&cases).unwrap(),
    )
    .unwrap();
    std::fs::copy(fixtures().join("check.py"), dir.join("check.py")).unwrap();

    run(
        Command::new(&python_bin)
            .args(["-m", "mypy", "--strict", "--no-incremental"])
            .args(["generated.py", "shapes.py", "check.py"])
            .current_dir(&dir),
        "mypy --strict",
    );
    let output = run(
        Command::new(&python_bin)
            .arg("check.py")
            .arg("golden.json")
            .current_dir(&dir),
        "python check.py",
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
        output.contains("shapes: 3 accepted, 6 rejected"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
