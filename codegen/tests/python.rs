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

use factum_codegen::python::{MINIMUM_PYTHON, PythonError, python};
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

/// An optional envelope property (`Option<u32>` with `default` and `skip_serializing_if`)
/// is optional and nullable, as serde reads it: generically.
#[test]
fn an_optional_envelope_property_is_optional_and_nullable() {
    let mut registry = registry_json();
    registry["envelope"]["properties"]["stored_schema_version"] =
        json!({"type": ["integer", "null"], "format": "uint32", "minimum": 0});
    let module = python(&registry).unwrap();
    assert!(
        module.contains(
            "    stored_schema_version: Annotated[int, Field(ge=0, le=4294967295)] | None = None\n"
        ),
        "{module}"
    );
}

/// Constructs the order domain does not use, as schemars emits them.
fn shapes_registry() -> Value {
    json!({"envelope": factum::registry::Registry::builder().build().unwrap().envelope().clone(),
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

    // Prices up to 2^64 - 1: Python reads every integer Rust does, exactly.
    let registry = registry_json();
    let real = support::RealEnvelopes::read("python", u64::MAX, &registry);
    let cases = support::cases_json(&real.values(), &registry, |_| None);
    let input = json!({"envelopes": real.cases(), "foreign": real.foreign, "cases": cases});

    let dir = support::scratch_dir("py-check");
    std::fs::write(dir.join("generated.py"), generate()).unwrap();
    std::fs::write(
        dir.join("shapes.py"),
        python(&shapes_registry()).expect("the synthetic shapes map to Python"),
    )
    .unwrap();
    std::fs::write(
        dir.join("envelopes.json"),
        serde_json::to_string_pretty(&input).unwrap(),
    )
    .unwrap();
    std::fs::copy(fixtures().join("check.py"), dir.join("check.py")).unwrap();

    // The module states the minimum Python version; mypy holds it to it: it type-checks
    // for that version and not for the one before.
    let module = generate();
    let stated = format!("Requires Python {MINIMUM_PYTHON}+");
    assert!(module.contains(&stated), "the docstring says `{stated}`");
    let (major, minor) = MINIMUM_PYTHON.split_once('.').unwrap();
    let before = format!("{major}.{}", minor.parse::<u32>().unwrap() - 1);
    let mypy = |version: &str| {
        let mut command = Command::new(&python_bin);
        command
            .args(["-m", "mypy", "--strict", "--no-incremental"])
            .args(["--python-version", version])
            .args(["generated.py", "shapes.py", "check.py"])
            .current_dir(&dir);
        command
    };
    let older = mypy(&before).output().expect("run mypy");
    assert!(
        !older.status.success(),
        "the module type-checks for Python {before}: the stated minimum {MINIMUM_PYTHON} is too high"
    );
    run(&mut mypy(MINIMUM_PYTHON), "mypy --strict");
    let output = run(
        Command::new(&python_bin)
            .arg("check.py")
            .arg("envelopes.json")
            .current_dir(&dir),
        "python check.py",
    );
    println!("{output}");
    real.assert_all_parsed(&output);
    support::assert_cases_judged(&output, &cases);
    assert!(
        output.contains("shapes: 4 accepted, 5 rejected"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
