//! The TypeScript module generated for the example domain: its snapshot, its determinism,
//! and a real compile (`tsc --strict --noEmit`) and run (node) against the envelopes factum
//! really writes: the example domain's commands run through a repository into SQLite and
//! PostgreSQL stores, read back and serialised (see `support::write_history`).
//!
//! The compile-and-run test needs `node` and `npm` on the `PATH`; it installs TypeScript
//! 5.6.3 once into `<target>/tmp/ts-tools` (or the directory in `FACTUM_TS_TOOLS`). It fails,
//! never skips, when they are missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use factum_codegen::typescript::typescript;
use serde_json::{Value, json};
use support::{registry_json, run};

const TYPESCRIPT_VERSION: &str = support::TYPESCRIPT_VERSION;

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
    let reversed = support::reversed_registry_json();
    assert_eq!(typescript(&reversed).unwrap(), first);
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

/// Why node and npm are needed.
const WHY: &str = "the generated TypeScript must be compiled and run to be tested";

/// The pinned TypeScript compiler, installed once and cached.
fn tsc() -> PathBuf {
    support::npm_tools(
        "FACTUM_TS_TOOLS",
        "ts-tools",
        &[("typescript", TYPESCRIPT_VERSION)],
        WHY,
    )
    .join("node_modules/typescript/bin/tsc")
}

#[test]
fn the_module_type_checks_strictly_and_parses_every_real_envelope() {
    support::require_tool("node", WHY);
    let tsc = tsc();

    // Prices up to 2^53 - 1 (the mug's): TypeScript reads every real envelope exactly.
    let registry = registry_json();
    let real = support::RealEnvelopes::read("typescript", 0, &registry);
    let cases = support::cases_json(
        &real.values(),
        &registry,
        support::Case::typescript_difference,
    );
    let envelopes_module = format!(
        "// Written by codegen/tests/typescript.rs.\n\
         export const envelopes: {{ store: string; text: string }}[] = {};\n\
         export const foreign: string[] = {};\n\
         export const cases: {{ label: string; path: string; text: string; accept: boolean; rust: boolean; note: string | null; unknown_event: boolean }}[] = {};\n",
        serde_json::to_string_pretty(&real.cases()).unwrap(),
        serde_json::to_string_pretty(&real.foreign).unwrap(),
        serde_json::to_string_pretty(&cases).unwrap(),
    );

    let dir = support::scratch_dir("ts-check");
    std::fs::write(dir.join("generated.ts"), generate()).unwrap();
    std::fs::write(dir.join("envelopes.ts"), envelopes_module).unwrap();
    std::fs::write(
        dir.join("shapes.ts"),
        typescript(&shapes_registry()).expect("the synthetic shapes map to TypeScript"),
    )
    .unwrap();
    std::fs::copy(support::json_equal_ts(), dir.join("json_equal.ts")).unwrap();
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
    real.assert_all_parsed(&output);
    support::assert_cases_judged(&output, &cases);
    assert!(
        output.contains("shapes: 3 accepted, 6 rejected"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
