//! The compatibility table: each schema pair with the verdict it must get.

use factum_codegen::compat::{
    Change, Compatibility, Incompatibility, Rule, check_pair, check_published_unchanged,
    check_versions,
};
use serde_json::{Value, json};

/// What a row checks.
#[derive(Clone, Copy)]
enum Check {
    /// `check_pair(old, new, mode)`.
    Pair(Compatibility),
    /// `check_published_unchanged(committed = old, current = new)`.
    Published,
}

struct Case {
    name: &'static str,
    old: Value,
    new: Value,
    check: Check,
    /// Empty: compatible. Otherwise every finding, as (rule, change kind, path).
    expect: Vec<(Rule, &'static str, &'static str)>,
}

use Compatibility::{Backward, Forward, Full};
use Rule::{Backward as B, Forward as F, Published as P};

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

fn closed(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn order_with(qty: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "quantity": qty},
                    "required": ["sku", "quantity"]
                }
            }
        },
        "required": ["lines"]
    })
}

fn money_ref(min: i64) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"total": {"$ref": "#/$defs/Money"}},
        "required": ["total"],
        "$defs": {
            "Money": {
                "type": "object",
                "properties": {
                    "amount": {"type": "integer", "minimum": min},
                    "currency": {"type": "string"}
                },
                "required": ["amount", "currency"]
            }
        }
    })
}

fn variant(tag: &str, field: &str, ty: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"kind": {"type": "string", "const": tag}, field: {"type": ty}},
        "required": ["kind", field]
    })
}

fn payment(variants: Vec<Value>) -> Value {
    json!({"oneOf": variants})
}

fn tree(value_type: &str) -> Value {
    json!({
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": value_type},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                },
                "required": ["value", "children"]
            }
        }
    })
}

fn cases() -> Vec<Case> {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer"});
    vec![
        Case {
            name: "add optional property to open model (constrained schema)",
            old: object(json!({"id": s}), &["id"]),
            new: object(json!({"id": s, "note": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![(B, "PropertyAdded", "/properties/note")],
        },
        Case {
            name: "add optional property with schema {} to open model",
            old: object(json!({"id": s}), &["id"]),
            new: object(json!({"id": s, "note": {}}), &["id"]),
            check: Check::Pair(Full),
            expect: vec![],
        },
        Case {
            name: "add optional property to closed model: backward",
            old: closed(json!({"id": s}), &["id"]),
            new: closed(json!({"id": s, "note": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "add optional property to closed model: forward",
            old: closed(json!({"id": s}), &["id"]),
            new: closed(json!({"id": s, "note": s}), &["id"]),
            check: Check::Pair(Forward),
            expect: vec![(F, "PropertyAdded", "/properties/note")],
        },
        Case {
            name: "add required property without default to closed model",
            old: closed(json!({"id": s}), &["id"]),
            new: closed(json!({"id": s, "note": s}), &["id", "note"]),
            check: Check::Pair(Backward),
            expect: vec![(B, "RequiredAdded", "/properties/note")],
        },
        Case {
            name: "add required property with default to closed model",
            old: closed(json!({"id": s}), &["id"]),
            new: closed(
                json!({"id": s, "note": {"type": "string", "default": ""}}),
                &["id", "note"],
            ),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "remove property from open model: backward",
            old: object(json!({"id": s, "note": s}), &["id"]),
            new: object(json!({"id": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "remove property from open model: forward",
            old: object(json!({"id": s, "note": s}), &["id"]),
            new: object(json!({"id": s}), &["id"]),
            check: Check::Pair(Forward),
            expect: vec![(F, "PropertyRemoved", "/properties/note")],
        },
        Case {
            name: "remove property from closed model",
            old: closed(json!({"id": s, "note": s}), &["id"]),
            new: closed(json!({"id": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![(B, "PropertyRemoved", "/properties/note")],
        },
        Case {
            name: "make property required (no default)",
            old: object(json!({"id": s, "note": s}), &["id"]),
            new: object(json!({"id": s, "note": s}), &["id", "note"]),
            check: Check::Pair(Full),
            expect: vec![(B, "RequiredAdded", "/properties/note")],
        },
        Case {
            name: "make property optional: backward",
            old: object(json!({"id": s, "note": s}), &["id", "note"]),
            new: object(json!({"id": s, "note": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "make property optional: forward",
            old: object(json!({"id": s, "note": s}), &["id", "note"]),
            new: object(json!({"id": s, "note": s}), &["id"]),
            check: Check::Pair(Forward),
            expect: vec![(F, "RequiredRemoved", "/properties/note")],
        },
        Case {
            name: "type change string -> integer",
            old: object(json!({"qty": s}), &["qty"]),
            new: object(json!({"qty": i}), &["qty"]),
            check: Check::Pair(Full),
            expect: vec![
                (B, "TypeChanged", "/properties/qty"),
                (F, "TypeChanged", "/properties/qty"),
            ],
        },
        Case {
            name: "widening integer -> number: backward",
            old: object(json!({"qty": i}), &["qty"]),
            new: object(json!({"qty": {"type": "number"}}), &["qty"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "widening integer -> number: forward",
            old: object(json!({"qty": i}), &["qty"]),
            new: object(json!({"qty": {"type": "number"}}), &["qty"]),
            check: Check::Pair(Forward),
            expect: vec![(F, "TypeChanged", "/properties/qty")],
        },
        Case {
            name: "add null to type",
            old: object(json!({"note": s}), &["note"]),
            new: object(json!({"note": {"type": ["string", "null"]}}), &["note"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "remove null from type",
            old: object(json!({"note": {"type": ["string", "null"]}}), &["note"]),
            new: object(json!({"note": s}), &["note"]),
            check: Check::Pair(Backward),
            expect: vec![(B, "TypeChanged", "/properties/note")],
        },
        Case {
            name: "enum value added: backward",
            old: json!({"type": "string", "enum": ["eur", "usd"]}),
            new: json!({"type": "string", "enum": ["eur", "usd", "gbp"]}),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "enum value added: forward",
            old: json!({"type": "string", "enum": ["eur", "usd"]}),
            new: json!({"type": "string", "enum": ["eur", "usd", "gbp"]}),
            check: Check::Pair(Forward),
            expect: vec![(F, "EnumValueAdded", "")],
        },
        Case {
            name: "enum value removed",
            old: json!({"type": "string", "enum": ["eur", "usd"]}),
            new: json!({"type": "string", "enum": ["eur"]}),
            check: Check::Pair(Full),
            expect: vec![(B, "EnumValueRemoved", "")],
        },
        Case {
            name: "enum introduced on a free string",
            old: json!({"type": "string"}),
            new: json!({"type": "string", "enum": ["eur"]}),
            check: Check::Pair(Backward),
            expect: vec![(B, "ConstraintTightened", "")],
        },
        Case {
            name: "minimum tightened",
            old: object(json!({"qty": {"type": "integer", "minimum": 0}}), &["qty"]),
            new: object(json!({"qty": {"type": "integer", "minimum": 1}}), &["qty"]),
            check: Check::Pair(Full),
            expect: vec![(B, "ConstraintTightened", "/properties/qty")],
        },
        Case {
            name: "minimum loosened",
            old: object(json!({"qty": {"type": "integer", "minimum": 1}}), &["qty"]),
            new: object(json!({"qty": {"type": "integer", "minimum": 0}}), &["qty"]),
            check: Check::Pair(Full),
            expect: vec![(F, "ConstraintLoosened", "/properties/qty")],
        },
        Case {
            name: "maximum raised: backward",
            old: json!({"type": "number", "maximum": 10}),
            new: json!({"type": "number", "maximum": 100}),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "maximum removed: forward",
            old: json!({"type": "number", "maximum": 10}),
            new: json!({"type": "number"}),
            check: Check::Pair(Forward),
            expect: vec![(F, "ConstraintLoosened", "")],
        },
        Case {
            name: "integer minimum 1 equals exclusiveMinimum 0",
            old: json!({"type": "integer", "minimum": 1}),
            new: json!({"type": "integer", "exclusiveMinimum": 0}),
            check: Check::Pair(Full),
            expect: vec![],
        },
        Case {
            name: "maxLength tightened",
            old: json!({"type": "string", "maxLength": 64}),
            new: json!({"type": "string", "maxLength": 32}),
            check: Check::Pair(Backward),
            expect: vec![(B, "ConstraintTightened", "")],
        },
        Case {
            name: "pattern removed",
            old: json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            new: json!({"type": "string"}),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "pattern added",
            old: json!({"type": "string"}),
            new: json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            check: Check::Pair(Backward),
            expect: vec![(B, "ConstraintTightened", "")],
        },
        Case {
            name: "pattern changed (undecidable, conservative)",
            old: json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            new: json!({"type": "string", "pattern": "^[A-Z]{2,3}$"}),
            check: Check::Pair(Full),
            expect: vec![(B, "ConstraintChanged", ""), (F, "ConstraintChanged", "")],
        },
        Case {
            name: "format added / removed",
            old: json!({"type": "string"}),
            new: json!({"type": "string", "format": "uuid"}),
            check: Check::Pair(Full),
            expect: vec![(B, "ConstraintTightened", "")],
        },
        Case {
            name: "additionalProperties false -> true: backward",
            old: closed(json!({"id": s}), &["id"]),
            new: object(json!({"id": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "additionalProperties false -> true: forward",
            old: closed(json!({"id": s}), &["id"]),
            new: object(json!({"id": s}), &["id"]),
            check: Check::Pair(Forward),
            expect: vec![(F, "ContentModelOpened", "")],
        },
        Case {
            name: "additionalProperties true -> false",
            old: object(json!({"id": s}), &["id"]),
            new: closed(json!({"id": s}), &["id"]),
            check: Check::Pair(Backward),
            expect: vec![(B, "ContentModelClosed", "")],
        },
        Case {
            name: "nested object in array items: type change",
            old: order_with(json!({"type": "integer"})),
            new: order_with(json!({"type": "string"})),
            check: Check::Pair(Backward),
            expect: vec![(
                B,
                "TypeChanged",
                "/properties/lines/items/properties/quantity",
            )],
        },
        Case {
            name: "nested object in array items: widening is fine",
            old: order_with(json!({"type": "integer", "minimum": 1})),
            new: order_with(json!({"type": "number", "minimum": 0})),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "array items change",
            old: object(json!({"tags": {"type": "array", "items": s}}), &[]),
            new: object(json!({"tags": {"type": "array", "items": i}}), &[]),
            check: Check::Pair(Backward),
            expect: vec![(B, "TypeChanged", "/properties/tags/items")],
        },
        Case {
            name: "array maxItems added",
            old: json!({"type": "array", "items": {"type": "string"}}),
            new: json!({"type": "array", "items": {"type": "string"}, "maxItems": 3}),
            check: Check::Pair(Backward),
            expect: vec![(B, "ConstraintTightened", "")],
        },
        Case {
            name: "$ref'd definition tightened",
            old: money_ref(0),
            new: money_ref(1),
            check: Check::Pair(Full),
            expect: vec![(
                B,
                "ConstraintTightened",
                "/properties/total/properties/amount",
            )],
        },
        Case {
            name: "$ref'd definition unchanged but inlined",
            old: money_ref(0),
            new: object(
                json!({"total": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "integer", "minimum": 0},
                        "currency": {"type": "string"}
                    },
                    "required": ["amount", "currency"]
                }}),
                &["total"],
            ),
            check: Check::Pair(Full),
            expect: vec![],
        },
        Case {
            name: "oneOf alternative added: backward",
            old: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
            ]),
            new: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
                variant("voucher", "code", "string"),
            ]),
            check: Check::Pair(Backward),
            expect: vec![],
        },
        Case {
            name: "oneOf alternative added: forward",
            old: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
            ]),
            new: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
                variant("voucher", "code", "string"),
            ]),
            check: Check::Pair(Forward),
            expect: vec![(F, "AlternativeAdded", "/oneOf/2")],
        },
        Case {
            name: "oneOf alternative removed",
            old: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
            ]),
            new: payment(vec![variant("card", "last4", "string")]),
            check: Check::Pair(Backward),
            expect: vec![(B, "AlternativeRemoved", "/oneOf/1")],
        },
        Case {
            name: "oneOf alternative changed inside (matched by tag)",
            old: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "integer"),
            ]),
            new: payment(vec![
                variant("card", "last4", "string"),
                variant("cash", "amount", "string"),
            ]),
            check: Check::Pair(Backward),
            expect: vec![(B, "TypeChanged", "/oneOf/1/properties/amount")],
        },
        Case {
            name: "Option<Struct>: $ref -> anyOf [$ref, null]",
            old: json!({
                "type": "object",
                "properties": {"addr": {"$ref": "#/$defs/Addr"}},
                "$defs": {"Addr": {"type": "object", "properties": {"city": {"type": "string"}}}}
            }),
            new: json!({
                "type": "object",
                "properties": {"addr": {"anyOf": [{"$ref": "#/$defs/Addr"}, {"type": "null"}]}},
                "$defs": {"Addr": {"type": "object", "properties": {"city": {"type": "string"}}}}
            }),
            check: Check::Pair(Full),
            expect: vec![(F, "TypeChanged", "/properties/addr/anyOf/1")],
        },
        Case {
            name: "recursive $ref: change deep inside terminates and is found",
            old: tree("integer"),
            new: tree("string"),
            check: Check::Pair(Backward),
            expect: vec![(B, "TypeChanged", "/properties/value")],
        },
        Case {
            name: "recursive $ref unchanged",
            old: tree("integer"),
            new: tree("integer"),
            check: Check::Pair(Full),
            expect: vec![],
        },
        Case {
            name: "NONE checks nothing between versions",
            old: json!({"type": "string"}),
            new: json!({"type": "integer"}),
            check: Check::Pair(Compatibility::None),
            expect: vec![],
        },
        Case {
            name: "published: annotation-only change",
            old: json!({"title": "A", "type": "object",
                        "properties": {"qty": {"type": "integer", "description": "old"}}}),
            new: json!({"title": "B", "description": "new", "type": "object",
                        "properties": {"qty": {"type": "integer", "description": "new", "default": 1}}}),
            check: Check::Published,
            expect: vec![],
        },
        Case {
            name: "published: constraint change is not an annotation",
            old: json!({"type": "object", "properties": {"qty": {"type": "integer", "minimum": 0}}}),
            new: json!({"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}),
            check: Check::Published,
            expect: vec![(P, "Modified", "/properties/qty/minimum")],
        },
        Case {
            name: "published: a property named `title` is not an annotation",
            old: json!({"type": "object", "properties": {"title": {"type": "string"}}}),
            new: json!({"type": "object", "properties": {"title": {"type": "integer"}}}),
            check: Check::Published,
            expect: vec![(P, "Modified", "/properties/title/type")],
        },
        Case {
            name: "published: reordered required and type arrays are the same schema",
            old: json!({"type": ["string", "null"], "required": ["a", "b"]}),
            new: json!({"type": ["null", "string"], "required": ["b", "a"]}),
            check: Check::Published,
            expect: vec![],
        },
        Case {
            name: "published: property added",
            old: json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            new: json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {}}}),
            check: Check::Published,
            expect: vec![(P, "Modified", "/properties/b")],
        },
    ]
}

fn run(case: &Case) -> Vec<Incompatibility> {
    match case.check {
        Check::Pair(mode) => check_pair("Ev", 1, &case.old, 2, &case.new, mode),
        Check::Published => check_published_unchanged("Ev", 1, &case.old, &case.new),
    }
}

#[test]
fn compatibility_table() {
    let cases = cases();
    assert!(cases.len() >= 30, "the table needs at least 30 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let found = run(case);
        let mut got: Vec<(Rule, &str, String)> = found
            .iter()
            .map(|i| (i.rule, i.change.kind(), i.path.clone()))
            .collect();
        let mut want: Vec<(Rule, &str, String)> = case
            .expect
            .iter()
            .map(|(r, k, p)| (*r, *k, (*p).to_owned()))
            .collect();
        let key = |x: &(Rule, &str, String)| format!("{:?}{}{}", x.0, x.1, x.2);
        got.sort_by_key(key);
        want.sort_by_key(key);
        if got != want {
            let texts: Vec<String> = found.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}:\n  want {want:?}\n  got  {got:?}\n  {}",
                case.name,
                texts.join("\n  ")
            ));
        }
        // Every finding names the event and the versions.
        for i in &found {
            let text = i.to_string();
            assert!(text.contains("`Ev`") && text.contains("v1"), "{text}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn with_note(required: bool, default: bool) -> Value {
    let mut note = json!({"type": "string"});
    if default {
        note["default"] = json!("");
    }
    let req: &[&str] = if required { &["id", "note"] } else { &["id"] };
    closed(json!({"id": {"type": "string"}, "note": note}), req)
}

#[test]
fn transitive_modes_check_every_earlier_version() {
    // v1 -> v2 adds a required property with a default (fine); v2 -> v3 drops the default
    // (fine between them: both require it). v1 -> v3 is not.
    let versions = vec![
        (1, closed(json!({"id": {"type": "string"}}), &["id"])),
        (2, with_note(true, true)),
        (3, with_note(true, false)),
    ];
    assert_eq!(
        check_versions("Ev", &versions, Compatibility::Backward),
        vec![]
    );
    let found = check_versions("Ev", &versions, Compatibility::BackwardTransitive);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].from_version, found[0].to_version), (1, 3));
    assert_eq!(found[0].change, Change::RequiredAdded);
    assert_eq!(found[0].path, "/properties/note");
}

#[test]
fn versions_are_sorted_and_duplicates_reported() {
    let v = json!({"type": "string"});
    let versions = vec![(2, v.clone()), (1, v.clone()), (2, v)];
    let found = check_versions("Ev", &versions, Compatibility::FullTransitive);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].change, Change::DuplicateVersion);
    assert_eq!(found[0].rule, Rule::Versions);
}

#[test]
fn optional_property_added_unchanged_default() {
    // Optional-with-default property added to a closed model is FULL compatible except
    // for the closed old model on the forward side.
    let found = check_pair(
        "Ev",
        1,
        &closed(json!({"id": {"type": "string"}}), &["id"]),
        2,
        &with_note(false, true),
        Compatibility::Full,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].rule, Rule::Forward);
}
