//! What the generator tests share: the example domain's registry, installing and caching
//! the external tools (npm packages under a prefix, a Python virtual environment), running
//! commands, and the envelopes factum really writes: the example domain's commands run
//! through a `Repository` into a SQLite (and a PostgreSQL) store and read back.
//!
//! Every tool is required: a missing one fails the test (under `CI=true` and locally
//! alike), never skips it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use factum::prelude::*;
use factum::registry::Registry;
use factum::sqlite::SqliteStore;
use factum::uuid::Uuid;
use factum_example_care_tasks::{CreateTask, Task, TaskCommand};
use factum_example_orders::OrderEvent;
use factum_example_orders::{
    AddItem, AddNote, CancelOrder, Catalog, ConfirmOrder, Currency, DeliverOrder, Line, Order,
    OrderCommand, OrderPlacedV1, PlaceOrder, RemoveItem, RequestedLine, ShipOrder,
};
use serde_json::{Value, json};

/// The pinned TypeScript compiler every TypeScript test compiles with.
pub const TYPESCRIPT_VERSION: &str = "5.6.3";

/// The pinned Python packages every Python test runs with.
pub const PYTHON_REQUIREMENTS: &[&str] = &["pydantic==2.9.2", "mypy==1.13.0"];

/// `json_equal.ts`, the TypeScript tests' comparison of JSON values.
pub fn json_equal_ts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/json_equal.ts")
}

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

/// Held while tools are checked and installed, one test at a time.
static INSTALLING: Mutex<()> = Mutex::new(());

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
    // The tests of one binary run on threads at once: on a fresh checkout two would run
    // `npm install` into the same prefix together and break it.
    let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
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
    let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
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

/// The example domain's history (and one event of another aggregate, a care task, in a
/// stream of its own), written through the real code paths: every current event
/// version by a command through `Repository<Order, _>` (with metadata: an actor, a
/// correlation id, free-form entries, a causation id, or none of them), and an
/// `OrderPlaced` v1 appended to the store as a service of that version's era wrote it
/// (its payload serialised by `OrderPlacedV1`). `item_added_unit_price` is the catalogue
/// price of the item added.
pub async fn write_history<S: EventStore + Clone>(store: &S, item_added_unit_price: u64) {
    let catalog = Catalog::new([
        ("tea", 450),
        ("mug", 9_007_199_254_740_991),
        ("spoon \"silver\" ✓", item_added_unit_price),
    ]);
    let orders = Repository::<Order, S>::with_services(store.clone(), catalog);
    let line = |sku: &str, quantity: u32| RequestedLine {
        sku: sku.to_owned(),
        quantity,
    };
    let full = CommandContext::new()
        .actor(Actor::new("support", "support@example.com"))
        .tenant("acme")
        .correlation_id(Uuid::now_v7())
        .extra("channel", json!("web"))
        .extra("attempt", json!(2))
        .extra("tags", json!(["a", {"b": null}]));
    let history: Vec<(OrderCommand, CommandContext)> = vec![
        (
            OrderCommand::Place(PlaceOrder {
                order_id: "A-1001".to_owned(),
                customer_id: "c-7".to_owned(),
                lines: vec![line("tea", 2), line("mug", 1)],
                currency: Currency::Gbp,
            }),
            full,
        ),
        (
            OrderCommand::RemoveItem(RemoveItem {
                order_id: "A-1001".to_owned(),
                sku: "mug".to_owned(),
            }),
            CommandContext::new().actor(Actor::new("clerk", "clerk")),
        ),
        (
            OrderCommand::Confirm(ConfirmOrder {
                order_id: "A-1001".to_owned(),
            }),
            CommandContext::new(),
        ),
        (
            OrderCommand::Ship(ShipOrder {
                order_id: "A-1001".to_owned(),
                carrier: "DHL".to_owned(),
                tracking_code: "JD0146".to_owned(),
            }),
            CommandContext::new().causation_id(Uuid::now_v7()),
        ),
        (
            OrderCommand::Deliver(DeliverOrder {
                order_id: "A-1001".to_owned(),
            }),
            CommandContext::new(),
        ),
        (
            OrderCommand::Place(PlaceOrder {
                order_id: "B-2002".to_owned(),
                customer_id: "c-9".to_owned(),
                lines: vec![line("tea", 1)],
                currency: Currency::Eur,
            }),
            CommandContext::new(),
        ),
        (
            OrderCommand::AddItem(AddItem {
                order_id: "B-2002".to_owned(),
                line: line("spoon \"silver\" ✓", 3),
            }),
            CommandContext::new().actor(Actor::new("clerk", "clerk")),
        ),
        (
            OrderCommand::AddNote(AddNote {
                order_id: "B-2002".to_owned(),
                text: String::new(),
            }),
            CommandContext::new(),
        ),
        (
            OrderCommand::Cancel(CancelOrder {
                order_id: "B-2002".to_owned(),
                reason: "changed mind\nline two".to_owned(),
            }),
            CommandContext::new(),
        ),
    ];
    for (command, metadata) in history {
        let what = format!("{command:?}");
        orders
            .execute_with(command, metadata)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
    }

    let v1 = OrderPlacedV1 {
        customer_id: "c-1".to_owned(),
        lines: vec![Line {
            sku: "tea".to_owned(),
            quantity: 1,
            unit_price: 450,
        }],
    };
    let payload = serde_json::value::to_raw_value(&v1).expect("a v1 payload");
    store
        .append(
            "Order-L-0001",
            "Order",
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "OrderPlaced",
                1,
                payload,
                CommandContext::new().event_metadata(),
            )],
        )
        .await
        .expect("append a v1 OrderPlaced");

    // Another aggregate's stream in the same store: what an order contract must recognise
    // as "not mine".
    let tasks = Repository::<Task, S>::new(store.clone());
    let at = factum::envelope::now();
    tasks
        .execute_with(
            TaskCommand::Create(CreateTask {
                task_id: "T-1".to_owned(),
                title: "Medication round".to_owned(),
                care_recipient: "r-3".to_owned(),
                due: at,
                at,
            }),
            CommandContext::new().actor(Actor::new("coordinator", "coordinator")),
        )
        .await
        .expect("create a care task");
}

/// Every event of `store`, as the JSON text the Rust serializer of `RecordedEvent` writes
/// (the event bus's body), normalised through `serde_json::Value` (keys sorted; a
/// PostgreSQL `jsonb` payload's spacing gone).
pub async fn read_envelopes<S: EventStore>(store: &S) -> Vec<String> {
    let events = store.read_all(0, 10_000).await.expect("read the store");
    events
        .iter()
        .map(|event| {
            let text = serde_json::to_string(event).expect("an envelope serialises");
            let value: Value = serde_json::from_str(&text).expect("an envelope is JSON");
            value.to_string()
        })
        .collect()
}

/// A single-threaded runtime for the async code paths the tests drive.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The envelopes of [`write_history`] written to and read back from a fresh SQLite store.
pub fn sqlite_envelopes(item_added_unit_price: u64) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a scratch folder");
    runtime().block_on(async {
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("open a SQLite store");
        write_history(&store, item_added_unit_price).await;
        read_envelopes(&store).await
    })
}

/// The envelopes of [`write_history`] written to and read back from PostgreSQL (the
/// server in `FACTUM_POSTGRES_URL`, in a schema of its own, emptied first). Without a
/// server the test fails, as every PostgreSQL test does: it never passes unchecked.
pub fn postgres_envelopes(schema: &str, item_added_unit_price: u64) -> Vec<String> {
    let url = std::env::var("FACTUM_POSTGRES_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    let Some(url) = url else {
        require(
            false,
            "FACTUM_POSTGRES_URL is not set: the envelopes PostgreSQL writes must be parsed \
             too. Start a throwaway server with `eval \"$(scripts/postgres.sh start)\"`",
        );
        unreachable!("require(false, ..) fails the test");
    };
    runtime().block_on(async {
        let read_models = factum::postgres::PostgresReadModel::connect(&url)
            .await
            .expect("connect to FACTUM_POSTGRES_URL");
        read_models
            .client()
            .await
            .expect("a connection")
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .expect("drop the test schema");
        let store = factum::postgres::PostgresStore::builder(url)
            .schema(schema)
            .connect()
            .await
            .expect("connect the PostgreSQL store");
        write_history(&store, item_added_unit_price).await;
        read_envelopes(&store).await
    })
}

/// The envelopes of every store, as (store, envelopes as JSON text), SQLite first;
/// PostgreSQL's in the schema `t_codegen_<test>`.
pub fn real_envelopes(test: &str, item_added_unit_price: u64) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("SQLite", sqlite_envelopes(item_added_unit_price)),
        (
            "PostgreSQL",
            postgres_envelopes(&format!("t_codegen_{test}"), item_added_unit_price),
        ),
    ]
}

/// Asserts that `envelopes` have an event of every event version in `registry`; returns
/// how many (name, version) pairs that is.
pub fn assert_every_event_version(envelopes: &[Value], registry: &Value) -> usize {
    let mut covered: Vec<(String, u64)> = envelopes
        .iter()
        .map(|event| {
            (
                event["name"].as_str().unwrap().to_owned(),
                event["schema_version"].as_u64().unwrap(),
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
        "a real envelope for every event version"
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

/// The first `OrderPlaced` v2 envelope of `envelopes`.
pub fn order_placed(envelopes: &[Value]) -> Value {
    envelopes
        .iter()
        .find(|event| event["name"] == "OrderPlaced" && event["schema_version"] == 2)
        .expect("an OrderPlaced v2 envelope")
        .clone()
}

/// The real envelopes a contract test feeds a generated module: those of every store
/// (see [`real_envelopes`]), each store's checked to cover every event version.
pub struct RealEnvelopes {
    /// (store, envelope text) pairs.
    pub envelopes: Vec<(&'static str, String)>,
    /// The envelopes of other stream types (a care task) in the same stores: "not mine".
    pub foreign: Vec<String>,
    /// How many (name, version) pairs they cover.
    pub registered: usize,
}

impl RealEnvelopes {
    /// Writes and reads back the history in every store (PostgreSQL's schema named after
    /// `test`); `item_added_unit_price` as in [`write_history`].
    pub fn read(test: &str, item_added_unit_price: u64, registry: &Value) -> Self {
        let mut envelopes = Vec::new();
        let mut foreign = Vec::new();
        let mut registered = 0;
        for (store, texts) in real_envelopes(test, item_added_unit_price) {
            let (texts, others): (Vec<String>, Vec<String>) = texts.into_iter().partition(|text| {
                let event: factum::envelope::RecordedEvent =
                    serde_json::from_str(text).expect("an envelope");
                event.stream_type == <Order as Aggregate>::NAME
            });
            assert_eq!(others.len(), 1, "{store}: one care task event");
            foreign.extend(others);
            let values: Vec<Value> = texts
                .iter()
                .map(|text| serde_json::from_str(text).expect("an envelope is JSON"))
                .collect();
            registered = assert_every_event_version(&values, registry);
            assert_eq!(texts.len(), 10, "{store}: 9 commands' events and one v1");
            envelopes.extend(texts.into_iter().map(|text| (store, text)));
        }
        Self {
            envelopes,
            foreign,
            registered,
        }
    }

    /// The envelopes as JSON values.
    pub fn values(&self) -> Vec<Value> {
        self.envelopes
            .iter()
            .map(|(_, text)| serde_json::from_str(text).expect("an envelope is JSON"))
            .collect()
    }

    /// The envelopes as the checking scripts read them: `{"store", "text"}` objects.
    pub fn cases(&self) -> Vec<Value> {
        self.envelopes
            .iter()
            .map(|(store, text)| json!({"store": store, "text": text}))
            .collect()
    }

    /// Asserts that a checking script's `output` says it parsed all N of N envelopes of
    /// each store, and read the foreign ones as not mine.
    pub fn assert_all_parsed(&self, output: &str) {
        assert!(
            output.contains(&format!(
                "read {} foreign envelopes as not mine\n",
                self.foreign.len()
            )),
            "{output}"
        );
        for store in ["SQLite", "PostgreSQL"] {
            let count = self
                .envelopes
                .iter()
                .filter(|(from, _)| *from == store)
                .count();
            if count > 0 {
                assert!(
                    output.contains(&format!(
                        "parsed {count} of {count} real envelopes from {store}\n"
                    )),
                    "{output}"
                );
            }
        }
        assert!(
            output.contains(&format!(
                "checked {} real envelopes ({} name/version pairs)\n",
                self.envelopes.len(),
                self.registered,
            )),
            "{output}"
        );
    }
}

/// One change to a real envelope.
pub enum Change {
    /// Sets the value at the path to this JSON text (written as is: `18446744073709551616`
    /// stays an integer, which a `serde_json::Value` could not hold).
    Set(&'static str),
    /// Removes the property at the path.
    Remove,
    /// Writes the envelope's properties in reverse order (the path is `$`).
    ReverseKeys,
}

/// A real envelope with exactly one thing changed, and Rust's verdict on it.
pub struct Case {
    /// What was changed.
    pub label: &'static str,
    /// The JSON path of the change (`$.metadata.actor`): a rejection must name it.
    pub path: String,
    /// The envelope's JSON text.
    pub text: String,
    /// Whether Rust accepts it, computed: see [`rust_accepts`].
    pub rust_accepts: bool,
    /// The new value's JSON text, for a [`Change::Set`].
    value: Option<&'static str>,
}

/// 2^53 - 1: `JSON.parse` rounds integers beyond it.
const MAX_SAFE_INTEGER: i128 = 9_007_199_254_740_991;

impl Case {
    /// Why TypeScript's verdict differs from Rust's, when it is a documented difference
    /// (see the generated module's header and the README): Rust accepts an integer beyond
    /// +/-(2^53 - 1), which `JSON.parse` cannot hold exactly, so the guards reject it.
    pub fn typescript_difference(&self) -> Option<&'static str> {
        let beyond = self
            .value
            .and_then(|value| value.parse::<i128>().ok())
            .is_some_and(|value| value.abs() > MAX_SAFE_INTEGER);
        (self.rust_accepts && beyond).then_some("an integer beyond 2^53 - 1 (JSON.parse rounds it)")
    }

    /// The case as a checking script reads it, with the verdict the language must give.
    fn to_json(&self, accept: bool, note: Option<&str>) -> Value {
        json!({
            "label": self.label,
            "path": self.path,
            "text": self.text,
            "accept": accept,
            "rust": self.rust_accepts,
            "note": note,
        })
    }
}

/// Rust's verdict on an envelope of the order domain: it reads as a `RecordedEvent` and
/// its payload decodes with the domain's event set.
pub fn rust_accepts(text: &str) -> bool {
    let Ok(event) = serde_json::from_str::<factum::envelope::RecordedEvent>(text) else {
        return false;
    };
    <OrderEvent as EventSet>::decode(&event.name, event.schema_version, event.payload.get()).is_ok()
}

/// `base` with `change` at `path` (`payload.lines[0].quantity`; empty for the root), and
/// that path as a JSON path (`$.payload.lines[0].quantity`).
fn changed(base: &Value, path: &str, change: &Change) -> (String, String) {
    const PLACEHOLDER: &str = "\u{0}factum-placeholder";
    let json_path = if path.is_empty() {
        "$".to_owned()
    } else {
        format!("$.{path}")
    };
    let mut value = base.clone();
    let Some((parents, key)) = path
        .rsplit_once('.')
        .or((!path.is_empty()).then_some(("", path)))
    else {
        let Change::ReverseKeys = change else {
            unreachable!("only the key order changes at the root")
        };
        let entries: Vec<String> = value
            .as_object()
            .expect("an envelope is an object")
            .iter()
            .rev()
            .map(|(key, value)| format!("{}:{value}", Value::String(key.clone())))
            .collect();
        return (json_path, format!("{{{}}}", entries.join(",")));
    };
    // `lines[0]` is the key `lines`, then the index 0.
    let mut parent = &mut value;
    for segment in parents.split('.').filter(|segment| !segment.is_empty()) {
        let (key, index) = match segment.split_once('[') {
            Some((key, index)) => (key, index.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        parent = &mut parent[key];
        if let Some(index) = index {
            parent = &mut parent[index];
        }
    }
    let object = parent.as_object_mut().expect("the parent is an object");
    let text = match change {
        Change::Remove => {
            assert!(
                object.remove(key).is_some(),
                "{json_path} is in the envelope"
            );
            value.to_string()
        }
        Change::Set(raw) => {
            object.insert(key.to_owned(), json!(PLACEHOLDER));
            value
                .to_string()
                .replace(&Value::String(PLACEHOLDER.to_owned()).to_string(), raw)
        }
        Change::ReverseKeys => unreachable!("at the root only"),
    };
    (json_path, text)
}

/// The cases the consumers must judge as Rust does: each a real envelope (the first
/// `OrderPlaced` v2, with an actor, a correlation, a causation and free-form entries, or
/// the first `ItemAdded` v2) with one change.
pub fn envelope_cases(envelopes: &[Value]) -> Vec<Case> {
    let placed = order_placed(envelopes);
    let item_added = envelopes
        .iter()
        .find(|event| event["name"] == "ItemAdded")
        .expect("an ItemAdded envelope")
        .clone();
    for key in ["actor", "correlation_id", "causation_id", "extra"] {
        assert!(
            !placed["metadata"][key].is_null(),
            "the base envelope has metadata.{key}"
        );
    }
    use Change::{Remove, ReverseKeys, Set};
    #[rustfmt::skip] // A table: one case a line.
    let list: Vec<(&'static str, &Value, &str, Change)> = vec![
        ("metadata.actor absent", &placed, "metadata.actor", Remove),
        ("metadata.correlation_id absent", &placed, "metadata.correlation_id", Remove),
        ("metadata.causation_id absent", &placed, "metadata.causation_id", Remove),
        ("metadata.extra null", &placed, "metadata.extra", Set("null")),
        ("metadata.extra absent", &placed, "metadata.extra", Remove),
        ("metadata.actor a number", &placed, "metadata.actor", Set("7")),
        ("unknown metadata field", &placed, "metadata.tenant", Set(r#""t-1""#)),
        ("event_id not a uuid", &placed, "event_id", Set(r#""not-a-uuid""#)),
        ("timestamp \"yesterday\"", &placed, "timestamp", Set(r#""yesterday""#)),
        ("timestamp without offset", &placed, "timestamp", Set(r#""2026-01-02T03:04:05""#)),
        ("timestamp a number", &placed, "timestamp", Set("1767322445")),
        ("timestamp with a +01:00 offset", &placed, "timestamp", Set(r#""2026-01-02T04:04:05.322+01:00""#)),
        ("timestamp in milliseconds", &placed, "timestamp", Set(r#""2026-01-02T03:04:05.322Z""#)),
        ("timestamp in nanoseconds", &placed, "timestamp", Set(r#""2026-01-02T03:04:05.123456789Z""#)),
        ("u32 quantity 2^32", &placed, "payload.lines[0].quantity", Set("4294967296")),
        ("u32 quantity 2^32 - 1", &placed, "payload.lines[0].quantity", Set("4294967295")),
        ("u32 quantity -1", &placed, "payload.lines[0].quantity", Set("-1")),
        ("u64 position 2^64", &placed, "position", Set("18446744073709551616")),
        ("u64 position -1", &placed, "position", Set("-1")),
        ("u64 position 2^53", &placed, "position", Set("9007199254740992")),
        ("u64 unit_price 2^64 - 1", &placed, "payload.lines[0].unit_price", Set("18446744073709551615")),
        ("u64 unit_price 2^64", &placed, "payload.lines[0].unit_price", Set("18446744073709551616")),
        ("stream_version 1.5", &placed, "stream_version", Set("1.5")),
        ("stream_version 0", &placed, "stream_version", Set("0")),
        ("stored_schema_version 1 (delivered upcast)", &placed, "stored_schema_version", Set("1")),
        ("stored_schema_version 0", &placed, "stored_schema_version", Set("0")),
        ("stored_schema_version null", &placed, "stored_schema_version", Set("null")),
        ("stream_id a number", &placed, "stream_id", Set("7")),
        ("schema_version 0", &placed, "schema_version", Set("0")),
        ("schema_version 2^32", &placed, "schema_version", Set("4294967296")),
        ("OrderPlaced version 3 (newer than the contract)", &placed, "schema_version", Set("3")),
        ("ItemAdded version 1 (retired, payload of v2)", &item_added, "schema_version", Set("1")),
        ("unknown event name for the stream type", &placed, "name", Set(r#""OrderRefunded""#)),
        ("unknown top-level field", &placed, "delivered_by", Set(r#""nats""#)),
        ("unknown payload field", &placed, "payload.gift_wrap", Set("true")),
        ("payload field of the wrong type", &placed, "payload.lines[1].quantity", Set(r#""2""#)),
        ("payload field missing", &placed, "payload.customer_id", Remove),
        ("unknown enum value", &placed, "payload.currency", Set(r#""Yen""#)),
        ("properties in reverse order", &placed, "", ReverseKeys),
    ];
    list.into_iter()
        .map(|(label, base, path, change)| {
            let (path, text) = changed(base, path, &change);
            Case {
                label,
                rust_accepts: rust_accepts(&text),
                path,
                text,
                value: match change {
                    Change::Set(raw) => Some(raw),
                    _ => None,
                },
            }
        })
        .collect()
}

impl Case {
    /// Whether the envelope names an event version the registry does not have (an error
    /// that must say the contract may be older than the producer), with a version the
    /// envelope's schema allows (below its minimum, the header is what is wrong).
    pub fn unknown_event(&self, registry: &Value) -> bool {
        let Ok(event) = serde_json::from_str::<factum::envelope::RecordedEvent>(&self.text) else {
            return false;
        };
        let minimum = &registry["envelope"]["properties"]["schema_version"]["minimum"];
        if minimum
            .as_u64()
            .is_none_or(|minimum| u64::from(event.schema_version) < minimum)
        {
            return false;
        }
        !registry["entries"].as_array().unwrap().iter().any(|entry| {
            entry["kind"] == "event"
                && entry["name"] == event.name.as_str()
                && entry["version"] == event.schema_version
        })
    }
}

/// Every case of [`envelope_cases`] as a checking script reads it, with the verdict the
/// language must give: Rust's, or, where `difference` names one, the opposite.
pub fn cases_json(
    envelopes: &[Value],
    registry: &Value,
    difference: impl Fn(&Case) -> Option<&'static str>,
) -> Vec<Value> {
    envelope_cases(envelopes)
        .iter()
        .map(|case| {
            let note = difference(case);
            let mut json = case.to_json(case.rust_accepts != note.is_some(), note);
            json["unknown_event"] = json!(case.unknown_event(registry));
            json
        })
        .collect()
}

/// Asserts that a checking script's `output` says it judged every case as expected.
pub fn assert_cases_judged(output: &str, cases: &[Value]) {
    let differences = cases.iter().filter(|case| !case["note"].is_null()).count();
    let accepted = cases.iter().filter(|case| case["accept"] == true).count();
    assert!(
        output.contains(&format!(
            "cases: {} judged, {accepted} accepted, {} rejected; {} as Rust, {differences} documented differences\n",
            cases.len(),
            cases.len() - accepted,
            cases.len() - differences,
        )),
        "{output}"
    );
}
