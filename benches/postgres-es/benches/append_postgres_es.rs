//! Appends on PostgreSQL: factum's `PostgresStore` against postgres-es 0.5 (the
//! published PostgreSQL store of cqrs-es), in one process, on the same server.
//!
//! postgres-es is measured through its persist path, as cqrs-es calls it after a
//! command: `PersistedEventRepository::persist::<A>(&[SerializedEvent], None)`, which
//! opens a transaction, inserts each event (one `INSERT` per event) and commits. It
//! writes to its own table (`bench_pges.events`, the DDL of its `db/init.sql`); factum
//! to its store in `bench_pges_factum`. Both get the same payload and the same metadata
//! entries, one stream each, one event or 100 per commit.
//!
//! This crate is a workspace of its own (sqlx, under postgres-es, cannot share a lock
//! file with the SQLite store's rusqlite). Run, with a server
//! (`eval "$(scripts/postgres.sh start)"`):
//! `cargo bench --manifest-path benches/postgres-es/Cargo.toml`.
//! Without `FACTUM_POSTGRES_URL` it prints a notice and measures nothing.

// Shared with `benches/benches/append_postgres.rs` (factum's writer, the groups, the
// paired timing); it compiles against this crate's dependencies as well.
#[path = "../../benches/shared/pg.rs"]
mod shared;

use std::cell::Cell;

use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope};
use criterion::Criterion;
use factum::prelude::*;
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::shared::{Contenders, FactumWriter, append_groups, connect, paired};

/// postgres-es's tables, from its `db/init.sql`, in a schema of their own.
const PGES_DDL: &str = "
    DROP SCHEMA IF EXISTS bench_pges CASCADE;
    CREATE SCHEMA bench_pges;
    CREATE TABLE bench_pges.events (
        aggregate_type text                         NOT NULL,
        aggregate_id   text                         NOT NULL,
        sequence       bigint CHECK (sequence >= 0) NOT NULL,
        event_type     text                         NOT NULL,
        event_version  text                         NOT NULL,
        payload        json                         NOT NULL,
        metadata       json                         NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    );
    CREATE TABLE bench_pges.snapshots (
        aggregate_type   text                                 NOT NULL,
        aggregate_id     text                                 NOT NULL,
        last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload          json                                 NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
    );";

/// The aggregate postgres-es needs a type of (`persist` only reads its `TYPE`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchOrder;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BenchEvent {
    ItemAdded(Value),
}

impl DomainEvent for BenchEvent {
    fn event_type(&self) -> String {
        "ItemAdded".to_owned()
    }

    fn event_version(&self) -> String {
        "2".to_owned()
    }
}

/// The aggregate's error: it never fails.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Aggregate for BenchOrder {
    const TYPE: &'static str = "Order";
    type Command = ();
    type Event = BenchEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        _command: (),
        _services: &(),
        _sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Never> {
        Ok(())
    }

    fn apply(&mut self, _event: BenchEvent) {}
}

/// The metadata entries as cqrs-es carries them: a string map.
fn cqrs_metadata(metadata: &Metadata) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    let uuid = |id: Option<factum::uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    map.insert("correlation_id".to_owned(), uuid(metadata.correlation_id));
    map.insert("causation_id".to_owned(), uuid(metadata.causation_id));
    map.insert(
        "actor".to_owned(),
        metadata.actor.clone().unwrap_or_default(),
    );
    map
}

/// The serialised events cqrs-es hands to `persist`, made as cqrs-es makes them.
fn serialized_events(
    count: usize,
    first_sequence: usize,
    payload: &Value,
    metadata: &std::collections::HashMap<String, String>,
) -> Vec<SerializedEvent> {
    (0..count)
        .map(|n| {
            let envelope = EventEnvelope::<BenchOrder> {
                aggregate_id: "bench-order".to_owned(),
                sequence: first_sequence + n,
                payload: BenchEvent::ItemAdded(payload.clone()),
                metadata: metadata.clone(),
            };
            SerializedEvent::try_from(&envelope).expect("the event serialises")
        })
        .collect()
}

/// factum and postgres-es, each on a stream of its own.
struct Writers {
    factum: FactumWriter,
    repository: PostgresEventRepository,
    value_payload: Value,
    cqrs_metadata: std::collections::HashMap<String, String>,
    pges_sequence: Cell<usize>,
}

impl Contenders for Writers {
    const FUNCTION: &'static str = "postgres_es/persist";
    const NAME: &'static str = "postgres-es";

    fn factum(&self) -> &FactumWriter {
        &self.factum
    }

    async fn append(&self, batch: usize) {
        let first = self.pges_sequence.get() + 1;
        let events = serialized_events(batch, first, &self.value_payload, &self.cqrs_metadata);
        self.repository
            .persist::<BenchOrder>(&events, None)
            .await
            .expect("postgres-es persist");
        self.pges_sequence.set(first + batch - 1);
    }
}

async fn setup(url: &str) -> Writers {
    connect(url)
        .await
        .batch_execute(PGES_DDL)
        .await
        .expect("the postgres-es schema");
    let factum = FactumWriter::new(url, "bench_pges_factum", "Order-bench-order").await;
    let pool = postgres_es::default_postgress_pool(url).await;
    let repository =
        PostgresEventRepository::new(pool).with_tables("bench_pges.events", "bench_pges.snapshots");
    Writers {
        repository,
        value_payload: serde_json::from_str(shared::PAYLOAD).expect("valid JSON"),
        cqrs_metadata: cqrs_metadata(&factum.metadata),
        factum,
        pges_sequence: Cell::new(0),
    }
}

fn main() {
    let Some(url) = shared::postgres_url("append_postgres_es") else {
        return;
    };
    let runtime = shared::runtime();
    let writers = runtime.block_on(setup(&url));
    let mut criterion = Criterion::default().configure_from_args();
    append_groups(&mut criterion, &runtime, &writers);
    criterion.final_summary();
    paired(&runtime, &writers, 1, 1500);
    paired(&runtime, &writers, 100, 150);
}
