//! factum's CloudEvents mapping, checked by an independent validator: the CloudEvents SDK
//! for JavaScript validates every event the example order domain really recorded in a
//! SQLite store (its compiled CloudEvents 1.0 JSON schema and attribute-name rules) — in
//! structured mode as exported, and in binary mode as the NATS publisher sends it — and
//! rejects the one made invalid on purpose.

mod support;

use std::process::Command;

use factum::cloudevents::CloudEvents;
use factum::prelude::*;
use factum::store::SqliteStore;
use factum_example_orders::{
    AddNote, CancelOrder, Catalog, ConfirmOrder, Currency, Order, PlaceOrder, RequestedLine,
};

/// The order domain's events as a repository records them: two orders, one confirmed and
/// noted, one cancelled.
async fn recorded(path: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(path).await.unwrap();
    let orders = Repository::<Order, _>::with_services(
        store.clone(),
        Catalog::new([("widget", 250), ("gadget", 1200)]),
    );
    for (order_id, customer_id) in [("A-1001", "alice"), ("A-1002", "bob")] {
        orders
            .execute_with(
                PlaceOrder {
                    order_id: order_id.into(),
                    customer_id: customer_id.into(),
                    lines: vec![
                        RequestedLine {
                            sku: "widget".into(),
                            quantity: 2,
                        },
                        RequestedLine {
                            sku: "gadget".into(),
                            quantity: 1,
                        },
                    ],
                    currency: Currency::Eur,
                },
                CommandContext::new().actor(Actor::new("customer", customer_id)),
            )
            .await
            .unwrap();
    }
    orders
        .execute(ConfirmOrder {
            order_id: "A-1001".into(),
        })
        .await
        .unwrap();
    orders
        .execute(AddNote {
            order_id: "A-1001".into(),
            text: "leave at the door, \"please\"".into(),
        })
        .await
        .unwrap();
    orders
        .execute(CancelOrder {
            order_id: "A-1002".into(),
            reason: "changed my mind".into(),
        })
        .await
        .unwrap();
    store
}

/// The CloudEvents SDK for JavaScript, installed once (pinned).
fn sdk() -> std::path::PathBuf {
    support::npm_tools(
        "FACTUM_CLOUDEVENTS_TOOLS",
        "cloudevents-tools",
        &[("cloudevents", "9.0.0")],
        "factum's CloudEvents are checked by the CloudEvents SDK for JavaScript",
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_cloudevents_sdk_validates_every_exported_event() {
    let tools = sdk();
    let dir = support::scratch_dir("cloudevents");
    let runtime = runtime();
    let mapping = CloudEvents::new("/services/orders", "shop").unwrap();
    let mut jsonl = Vec::new();
    let exported = runtime.block_on(async {
        let store = recorded(&dir.join("orders.sqlite3")).await;
        mapping.export_jsonl(&store, 0, &mut jsonl).await.unwrap()
    });
    assert_eq!(
        exported, 5,
        "two placed, one confirmed, one note, one cancelled"
    );
    let mut jsonl = String::from_utf8(jsonl).unwrap();
    // One line the validator must refuse: a CloudEvent without its `source`.
    let mut broken: serde_json::Value =
        serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    broken.as_object_mut().unwrap().remove("source");
    jsonl.push_str(&broken.to_string());
    jsonl.push('\n');
    let file = dir.join("orders.jsonl");
    std::fs::write(&file, &jsonl).unwrap();

    let report = validate(&tools, "validate.js", &file);
    assert_eq!(
        report.last().map(String::as_str),
        Some("valid 5 of 6"),
        "every exported event is valid, the broken one is not: {report:#?}"
    );
    assert!(
        report[0].starts_with("line 6: "),
        "the SDK names the broken line: {report:#?}"
    );
}

/// Runs `script` (in `tests/cloudevents/`) on `file` with the SDK; returns its report lines.
fn validate(tools: &std::path::Path, script: &str, file: &std::path::Path) -> Vec<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cloudevents")
        .join(script);
    let output = Command::new("node")
        .arg(&script)
        .arg(file)
        .env("NODE_PATH", tools.join("node_modules"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

#[test]
fn the_cloudevents_sdk_reads_every_event_in_binary_mode() {
    let tools = sdk();
    let dir = support::scratch_dir("cloudevents-binary");
    let runtime = runtime();
    let mapping = CloudEvents::new("/services/orders", "shop").unwrap();
    let events = runtime.block_on(async {
        let store = recorded(&dir.join("orders.sqlite3")).await;
        store.read_all(0, 100).await.unwrap()
    });
    assert_eq!(events.len(), 5);
    let mut lines: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            // What `NatsPublisher::cloudevents` sends: these headers, this body.
            let binary = mapping.to_binary(event).unwrap();
            let headers: serde_json::Map<String, serde_json::Value> = binary
                .headers
                .into_iter()
                .map(|(name, value)| (name, serde_json::Value::String(value)))
                .collect();
            serde_json::json!({ "headers": headers, "body": binary.data.get() })
        })
        .collect();
    let mut broken = lines[0].clone();
    broken["headers"]
        .as_object_mut()
        .unwrap()
        .remove("ce-source");
    lines.push(broken);
    let file = dir.join("binary.jsonl");
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    std::fs::write(&file, text.join("\n") + "\n").unwrap();

    let report = validate(&tools, "validate-binary.js", &file);
    assert_eq!(
        report.last().map(String::as_str),
        Some("valid 5 of 6"),
        "every event reads back in binary mode, the broken one does not: {report:#?}"
    );
    assert!(report[0].starts_with("line 6: "), "{report:#?}");
}
