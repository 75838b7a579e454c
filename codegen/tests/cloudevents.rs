//! factum's CloudEvents export, checked by an independent validator: the CloudEvents SDK
//! for JavaScript validates every event the example order domain really recorded in a
//! SQLite store (its compiled CloudEvents 1.0 JSON schema and attribute-name rules), and
//! rejects the one line made invalid on purpose.

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
                CommandMetadata::new().actor(customer_id),
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

#[test]
fn the_cloudevents_sdk_validates_every_exported_event() {
    let tools = support::npm_tools(
        "FACTUM_CLOUDEVENTS_TOOLS",
        "cloudevents-tools",
        &[("cloudevents", "9.0.0")],
        "the CloudEvents export is checked by the CloudEvents SDK for JavaScript",
    );
    let dir = support::scratch_dir("cloudevents");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloudevents/validate.js");
    let output = Command::new("node")
        .arg(&script)
        .arg(&file)
        .env("NODE_PATH", tools.join("node_modules"))
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        report.last().copied(),
        Some("valid 5 of 6"),
        "every exported event is valid, the broken one is not:\n{stdout}"
    );
    assert!(
        report[0].starts_with("line 6: "),
        "the SDK names the broken line: {stdout}"
    );
}
