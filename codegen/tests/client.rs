//! The typed TypeScript client generated from the care-task service's OpenAPI document:
//! its snapshot reviewed, type-checked with `tsc --strict`, and run with node against
//! the real server on loopback — commands, a retry, a stale `If-Match`, a denial, queries
//! that wait for a position, a page, a stream.

mod support;

use std::path::Path;
use std::process::Command;

use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum_codegen::typescript::typescript_client;
use factum_example_care_tasks::serve;
use serde_json::{Value, json};

/// Why node and npm are needed.
const WHY: &str = "the generated client must be compiled and run to be tested";

#[test]
fn the_generated_client_type_checks_strictly_and_drives_the_real_server() {
    support::require_tool("node", WHY);
    let tsc = support::npm_tools(
        "FACTUM_TS_TOOLS",
        "ts-tools",
        &[("typescript", support::TYPESCRIPT_VERSION)],
        WHY,
    )
    .join("node_modules/typescript/bin/tsc");

    // The server runs on a runtime of its own while node drives it from this thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a scratch folder");
    let served = runtime.block_on(async {
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("opens");
        let read_models = SqliteReadModel::open(dir.path().join("read-models"))
            .await
            .expect("opens");
        serve::on_loopback(store, read_models)
            .await
            .expect("the service starts")
    });
    let base = served.base.clone();
    let document: Value = runtime.block_on(async {
        reqwest::get(format!("{base}/openapi.json"))
            .await
            .expect("the document is served")
            .json()
            .await
            .expect("as JSON")
    });
    let client = typescript_client(&document).expect("the document maps to a client");
    insta::assert_snapshot!("care_tasks_client", client);

    let work = support::scratch_dir("ts-client");
    // The CLI writes the same client from the document on disk.
    std::fs::write(work.join("openapi.json"), document.to_string()).unwrap();
    support::run(
        Command::new(env!("CARGO_BIN_EXE_factum"))
            .args(["client", "typescript", "--openapi"])
            .arg(work.join("openapi.json"))
            .arg("--out")
            .arg(work.join("client.ts")),
        "factum client typescript",
    );
    assert_eq!(
        std::fs::read_to_string(work.join("client.ts")).unwrap(),
        client,
        "the CLI writes what the library generates"
    );
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client");
    for fixture in ["tsconfig.json", "ward.ts"] {
        std::fs::copy(fixtures.join(fixture), work.join(fixture)).unwrap();
    }
    support::run(
        Command::new("node")
            .arg(&tsc)
            .arg("--project")
            .arg(&work)
            .arg("--strict"),
        "tsc --strict",
    );
    let output = support::run(
        Command::new("node")
            .arg(work.join("out/ward.js"))
            .arg(&base),
        "the ward, through the generated client",
    );
    let seen: Value = serde_json::from_str(output.trim()).expect("the ward prints JSON");
    assert_eq!(
        seen,
        json!({
            "created": [1, "Task-T-9"],
            "retried": true,
            "stale": 412,
            "denied": "urn:factum:problem:denied",
            "assignee": "amira",
            "fresh": true,
            "page": [1, 1],
            "events": ["TaskCreated", "TaskAssigned"],
        })
    );
    runtime
        .block_on(served.stop())
        .expect("the projections stop");
}

#[test]
fn a_document_that_is_not_factums_is_refused_with_where_it_is_wrong() {
    let error =
        typescript_client(&json!({ "openapi": "3.1.0", "paths": {} })).expect_err("no components");
    assert_eq!(
        error.to_string(),
        "the OpenAPI document is malformed at /components/schemas: not an object"
    );
    let error = typescript_client(
        &json!({ "components": { "schemas": { "Thing": { "type": "object" } } }, "paths": {} }),
    )
    .expect_err("not factum's");
    assert_eq!(
        error.to_string(),
        "the OpenAPI document is malformed at /components/schemas: no `Acknowledgement` schema: not a document of factum's HTTP layer"
    );
}
