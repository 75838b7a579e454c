//! `factum schema lint`: naming and versioning conventions over registry documents.

use factum_codegen::files::MalformedRegistry;
use factum_codegen::lint::{
    Allowances, InvalidAllowance, LintRule, LintWarning, UnknownLintRule, command_imperative,
    event_past_tense, lint, split_words,
};
use serde_json::{Value, json};

fn event(name: &str, version: u64) -> Value {
    json!({"kind": "event", "name": name, "version": version, "upcast": {"kind": "none"}, "schema": {}})
}

fn event_with_upcast(name: &str, version: u64, upcast: Value) -> Value {
    json!({"kind": "event", "name": name, "version": version, "upcast": upcast, "schema": {}})
}

fn command(name: &str) -> Value {
    json!({"kind": "command", "name": name, "version": 1, "schema": {}})
}

fn registry(entries: Vec<Value>) -> Value {
    json!({ "entries": entries })
}

fn rules_for(registry: &Value, name: &str) -> Vec<LintRule> {
    rules_for_kind(registry, None, name)
}

fn rules_for_kind(registry: &Value, kind: Option<&str>, name: &str) -> Vec<LintRule> {
    lint(registry, &Allowances::default())
        .unwrap()
        .into_iter()
        .filter(|warning| warning.name == name && kind.is_none_or(|kind| warning.kind == kind))
        .map(|warning| warning.rule)
        .collect()
}

#[test]
fn the_example_domain_lints_clean() {
    let registry = serde_json::to_value(
        factum::registry::Registry::builder()
            .aggregate::<factum_example_orders::Order>()
            .build()
            .unwrap(),
    )
    .unwrap();
    let warnings = lint(&registry, &Allowances::default()).unwrap();
    assert!(
        warnings.is_empty(),
        "{}",
        warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_committed_example_registry_lints_clean() {
    let text = include_str!("../../schemas/orders/registry.json");
    let registry: Value = serde_json::from_str(text).unwrap();
    assert_eq!(lint(&registry, &Allowances::default()).unwrap(), []);
}

/// (kind, name, expected warning?) for the naming rules.
const NAMES: &[(&str, &str, bool)] = &[
    // Events: last word past tense.
    ("event", "OrderPlaced", false),
    ("event", "OrderPlace", true),
    ("event", "OrderStatus", true),
    ("event", "PaymentSent", false),
    ("event", "InvoicePaid", false),
    ("event", "PasswordReset", false),
    ("event", "PriceSet", false),
    ("event", "ShipmentSplit", false),
    ("event", "AccountWithdrawn", false),
    ("event", "ItemAdded", false),
    ("event", "OrderShipping", true),
    ("event", "PlaceOrder", true),
    ("event", "HTTPRequestSent", false),
    ("event", "order_placed", false),
    ("event", "OrderPlacedV2", true),
    ("event", "UserLoggedIn", true),
    ("event", "SessionBegun", false),
    ("event", "Opened", false),
    // Commands: first word an imperative verb.
    ("command", "PlaceOrder", false),
    ("command", "PlacedOrder", true),
    ("command", "PlacingOrder", true),
    ("command", "OrderPlace", true),
    ("command", "SentInvoice", true),
    ("command", "SetPrice", false),
    ("command", "ResetPassword", false),
    ("command", "SplitShipment", false),
    ("command", "CancelOrder", false),
    ("command", "AddNote", false),
    ("command", "TriagePatient", false),
    ("command", "DischargePatient", false),
    ("command", "Open", false),
    ("command", "ReadMessage", true),
    ("command", "BringForward", true),
    ("command", "retry_delivery", false),
    ("command", "VerifyEmail", false),
    ("command", "Verified", true),
];

#[test]
fn naming_verdicts() {
    let entries = NAMES
        .iter()
        .map(|(kind, name, _)| match *kind {
            "event" => event(name, 1),
            _ => command(name),
        })
        .collect();
    let registry = registry(entries);
    let mut wrong = Vec::new();
    for (kind, name, expected) in NAMES {
        let rules = rules_for_kind(&registry, Some(kind), name);
        let expected_rules = match (*kind, *expected) {
            (_, false) => vec![],
            ("event", true) => vec![LintRule::EventPastTense],
            (_, true) => vec![LintRule::CommandImperative],
        };
        if rules != expected_rules {
            wrong.push(format!("{kind} {name}: {rules:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn naming_messages_and_suggestions() {
    let cases = [
        (
            event_past_tense("OrderPlace"),
            "event `OrderPlace` should be named in the past tense (e.g. `OrderPlaced`)",
        ),
        (
            event_past_tense("PaymentSend"),
            "event `PaymentSend` should be named in the past tense (e.g. `PaymentSent`)",
        ),
        (
            event_past_tense("InvoicePay"),
            "event `InvoicePay` should be named in the past tense (e.g. `InvoicePaid`)",
        ),
        (
            event_past_tense("OrderShip"),
            "event `OrderShip` should be named in the past tense (e.g. `OrderShipped`)",
        ),
        (
            event_past_tense("PlaceOrder"),
            "event `PlaceOrder` should be named in the past tense (e.g. `OrderPlaced`)",
        ),
        (
            event_past_tense("OrderStatus"),
            "event `OrderStatus` should be named in the past tense: its last word `Status` is not a past-tense verb",
        ),
        (
            command_imperative("PlacedOrder"),
            "command `PlacedOrder` should start with an imperative verb, not the past tense `Placed` (e.g. `PlaceOrder`)",
        ),
        (
            command_imperative("SentInvoice"),
            "command `SentInvoice` should start with an imperative verb, not the past tense `Sent` (e.g. `SendInvoice`)",
        ),
        (
            command_imperative("ShippingOrder"),
            "command `ShippingOrder` should start with an imperative verb, not the gerund `Shipping` (e.g. `ShipOrder`)",
        ),
        (
            command_imperative("PlacingOrder"),
            "command `PlacingOrder` should start with an imperative verb, not the gerund `Placing` (e.g. `PlaceOrder`)",
        ),
        (
            command_imperative("OrderCancel"),
            "command `OrderCancel` should start with an imperative verb: is `Order` a verb? (e.g. `CancelOrder`)",
        ),
        (
            command_imperative("CheckoutBasket"),
            "command `CheckoutBasket` should start with an imperative verb: is `Checkout` a verb?",
        ),
    ];
    for (actual, expected) in cases {
        assert_eq!(actual.as_deref(), Some(expected));
    }
    assert_eq!(event_past_tense("OrderPlaced"), None);
    assert_eq!(command_imperative("PlaceOrder"), None);
}

#[test]
fn words_split_at_case_acronyms_and_separators() {
    assert_eq!(split_words("OrderPlaced"), ["Order", "Placed"]);
    assert_eq!(split_words("HTTPRequestSent"), ["HTTP", "Request", "Sent"]);
    assert_eq!(split_words("order_placed"), ["order", "placed"]);
    assert_eq!(split_words("OrderV2Placed"), ["Order", "V2", "Placed"]);
    assert_eq!(split_words("Opened"), ["Opened"]);
}

#[test]
fn versioned_from_1() {
    // v1 present.
    let clean = registry(vec![
        event("OrderPlaced", 1),
        event_with_upcast("OrderPlaced", 2, json!({"kind": "typed", "from": 1})),
    ]);
    assert_eq!(rules_for(&clean, "OrderPlaced"), []);

    // Retired v1 read through JSON upcasts.
    let retired = registry(vec![
        event_with_upcast("ItemAdded", 2, json!({"kind": "json", "oldest": 1})),
        event_with_upcast("ItemAdded", 3, json!({"kind": "typed", "from": 2})),
    ]);
    assert_eq!(rules_for(&retired, "ItemAdded"), []);

    // Starts at 2 with nothing.
    let starts_at_2 = registry(vec![event("ItemAdded", 2)]);
    let warnings = lint(&starts_at_2, &Allowances::default()).unwrap();
    assert_eq!(
        warnings,
        [LintWarning {
            rule: LintRule::VersionedFrom1,
            kind: "event".into(),
            name: "ItemAdded".into(),
            version: Some(2),
            message: "event `ItemAdded` starts at v2: every event is versioned from 1, and v2 has no upcast path (register v1, or `upcast_json` from 1)".into(),
        }]
    );

    // No upcast field at all.
    let bare = registry(vec![
        json!({"kind": "event", "name": "ItemAdded", "version": 3, "schema": {}}),
    ]);
    assert_eq!(rules_for(&bare, "ItemAdded"), [LintRule::VersionedFrom1]);

    // JSON upcasts that only reach back to v2.
    let partial = registry(vec![event_with_upcast(
        "ItemAdded",
        3,
        json!({"kind": "json", "oldest": 2}),
    )]);
    let warnings = lint(&partial, &Allowances::default()).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].version, Some(3));
    assert!(
        warnings[0]
            .message
            .contains("v3 reads retired versions only from v2"),
        "{}",
        warnings[0]
    );

    // A typed upcast from a version not registered.
    let typed = registry(vec![event_with_upcast(
        "ItemAdded",
        2,
        json!({"kind": "typed", "from": 1}),
    )]);
    let warnings = lint(&typed, &Allowances::default()).unwrap();
    assert!(
        warnings[0]
            .message
            .contains("upcasts from v1, which is not registered"),
        "{}",
        warnings[0]
    );

    // The JSON path must be on the lowest version: a higher one does not count.
    let higher = registry(vec![
        event("ItemAdded", 2),
        event_with_upcast("ItemAdded", 3, json!({"kind": "json", "oldest": 1})),
    ]);
    assert_eq!(rules_for(&higher, "ItemAdded"), [LintRule::VersionedFrom1]);

    // Commands are not versioned by this rule.
    let commands = registry(vec![command("PlaceOrder")]);
    assert_eq!(rules_for(&commands, "PlaceOrder"), []);
}

#[test]
fn one_warning_per_name_not_per_version() {
    let registry = registry(vec![
        event("OrderPlace", 1),
        event("OrderPlace", 2),
        event("OrderPlace", 3),
    ]);
    assert_eq!(
        rules_for(&registry, "OrderPlace"),
        [LintRule::EventPastTense]
    );
}

#[test]
fn allowances_suppress_exactly_the_named_warning() {
    let registry = registry(vec![
        event("OrderStatus", 2),
        event("CartState", 1),
        command("OrderCancel"),
    ]);
    let all = lint(&registry, &Allowances::default()).unwrap();
    let listed: Vec<(LintRule, &str)> = all.iter().map(|w| (w.rule, w.name.as_str())).collect();
    assert_eq!(
        listed,
        [
            (LintRule::EventPastTense, "OrderStatus"),
            (LintRule::VersionedFrom1, "OrderStatus"),
            (LintRule::EventPastTense, "CartState"),
            (LintRule::CommandImperative, "OrderCancel"),
        ]
    );

    let allow = Allowances::from_specs(["event-past-tense:OrderStatus"]).unwrap();
    let remaining: Vec<(LintRule, String)> = lint(&registry, &allow)
        .unwrap()
        .into_iter()
        .map(|w| (w.rule, w.name))
        .collect();
    assert_eq!(
        remaining,
        [
            (LintRule::VersionedFrom1, "OrderStatus".to_owned()),
            (LintRule::EventPastTense, "CartState".to_owned()),
            (LintRule::CommandImperative, "OrderCancel".to_owned()),
        ]
    );

    // Another rule for the same name, or the same rule for another name: no effect.
    let mut elsewhere = Allowances::default();
    elsewhere
        .allow(LintRule::CommandImperative, "OrderStatus")
        .allow(LintRule::EventPastTense, "OrderCancel");
    assert_eq!(lint(&registry, &elsewhere).unwrap(), all);

    // Everything allowed.
    let everything = Allowances::from_specs([
        "event-past-tense:OrderStatus",
        "versioned-from-1:OrderStatus",
        "event-past-tense:CartState",
        "command-imperative:OrderCancel",
    ])
    .unwrap();
    assert_eq!(lint(&registry, &everything).unwrap(), []);
}

#[test]
fn allowance_and_rule_parsing() {
    for rule in LintRule::ALL {
        assert_eq!(rule.id().parse::<LintRule>(), Ok(rule));
        assert_eq!(rule.to_string(), rule.id());
    }
    assert_eq!(
        Allowances::parse_one("event-past-tense:OrderStatus"),
        Ok((LintRule::EventPastTense, "OrderStatus".to_owned()))
    );
    assert_eq!(
        Allowances::parse_one("versioned-from-1:ItemAdded"),
        Ok((LintRule::VersionedFrom1, "ItemAdded".to_owned()))
    );
    assert_eq!(
        Allowances::parse_one("OrderStatus"),
        Err(InvalidAllowance::Shape("OrderStatus".into()))
    );
    assert_eq!(
        Allowances::parse_one("event-past-tense:"),
        Err(InvalidAllowance::Shape("event-past-tense:".into()))
    );
    let unknown = Allowances::parse_one("past-tense:OrderStatus").unwrap_err();
    assert_eq!(
        unknown,
        InvalidAllowance::Rule(UnknownLintRule("past-tense".into()))
    );
    // The cause is the error's source, printed once by a reporter that walks the chain.
    let cause = std::error::Error::source(&unknown).map(ToString::to_string);
    assert_eq!(
        format!("{unknown}: {}", cause.unwrap_or_default()),
        "invalid allowance: unknown lint rule `past-tense`: expected one of `event-past-tense`, `command-imperative`, `versioned-from-1`"
    );
    assert_eq!(
        Allowances::parse_one("nope").unwrap_err().to_string(),
        "invalid allowance `nope`: expected RULE:NAME, e.g. `event-past-tense:OrderStatus`"
    );
    assert!(Allowances::from_specs(["event-past-tense:A", "bad"]).is_err());
}

#[test]
fn display() {
    let registry = registry(vec![
        event("OrderPlace", 1),
        command("OrderCancel"),
        event("ItemAdded", 2),
    ]);
    let text: Vec<String> = lint(&registry, &Allowances::default())
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        text,
        [
            "warning[event-past-tense]: event `OrderPlace` should be named in the past tense (e.g. `OrderPlaced`)",
            "warning[command-imperative]: command `OrderCancel` should start with an imperative verb: is `Order` a verb? (e.g. `CancelOrder`)",
            "warning[versioned-from-1]: event `ItemAdded` starts at v2: every event is versioned from 1, and v2 has no upcast path (register v1, or `upcast_json` from 1)",
        ]
    );
}

#[test]
fn malformed_registries_are_errors() {
    assert!(lint(&json!({}), &Allowances::default()).is_err());
    let bad_upcast = registry(vec![event_with_upcast(
        "ItemAdded",
        2,
        json!({"kind": "json"}),
    )]);
    assert_eq!(
        lint(&bad_upcast, &Allowances::default()),
        Err(MalformedRegistry {
            path: "/entries/0/upcast".into(),
            problem: "expected `oldest`, a version".into(),
        })
    );
}
