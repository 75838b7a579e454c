//! What the generator tests share: the example domain's registry, installing and caching
//! the external tools (npm packages under a prefix, a Python virtual environment), running
//! commands, and golden envelopes built from events factum itself encoded.
//!
//! Every tool is required: a missing one fails the test (under `CI=true` and locally
//! alike), never skips it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use factum::EventSet;
use factum::registry::Registry;
use factum_example_orders::{
    Currency, ItemAdded, ItemRemoved, Line, Order, OrderCancelled, OrderConfirmed, OrderDelivered,
    OrderEvent, OrderNoteAdded, OrderPlaced, OrderPlacedV1, OrderShipped,
};
use serde_json::{Value, json};

/// The example domain's registry, serialised.
pub fn registry_json() -> Value {
    let registry = Registry::builder()
        .aggregate::<Order>()
        .build()
        .expect("no conflicting schemas");
    serde_json::to_value(&registry).expect("the registry serialises")
}

/// Runs `command`, failing the test unless it succeeds; returns its standard output.
pub fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error} ({command:?})"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Fails the test with `message` and how to install the tool, unless `found`.
fn require(found: bool, message: &str) {
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        found,
        "{message}{}",
        if ci {
            " — CI=true: a missing toolchain is a failure, not a skip"
        } else {
            ""
        }
    );
}

/// `tool` (`node` or `npm`) must be installed; `why` says what it is needed for.
pub fn require_tool(tool: &str, why: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    require(
        found,
        &format!(
            "`{tool}` is not on the PATH: {why}. Install Node.js 18+ with npm (e.g. \
             `apt-get install nodejs npm`)"
        ),
    );
}

/// The tools' directory: the one in `env_var`, or `<target>/tmp/<default>`.
fn tools_dir(env_var: &str, default: &str) -> PathBuf {
    std::env::var_os(env_var).map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join(default),
        PathBuf::from,
    )
}

/// The pinned npm `packages` (name, version), installed once under a prefix and cached;
/// returns the prefix. `why` says what they are needed for.
pub fn npm_tools(env_var: &str, default: &str, packages: &[(&str, &str)], why: &str) -> PathBuf {
    let tools = tools_dir(env_var, default);
    let installed = packages.iter().all(|(package, version)| {
        std::fs::read_to_string(
            tools
                .join("node_modules")
                .join(package)
                .join("package.json"),
        )
        .ok()
        .and_then(|manifest| serde_json::from_str::<Value>(&manifest).ok())
        .is_some_and(|manifest| manifest["version"] == *version)
    });
    if !installed {
        require_tool("npm", why);
        std::fs::create_dir_all(&tools).unwrap();
        let names: Vec<&str> = packages.iter().map(|(package, _)| *package).collect();
        run(
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&tools)
                .arg("--no-audit")
                .arg("--no-fund")
                .arg("--no-save")
                .args(
                    packages
                        .iter()
                        .map(|(package, version)| format!("{package}@{version}")),
                ),
            &format!("npm install {}", names.join(" ")),
        );
    }
    tools
}

/// A virtual environment with the pinned `requirements`, created once and cached; returns
/// its `python`. Needs `python3` (3.11+, with `venv` and `pip`).
pub fn venv_python(env_var: &str, default: &str, requirements: &[&str]) -> PathBuf {
    let tools = tools_dir(env_var, default);
    let python = tools.join("bin/python");
    let stamp = tools.join("factum-requirements.txt");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|found| found == wanted) && python.exists() {
        return python;
    }
    let found = Command::new("python3")
        .args(["-c", "import sys, venv; assert sys.version_info >= (3, 11)"])
        .output()
        .is_ok_and(|output| output.status.success());
    require(
        found,
        "`python3` (3.11+, with the venv module) is not on the PATH: the generated Python \
         must be type-checked and run to be tested. Install it (e.g. `apt-get install \
         python3 python3-venv python3-pip`)",
    );
    if !python.exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&tools),
            "python3 -m venv",
        );
    }
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements),
        &format!("pip install {}", requirements.join(" ")),
    );
    std::fs::write(&stamp, wanted).unwrap();
    python
}

/// A fresh scratch directory `<target>/tmp/<prefix>-<pid>`.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One stored event as the envelope JSON the generated modules describe.
pub fn envelope(name: &str, version: u32, payload: Value, sequence: u64) -> Value {
    let mut metadata = json!({
        "correlation_id": "0190a6f5-1c2b-7d3e-8f40-5a6b7c8d9e0f",
        "causation_id": if sequence.is_multiple_of(2) { Value::Null } else { json!("0190a6f5-1c2b-7d3e-8f40-000000000001") },
        "actor": if sequence.is_multiple_of(3) { Value::Null } else { json!("support@example.com") },
    });
    if sequence == 1 {
        metadata["extra"] = json!({"channel": "web", "attempt": 2, "tags": ["a", {"b": null}]});
    }
    json!({
        "event_id": format!("0190a6f5-1c2b-7d3e-8f40-{sequence:012}"),
        "stream_id": "order-42",
        "stream_type": "Order",
        "stream_version": sequence,
        "position": 1000 + sequence,
        "name": name,
        "version": version,
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "metadata": metadata,
        "payload": payload,
    })
}

/// Every event version of the domain, encoded by factum: the current versions through
/// `OrderEvent::encode`, the older typed version (`OrderPlacedV1`) through serde.
/// `item_added_unit_price` is the `ItemAdded` sample's unit price.
pub fn golden_events(item_added_unit_price: u64) -> Vec<Value> {
    let line = |sku: &str, quantity: u32, unit_price: u64| Line {
        sku: sku.to_owned(),
        quantity,
        unit_price,
    };
    let events = [
        OrderEvent::Placed(OrderPlaced {
            customer_id: "c-7".to_owned(),
            lines: vec![line("tea", 2, 450), line("mug", 1, 9_007_199_254_740_991)],
            currency: Currency::Gbp,
        }),
        OrderEvent::ItemAdded(ItemAdded {
            sku: "spoon \"silver\" ✓".to_owned(),
            quantity: 3,
            unit_price: item_added_unit_price,
        }),
        OrderEvent::ItemRemoved(ItemRemoved {
            sku: "mug".to_owned(),
        }),
        OrderEvent::Confirmed(OrderConfirmed { total: 1_350 }),
        OrderEvent::Shipped(OrderShipped {
            carrier: "DHL".to_owned(),
            tracking_code: "JD0146".to_owned(),
        }),
        OrderEvent::Delivered(OrderDelivered {}),
        OrderEvent::Cancelled(OrderCancelled {
            reason: "changed mind\nline two".to_owned(),
        }),
        OrderEvent::NoteAdded(OrderNoteAdded {
            text: String::new(),
        }),
    ];
    let mut golden = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let encoded = event.encode().expect("the event encodes");
        let payload: Value = serde_json::from_str(encoded.payload.get()).unwrap();
        golden.push(envelope(
            encoded.name,
            encoded.version,
            payload,
            index as u64 + 1,
        ));
    }
    let v1 = OrderPlacedV1 {
        customer_id: "c-1".to_owned(),
        lines: vec![],
    };
    golden.push(envelope(
        "OrderPlaced",
        1,
        serde_json::to_value(&v1).unwrap(),
        golden.len() as u64 + 1,
    ));
    golden
}

/// Asserts that `golden` has an event of every event version in `registry`; returns how
/// many (name, version) pairs that is.
pub fn assert_every_event_version(golden: &[Value], registry: &Value) -> usize {
    let mut covered: Vec<(String, u64)> = golden
        .iter()
        .map(|event| {
            (
                event["name"].as_str().unwrap().to_owned(),
                event["version"].as_u64().unwrap(),
            )
        })
        .collect();
    covered.sort();
    covered.dedup();
    let mut registered: Vec<(String, u64)> = registry["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "event")
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_owned(),
                entry["version"].as_u64().unwrap(),
            )
        })
        .collect();
    registered.sort();
    assert_eq!(
        covered, registered,
        "a golden event for every event version"
    );
    registered.len()
}

/// The example registry with its entries in reverse order (output must not depend on it).
pub fn reversed_registry_json() -> Value {
    let mut reversed = registry_json();
    reversed["entries"]
        .as_array_mut()
        .expect("entries")
        .reverse();
    reversed
}

/// The `OrderPlaced` v2 golden event, and copies of it each broken in one place: a
/// quantity as a string, an unknown currency, no customer, a retired version, a
/// numeric actor, a fractional stream version (in that order).
pub fn broken_order_placed(golden: &[Value]) -> (Value, [Value; 6]) {
    let placed = golden
        .iter()
        .find(|event| event["name"] == "OrderPlaced" && event["version"] == 2)
        .expect("an OrderPlaced v2 sample")
        .clone();
    let mut wrong_quantity = placed.clone();
    wrong_quantity["payload"]["lines"][1]["quantity"] = json!("2");
    let mut wrong_currency = placed.clone();
    wrong_currency["payload"]["currency"] = json!("Yen");
    let mut missing_customer = placed.clone();
    missing_customer["payload"]
        .as_object_mut()
        .unwrap()
        .remove("customer_id");
    let mut retired_version = placed.clone();
    retired_version["name"] = json!("ItemAdded");
    retired_version["version"] = json!(1);
    let mut bad_actor = placed.clone();
    bad_actor["metadata"]["actor"] = json!(7);
    let mut fractional = placed.clone();
    fractional["stream_version"] = json!(1.5);
    (
        placed,
        [
            wrong_quantity,
            wrong_currency,
            missing_customer,
            retired_version,
            bad_actor,
            fractional,
        ],
    )
}
