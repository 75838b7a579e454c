//! The order domain's schema registry holds every event version and command, in a
//! deterministic order, with upcast paths, docs and schemas.

use std::collections::BTreeSet;

use factum::registry::{EntryKind, Registry, UpcastPath};
use factum_example_orders::Order;

fn registry() -> Registry {
    Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicting schemas")
}

/// Every `#[event(...)]` and `#[command]` item written in the domain's source, read from
/// the source itself, so a newly annotated type cannot be missed by the registry.
fn annotated_in_source() -> BTreeSet<(EntryKind, String, u32)> {
    let source = include_str!("../src/lib.rs");
    let mut found = BTreeSet::new();
    let mut pending: Option<(EntryKind, Option<String>, u32)> = None;
    for line in source.lines().map(str::trim) {
        if let Some(arguments) = line.strip_prefix("#[event(") {
            let name = arguments
                .split("name = \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned);
            let version = arguments
                .split("version = ")
                .nth(1)
                .and_then(|rest| rest.split([',', ')']).next())
                .map_or(1, |digits| digits.trim().parse().expect("a version number"));
            pending = Some((EntryKind::Event, name, version));
        } else if line.starts_with("#[command") {
            pending = Some((EntryKind::Command, None, 1));
        } else if let (Some(ident), Some((kind, name, version))) =
            (line.strip_prefix("pub struct "), pending.as_ref())
        {
            let ident = ident.split([' ', '{', '(', ';']).next().unwrap_or_default();
            found.insert((
                *kind,
                name.clone().unwrap_or_else(|| ident.to_owned()),
                *version,
            ));
            pending = None;
        }
    }
    found
}

#[test]
fn every_annotated_type_is_registered() {
    let registered: BTreeSet<_> = registry()
        .entries()
        .map(|entry| (entry.kind, entry.name.clone(), entry.version))
        .collect();
    let annotated = annotated_in_source();
    assert_eq!(
        annotated.len(),
        17,
        "the source scan found the domain's types: {annotated:#?}"
    );
    assert_eq!(registered, annotated);
}

#[test]
fn entries_are_ordered_and_describe_their_upcast_path_and_docs() {
    let registry = registry();
    let order: Vec<(EntryKind, &str, u32)> = registry
        .entries()
        .map(|entry| (entry.kind, entry.name.as_str(), entry.version))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "events first, then by name and version");
    assert_eq!(order[0], (EntryKind::Event, "ItemAdded", 2));

    let placed_v2 = registry.get(EntryKind::Event, "OrderPlaced", 2).unwrap();
    assert_eq!(placed_v2.upcast, Some(UpcastPath::Typed { from: 1 }));
    assert_eq!(placed_v2.doc, "A customer placed an order.");
    assert_eq!(placed_v2.aggregates, BTreeSet::from(["Order".to_owned()]));
    let placed_v1 = registry.get(EntryKind::Event, "OrderPlaced", 1).unwrap();
    assert_eq!(placed_v1.upcast, Some(UpcastPath::None));
    let item_added = registry.get(EntryKind::Event, "ItemAdded", 2).unwrap();
    assert_eq!(item_added.upcast, Some(UpcastPath::Json { oldest: 1 }));
    let place = registry.get(EntryKind::Command, "PlaceOrder", 1).unwrap();
    assert_eq!(place.upcast, None);
    assert_eq!(place.doc, "Place a new order.");
}

#[test]
fn schemas_are_the_serialize_contract_of_events_and_the_deserialize_contract_of_commands() {
    let registry = registry();
    let placed = &registry
        .get(EntryKind::Event, "OrderPlaced", 2)
        .unwrap()
        .schema;
    assert_eq!(
        placed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let required: BTreeSet<&str> = placed["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["customer_id", "lines", "currency"])
    );
    assert_eq!(placed["description"], "A customer placed an order.");
    let v1 = &registry
        .get(EntryKind::Event, "OrderPlaced", 1)
        .unwrap()
        .schema;
    assert!(
        v1["properties"].get("currency").is_none(),
        "version 1 has no currency"
    );
    let ship = &registry
        .get(EntryKind::Command, "ShipOrder", 1)
        .unwrap()
        .schema;
    assert!(ship["properties"].get("tracking_code").is_some());
}

#[test]
fn building_twice_gives_identical_json() {
    let first = serde_json::to_string_pretty(&registry()).unwrap();
    let second = serde_json::to_string_pretty(&registry()).unwrap();
    assert_eq!(first, second);
}
