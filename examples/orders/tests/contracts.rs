//! The order domain's committed schemas and contracts (`schemas/orders/`) are up to date, and the
//! registry keeps its published contract: published schemas unchanged, every new version
//! reachable by an upcast, versions compatible as selected.
//!
//! After an intended change, regenerate with
//! `FACTUM_UPDATE_SCHEMAS=1 cargo test -p factum-example-orders --test contracts`. The
//! published contract is the release record (`schemas/orders-released.json`), which
//! regenerating never writes: a new version is released with `factum schema release`.

use std::path::PathBuf;

use factum::registry::Registry;
use factum_codegen::asyncapi::AsyncApiInfo;
use factum_codegen::compat::{Change, Compatibility, Rule};
use factum_codegen::generate::generate;
use factum_codegen::published::{PublishedProblem, check_against_published};
use factum_example_orders::Order;
use serde_json::{Value, json};

fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/orders")
}

/// What the committed AsyncAPI document says about the service; the CLI takes the same
/// values (`--title`, `--api-version`, `--description`).
fn asyncapi_info() -> AsyncApiInfo {
    AsyncApiInfo {
        title: "Order service".into(),
        version: "1.0.0".into(),
        description: "The order lifecycle of the example shop.".into(),
        ..AsyncApiInfo::default()
    }
}

fn current_registry() -> Value {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicts");
    serde_json::to_value(&registry).expect("a registry serialises")
}

/// What was released: the release record, not the regenerated registry.json (which an
/// edit followed by `FACTUM_UPDATE_SCHEMAS=1` would carry along).
fn published_registry() -> Value {
    let text = std::fs::read_to_string(committed_dir().with_file_name("orders-released.json"))
        .expect("schemas/orders-released.json is committed");
    serde_json::from_str(&text).expect("the release record is JSON")
}

/// The order domain's events evolve through upcasts, which read old payloads into new
/// shapes; so by default versions may differ freely (`None`). An event consumed without
/// upcasts by other teams would be listed here with `Backward` or `Full`.
fn mode_of(event: &str) -> Compatibility {
    match event {
        "OrderShipped" => Compatibility::Full,
        _ => Compatibility::None,
    }
}

#[test]
fn the_committed_schemas_are_up_to_date() {
    let files = generate(&current_registry(), &asyncapi_info())
        .expect("every generator accepts the registry");
    if std::env::var_os("FACTUM_UPDATE_SCHEMAS").is_some() {
        files
            .write_changed(&committed_dir())
            .expect("write the schemas");
        return;
    }
    let stale = files
        .stale_in(&committed_dir())
        .expect("read the committed schemas");
    assert!(
        stale.is_empty(),
        "schemas/orders is stale:\n{}\nregenerate with `FACTUM_UPDATE_SCHEMAS=1 cargo test -p factum-example-orders --test contracts`, and review the diff",
        stale
            .iter()
            .map(|s| format!("  {s}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        files.iter().count() >= 21,
        "registry.json, one file per event version and command, three contracts"
    );
}

#[test]
fn the_registry_keeps_the_published_contract() {
    let problems = check_against_published(&published_registry(), &current_registry(), mode_of)
        .expect("well-formed registries");
    assert!(
        problems.is_empty(),
        "{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Edits `event` version `version` of a registry document with `edit`.
fn edited(registry: &Value, event: &str, version: u64, edit: impl FnOnce(&mut Value)) -> Value {
    let mut registry = registry.clone();
    let entry = registry["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|entry| entry["name"] == event && entry["version"] == version)
        .expect("the entry exists");
    edit(entry);
    registry
}

#[test]
fn a_changed_published_schema_is_caught_with_event_version_and_path() {
    let changed = edited(&current_registry(), "OrderPlaced", 2, |entry| {
        entry["schema"]["properties"]["customer_id"] = json!({ "type": "integer" });
    });
    let problems = check_against_published(&published_registry(), &changed, mode_of).unwrap();
    let published: Vec<_> = problems
        .iter()
        .filter_map(|problem| match problem {
            PublishedProblem::Schema(incompatibility)
                if incompatibility.rule == Rule::Published =>
            {
                Some(incompatibility)
            }
            _ => None,
        })
        .collect();
    assert_eq!(published.len(), 1, "{problems:#?}");
    assert_eq!(published[0].event, "OrderPlaced");
    assert_eq!((published[0].from_version, published[0].to_version), (2, 2));
    assert_eq!(published[0].path, "/properties/customer_id/type");
    assert!(
        matches!(&published[0].change, Change::Modified { keyword, .. } if keyword == "type"),
        "{:?}",
        published[0].change
    );
    assert_eq!(
        published[0].to_string(),
        "event `OrderPlaced` v2: the published schema changed at `/properties/customer_id/type`: `type` changed from \"string\" to \"integer\"; only annotations (title, description, ...) may change, publish a new version instead"
    );

    // A description is an annotation: changing it is allowed.
    let annotated = edited(&current_registry(), "OrderPlaced", 2, |entry| {
        entry["schema"]["description"] = json!("Reworded.");
    });
    assert!(
        check_against_published(&published_registry(), &annotated, mode_of)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_removed_version_and_a_version_without_upcast_path_are_caught() {
    let mut without_v1 = current_registry();
    without_v1["entries"]
        .as_array_mut()
        .unwrap()
        .retain(|entry| !(entry["name"] == "OrderPlaced" && entry["version"] == 1));
    let problems = check_against_published(&published_registry(), &without_v1, mode_of).unwrap();
    assert!(
        problems.iter().any(|p| matches!(p, PublishedProblem::Removed { name, version: 1, .. } if name == "OrderPlaced")),
        "{problems:#?}"
    );

    let no_path = edited(&current_registry(), "OrderPlaced", 2, |entry| {
        entry["upcast"] = json!({ "kind": "none" });
    });
    let problems = check_against_published(&published_registry(), &no_path, mode_of).unwrap();
    assert!(
        problems.iter().any(|p| matches!(p, PublishedProblem::NoUpcastPath { name, version: 2 } if name == "OrderShipped" || name == "OrderPlaced")),
        "{problems:#?}"
    );
}

#[test]
fn an_incompatible_new_version_of_a_full_compatibility_event_is_caught() {
    let mut next = current_registry();
    let mut v2 = next["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "OrderShipped")
        .unwrap()
        .clone();
    v2["version"] = json!(2);
    v2["upcast"] = json!({ "kind": "typed", "from": 1 });
    v2["schema"]["properties"]["tracking_code"] = json!({ "type": "integer" });
    next["entries"].as_array_mut().unwrap().push(v2);
    let problems = check_against_published(&published_registry(), &next, mode_of).unwrap();
    assert!(
        problems.iter().any(|p| matches!(p, PublishedProblem::Schema(i) if i.event == "OrderShipped" && i.path == "/properties/tracking_code")),
        "{problems:#?}"
    );
}
