//! Hand-written consumers of the generated contracts — `consumers/orders.ts` and
//! `consumers/orders.py`, a consumer team's code for the order domain — fed what factum
//! really delivers: the example domains' main jobs run on SQLite and PostgreSQL, every
//! event read back through the [`Upcaster`] (what factum hands to other services), and the
//! messages the NATS publisher sent, read back from the server. Each consumer must read
//! every order event (100%), round-trip it to equal JSON, pass over the events of other
//! stream types as "not mine", and fold the same read model the Rust aggregate does —
//! order A-1001, stored by an older release as `OrderPlaced` v1 and the retired
//! `ItemAdded` v1, included: the consumers have no upcasts of their own.
//!
//! Needs node and npm, python3 (3.11+) with venv, a PostgreSQL server
//! (`FACTUM_POSTGRES_URL`) and a NATS server (`FACTUM_NATS_URL`): `scripts/test.sh`
//! starts both. It fails, never skips, without them.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use factum::bus::NatsPublisher;
use factum::prelude::*;
use factum::projection::sqlite::SqliteReadModel;
use factum::store::SqliteStore;
use factum::upcast::Upcaster;
use factum_example_care_tasks::{CreateTask, Task};
use factum_example_orders::{Order, OrderEvent};
use serde_json::{Value, json};
use support::run;

/// What factum delivered from one source: the envelopes' JSON texts, in log order.
struct Delivered {
    source: &'static str,
    texts: Vec<String>,
    /// The read model the Rust aggregate folds from the same store.
    expected: Value,
    /// How many of the events are the order domain's.
    orders: usize,
}

impl Delivered {
    fn json(&self) -> Value {
        json!({"source": self.source, "texts": self.texts})
    }

    /// Asserts that a consumer's `output` read every order event, passed over the rest,
    /// and folded the expected read model.
    fn assert_consumed(&self, output: &str, consumer: &str) {
        let foreign = self.texts.len() - self.orders;
        let counts = format!(
            "{}: {} order events read, {foreign} of other stream types passed over",
            self.source, self.orders
        );
        assert!(
            output.contains(&counts),
            "{consumer}: expected `{counts}` in\n{output}"
        );
        let prefix = format!("READMODEL {} ", self.source);
        let model: Value = output
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|text| serde_json::from_str(text).expect("the read model is JSON"))
            .unwrap_or_else(|| panic!("{consumer}: no read model from {}\n{output}", self.source));
        assert_eq!(
            model, self.expected,
            "{consumer}: the read model from {}",
            self.source
        );
    }
}

/// The example domains' jobs, as they run: the order demo twice (the second run adds to
/// the first's history, A-1001 imported once as an older release stored it), then care
/// tasks — on SQLite the care-task demo itself on the same file, elsewhere a task created
/// through its repository.
async fn run_examples<S: EventStore + Clone>(store: &S) {
    for _ in 0..2 {
        factum_example_orders::demo::run_on(store.clone())
            .await
            .expect("the order demo runs");
    }
}

async fn create_task<S: EventStore + Clone>(store: &S) {
    let now = factum::envelope::now();
    Repository::<Task, S>::new(store.clone())
        .execute_with(
            CreateTask {
                task_id: "T-1".into(),
                title: "Wound dressing change".into(),
                care_recipient: "r-1".into(),
                due: now + chrono::TimeDelta::hours(2),
                at: now,
            },
            factum::context::CommandContext::new().actor(factum::context::Actor::new(
                factum_example_care_tasks::COORDINATOR,
                "coordinator",
            )),
        )
        .await
        .expect("a care task is created");
}

fn upcaster() -> Upcaster {
    Upcaster::new().aggregate::<Order>()
}

/// Every event of `store`, delivered: upcast to its newest version and serialised.
async fn delivered_from<S: EventStore>(store: &S) -> Vec<String> {
    let upcaster = upcaster();
    store
        .read_all(0, usize::MAX)
        .await
        .expect("read the store")
        .into_iter()
        .map(|event| {
            let event = upcaster.upcast(event).expect("every stored event upcasts");
            serde_json::to_string(&event).expect("an envelope serialises")
        })
        .collect()
}

/// The order read model the Rust aggregate folds from the stored events (as stored: the
/// aggregate runs its own upcasts), and how many order events there are.
async fn expected_from<S: EventStore>(store: &S) -> (Value, usize) {
    let mut orders: BTreeMap<String, Order> = BTreeMap::new();
    let mut count = 0;
    for event in store.read_all(0, usize::MAX).await.expect("read the store") {
        if event.stream_type != "Order" {
            continue;
        }
        count += 1;
        let decoded = OrderEvent::decode(&event.name, event.schema_version, event.payload.get())
            .expect("the aggregate reads its events");
        orders.entry(event.stream_id).or_default().apply(&decoded);
    }
    let model = orders
        .into_iter()
        .map(|(stream, order)| {
            let lines: serde_json::Map<String, Value> = order
                .lines
                .values()
                .map(|line| {
                    (
                        line.sku.clone(),
                        json!({"quantity": line.quantity, "unit_price": line.unit_price}),
                    )
                })
                .collect();
            let view = json!({
                "status": format!("{:?}", order.status),
                "customer_id": order.customer_id,
                "currency": order.currency,
                "lines": lines,
                "total": order.total().to_string(),
            });
            (stream, view)
        })
        .collect::<serde_json::Map<_, _>>();
    (Value::Object(model), count)
}

fn required_env(name: &str, what: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: the consumers must read {what}. `scripts/test.sh` starts \
                 the servers; by hand: `eval \"$(scripts/postgres.sh start)\"` and `eval \
                 \"$(scripts/nats.sh start)\"`"
            )
        })
}

/// The messages the NATS publisher (upcasting) sent for every event of `store`, as the
/// server stored them: their bodies, in stream order.
async fn published_by_nats(store: &SqliteStore, dir: &Path) -> Vec<String> {
    let url = required_env("FACTUM_NATS_URL", "what the NATS publisher sends");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let tag = format!("consumers_{}_{nanos}", std::process::id());
    let (stream, prefix) = (format!("T_{tag}"), format!("t_{tag}"));
    let checkpoints = SqliteReadModel::open(dir.join("publisher"))
        .await
        .expect("open the publisher's checkpoints");
    let published = NatsPublisher::new(store.clone(), checkpoints, url.as_str())
        .stream(stream.as_str())
        .subject_prefix(prefix.as_str())
        .upcast(upcaster())
        .publish_pending()
        .await
        .expect("the publisher publishes the store");

    let client = async_nats::connect(url.as_str())
        .await
        .expect("connect to NATS");
    let jetstream = async_nats::jetstream::new(client);
    let server_stream = jetstream
        .get_stream(&stream)
        .await
        .expect("the stream exists");
    let mut bodies = Vec::new();
    for sequence in 1..=published.published {
        let message = server_stream
            .get_raw_message(sequence)
            .await
            .expect("every published message is on the server");
        bodies.push(String::from_utf8(message.payload.to_vec()).expect("a JSON body"));
    }
    // Leave nothing behind on the shared server.
    jetstream
        .delete_stream(&stream)
        .await
        .expect("delete the stream");
    bodies
}

/// Runs the example jobs on SQLite and PostgreSQL and collects what factum delivers.
fn deliveries() -> Vec<Delivered> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let db = dir.path().join("examples.sqlite3");
        let sqlite = SqliteStore::open(&db).await.expect("open a SQLite store");
        run_examples(&sqlite).await;
        factum_example_care_tasks::demo::run(&factum_example_care_tasks::demo::Options::new(&db))
            .await
            .expect("the care-task demo runs on the same file");
        let (expected, orders) = expected_from(&sqlite).await;
        let mut delivered = vec![
            Delivered {
                source: "SQLite",
                texts: delivered_from(&sqlite).await,
                expected: expected.clone(),
                orders,
            },
            Delivered {
                source: "NATS",
                texts: published_by_nats(&sqlite, dir.path()).await,
                expected,
                orders,
            },
        ];

        let url = required_env("FACTUM_POSTGRES_URL", "what PostgreSQL stores");
        let schema = format!("t_codegen_consumers_{}", std::process::id());
        let postgres = factum::postgres::PostgresStore::builder(url)
            .schema(schema.as_str())
            .connect()
            .await
            .expect("connect the PostgreSQL store");
        run_examples(&postgres).await;
        create_task(&postgres).await;
        let (expected, orders) = expected_from(&postgres).await;
        delivered.push(Delivered {
            source: "PostgreSQL",
            texts: delivered_from(&postgres).await,
            expected,
            orders,
        });
        delivered
    })
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumers")
}

/// The committed contracts, as the consumer team gets them.
fn contract(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/orders/contracts")
        .join(file)
}

#[test]
fn hand_written_consumers_read_everything_factum_delivers() {
    let delivered = deliveries();
    for source in &delivered {
        assert!(
            source.orders < source.texts.len(),
            "{}: other stream types are in the feed too",
            source.source
        );
        // The old versions on disk are delivered in the newest one.
        let upcast = source
            .texts
            .iter()
            .filter(|text| text.contains("\"stored_schema_version\":1"))
            .count();
        assert!(
            upcast >= 2,
            "{}: A-1001's v1 events are delivered upcast",
            source.source
        );
    }
    let feed = Value::Array(delivered.iter().map(Delivered::json).collect());

    support::require_tool("node", "the TypeScript consumer must be compiled and run");
    let tsc = support::npm_tools(
        "FACTUM_TS_TOOLS",
        "ts-tools",
        &[("typescript", support::TYPESCRIPT_VERSION)],
        "the TypeScript consumer must be compiled and run",
    )
    .join("node_modules/typescript/bin/tsc");
    let dir = support::scratch_dir("ts-consumer");
    std::fs::copy(contract("events.ts"), dir.join("generated.ts")).unwrap();
    std::fs::write(
        dir.join("deliveries.ts"),
        format!(
            "// Written by codegen/tests/consumers.rs: what factum delivered.\n\
             export const deliveries: {{ source: string; texts: string[] }}[] = {feed};\n"
        ),
    )
    .unwrap();
    std::fs::copy(support::json_equal_ts(), dir.join("json_equal.ts")).unwrap();
    for fixture in ["tsconfig.json", "orders.ts"] {
        std::fs::copy(fixtures().join(fixture), dir.join(fixture)).unwrap();
    }
    run(
        Command::new("node").arg(&tsc).arg("--project").arg(&dir),
        "tsc --strict (the TypeScript consumer)",
    );
    let output = run(
        Command::new("node").arg(dir.join("out/orders.js")),
        "node orders.js",
    );
    println!("{output}");
    for source in &delivered {
        source.assert_consumed(&output, "TypeScript");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let python = support::venv_python("FACTUM_PY_TOOLS", "py-tools", support::PYTHON_REQUIREMENTS);
    let dir = support::scratch_dir("py-consumer");
    std::fs::copy(contract("events.py"), dir.join("generated.py")).unwrap();
    std::fs::copy(fixtures().join("orders.py"), dir.join("orders.py")).unwrap();
    std::fs::write(dir.join("deliveries.json"), feed.to_string()).unwrap();
    run(
        Command::new(&python)
            .args([
                "-m",
                "mypy",
                "--strict",
                "--no-incremental",
                "generated.py",
                "orders.py",
            ])
            .current_dir(&dir),
        "mypy --strict (the Python consumer)",
    );
    let output = run(
        Command::new(&python)
            .args(["orders.py", "deliveries.json"])
            .current_dir(&dir),
        "python orders.py",
    );
    println!("{output}");
    for source in &delivered {
        source.assert_consumed(&output, "Python");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An event the upcaster cannot read stops the publisher before it, with the events
/// before it published and checkpointed: nothing half-read reaches a consumer.
#[test]
fn an_event_that_cannot_be_upcast_stops_the_publisher_before_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = required_env("FACTUM_NATS_URL", "what the NATS publisher sends");
        let dir = tempfile::tempdir().expect("a scratch directory");
        let store = SqliteStore::open(dir.path().join("events.sqlite3"))
            .await
            .expect("open a SQLite store");
        factum_example_orders::demo::import_legacy_order(&store)
            .await
            .expect("the legacy order is imported");
        let broken = NewEvent::new(
            "ItemAdded",
            1,
            serde_json::value::to_raw_value(&json!({ "sku": "tea", "unit_price": 1 })).unwrap(),
            Metadata::default(),
        );
        store
            .append(
                "Order-A-1001",
                "Order",
                ExpectedVersion::Exact(2),
                vec![broken],
            )
            .await
            .expect("append a v1 event without its quantity");
        let tag = format!("upcast_stop_{}", std::process::id());
        let checkpoints = SqliteReadModel::open(dir.path().join("publisher"))
            .await
            .expect("open the publisher's checkpoints");
        let mut publisher = NatsPublisher::new(store.clone(), checkpoints, url.as_str())
            .stream(format!("T_{tag}"))
            .subject_prefix(format!("t_{tag}"))
            .upcast(upcaster());
        let error = publisher.publish_pending().await.unwrap_err();
        assert!(error.is_fatal(), "{error:?}");
        let factum::bus::BusError::Upcast { source, .. } = &error else {
            panic!("expected an upcast error, got {error:?}");
        };
        assert_eq!(
            (source.stream_id.as_str(), source.position),
            ("Order-A-1001", 3)
        );
        let report = factum::error::Report(&error).to_string();
        assert!(report.contains("no field `qty`"), "{report}");
        assert_eq!(
            publisher.checkpoint().await.expect("the checkpoint reads"),
            2
        );

        let client = async_nats::connect(url.as_str())
            .await
            .expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream
            .get_stream(format!("T_{tag}"))
            .await
            .expect("the stream");
        assert_eq!(stream.info().await.expect("stream info").state.messages, 2);
        jetstream
            .delete_stream(format!("T_{tag}"))
            .await
            .expect("delete the stream");
    });
}
