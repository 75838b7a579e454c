//! The Python module generated for the example domain: its snapshot, its determinism, and a
//! real type check (`mypy --strict`) and run (pydantic 2.9.2) against the envelopes factum
//! really writes: the example domain's commands run through a repository into SQLite and
//! PostgreSQL stores, read back and serialised (see `support::write_history`).
//!
//! The check needs `python3` (3.11+, with `venv` and `pip`) on the `PATH`; it installs the
//! pinned `pydantic` and `mypy` once into a virtual environment in `<target>/tmp/py-tools`
//! (or the directory in `FACTUM_PY_TOOLS`). It fails, never skips, when they are missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use factum_codegen::python::{PythonError, python};
use serde_json::{Value, json};
use support::{registry_json, run};

const REQUIREMENTS: &[&str] = support::PYTHON_REQUIREMENTS;

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
    let reversed = support::reversed_registry_json();
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

/// Malformed events and the pydantic location each error must name.
fn malformed_events(envelopes: &[Value]) -> Vec<(Value, Value)> {
    let (
        placed,
        [
            wrong_quantity,
            wrong_currency,
            missing_customer,
            retired_version,
            bad_actor,
            fractional,
        ],
    ) = support::broken_order_placed(envelopes);
    let mut numeric_timestamp = placed.clone();
    numeric_timestamp["timestamp"] = json!(1_767_322_445);
    let mut naive_timestamp = placed.clone();
    naive_timestamp["timestamp"] = json!("2026-01-02T03:04:05");
    let (bad_uuid, yesterday, beyond_u32) = support::broken_formats_and_bounds(envelopes);
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
        (
            retired_version,
            path(json!(["ItemAdded", "schema_version"])),
        ),
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
        (yesterday, path(json!(["OrderPlaced", 2, "timestamp"]))),
        (
            beyond_u32,
            path(json!(["OrderPlaced", 2, "payload", "lines", 0, "quantity"])),
        ),
        (negative, path(json!(["OrderPlaced", 2, "position"]))),
    ]
}

/// Constructs the order domain does not use, as schemars emits them.
fn shapes_registry() -> Value {
    json!({"envelope": factum::envelope::envelope_schema(),
        "entries": [{"kind": "event", "name": "Shaped", "version": 1, "doc": "Shapes.",
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

#[test]
fn the_module_type_checks_strictly_and_parses_every_real_envelope() {
    let python_bin = support::venv_python("FACTUM_PY_TOOLS", "py-tools", REQUIREMENTS);

    let real = support::RealEnvelopes::read("python", u64::MAX, &registry_json());
    let values = real.values();
    let malformed: Vec<Value> = malformed_events(&values)
        .into_iter()
        .map(|(event, loc)| json!({"text": event.to_string(), "loc": loc}))
        .collect();
    let cases = json!({"envelopes": real.cases(), "malformed": malformed});

    let dir = support::scratch_dir("py-check");
    std::fs::write(dir.join("generated.py"), generate()).unwrap();
    std::fs::write(
        dir.join("shapes.py"),
        python(&shapes_registry()).expect("the synthetic shapes map to Python"),
    )
    .unwrap();
    std::fs::write(
        dir.join("envelopes.json"),
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
            .arg("envelopes.json")
            .current_dir(&dir),
        "python check.py",
    );
    println!("{output}");
    real.assert_all_parsed(&output, malformed.len());
    assert!(
        output.contains("shapes: 3 accepted, 6 rejected"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
