//! Running commands through a repository: metadata flows into events, conflicts are
//! typed and write nothing, retries decide again on fresh state.

use factum::prelude::*;
use factum_example_orders::*;

type Orders = Repository<Order, MemoryStore>;

fn orders(store: &MemoryStore) -> Orders {
    Orders::with_services(store.clone(), Catalog::new([("tea", 450), ("mug", 1200)]))
}

fn place(id: &str) -> PlaceOrder {
    PlaceOrder {
        order_id: id.into(),
        customer_id: "c-1".into(),
        lines: vec![RequestedLine {
            sku: "tea".into(),
            quantity: 1,
        }],
        currency: Currency::Eur,
    }
}

#[tokio::test]
async fn command_metadata_flows_into_every_event() {
    let store = MemoryStore::new();
    let correlation = factum::uuid::Uuid::now_v7();
    let metadata = CommandContext::new()
        .actor(Actor::new("clerk", "clerk-3"))
        .correlation_id(correlation)
        .extra("channel", serde_json::json!("phone"));
    let command_id = metadata.command_id;
    let executed = orders(&store)
        .execute_with(place("o-1"), metadata)
        .await
        .unwrap();
    assert_eq!(
        (executed.stream_id.as_str(), executed.version),
        ("Order-o-1", 1)
    );

    let recorded = store.read_stream("Order-o-1", 1, 10).await.unwrap();
    let event = &recorded[0];
    assert_eq!(event.stream_type, "Order");
    assert_eq!(
        (event.name.as_str(), event.schema_version),
        ("OrderPlaced", 2)
    );
    assert_eq!(event.metadata.causation_id, Some(command_id));
    assert_eq!(event.metadata.correlation_id, Some(correlation));
    assert_eq!(event.metadata.actor.as_deref(), Some("clerk-3"));
    assert_eq!(
        event.metadata.issued_by(),
        Some(Actor::new("clerk", "clerk-3"))
    );
    assert_eq!(event.metadata.extra["channel"], "phone");
    assert_eq!(event.event_id.get_version_num(), 7);

    // Without a correlation id, the command starts its own transaction.
    let metadata = CommandContext::new();
    let command_id = metadata.command_id;
    orders(&store)
        .execute_with(
            ConfirmOrder {
                order_id: "o-1".into(),
            },
            metadata,
        )
        .await
        .unwrap();
    let confirmed = &store.read_stream("Order-o-1", 2, 1).await.unwrap()[0];
    assert_eq!(confirmed.metadata.correlation_id, Some(command_id));
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let store = MemoryStore::new();
    let error = orders(&store)
        .execute(ConfirmOrder {
            order_id: "o-1".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        RepositoryError::Rejected(OrderError::NotPlaced)
    ));
    assert_eq!(
        factum::error::Report(&error).to_string(),
        "command rejected: no such order"
    );
    assert!(store.is_empty());
}

#[tokio::test]
async fn a_command_that_records_nothing_appends_nothing() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    orders.execute(place("o-1")).await.unwrap();
    let cancel = || CancelOrder {
        order_id: "o-1".into(),
        reason: "x".into(),
    };
    orders.execute(cancel()).await.unwrap();
    let again = orders.execute(cancel()).await.unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.version, 2);
    assert_eq!(store.len(), 2);
}

/// A store that lets another writer append right before each of the first `races`
/// appends, as a concurrent process would.
struct RacingStore {
    inner: MemoryStore,
    races: std::sync::atomic::AtomicU32,
}

impl RacingStore {
    /// The other writer's append, while races remain.
    async fn race(&self, stream_id: &str, stream_type: &str) -> Result<(), StoreError> {
        let remaining = self.races.load(std::sync::atomic::Ordering::SeqCst);
        if remaining > 0 {
            self.races
                .store(remaining - 1, std::sync::atomic::Ordering::SeqCst);
            let note = OrderEvent::NoteAdded(OrderNoteAdded {
                text: "racing".into(),
            })
            .encode()
            .unwrap();
            self.inner
                .append(
                    stream_id,
                    stream_type,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(
                        note.name,
                        note.schema_version,
                        note.payload,
                        Metadata::default(),
                    )],
                )
                .await?;
        }
        Ok(())
    }
}

impl EventStore for RacingStore {
    async fn append_command(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: factum::store::CommandRecord,
    ) -> Result<factum::store::CommandAppend, StoreError> {
        self.race(stream_id, stream_type).await?;
        self.inner
            .append_command(stream_id, stream_type, expected, events, command)
            .await
    }

    async fn command_outcome(
        &self,
        command_id: factum::uuid::Uuid,
    ) -> Result<Option<factum::store::CommandOutcome>, StoreError> {
        self.inner.command_outcome(command_id).await
    }

    async fn prune_commands(
        &self,
        recorded_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.prune_commands(recorded_before).await
    }

    async fn append(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<factum::store::AppendOutcome, StoreError> {
        self.race(stream_id, stream_type).await?;
        self.inner
            .append(stream_id, stream_type, expected, events)
            .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, from, limit).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }
    async fn save_snapshot(&self, snapshot: factum::envelope::Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn load_snapshot(
        &self,
        stream_id: &str,
    ) -> Result<Option<factum::envelope::Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_id).await
    }
}

async fn racing(races: u32) -> Repository<Order, RacingStore> {
    let inner = MemoryStore::new();
    orders(&inner).execute(place("o-1")).await.unwrap();
    Repository::with_services(
        RacingStore {
            inner,
            races: races.into(),
        },
        Catalog::new([("tea", 450)]),
    )
}

#[tokio::test]
async fn a_concurrent_write_is_a_typed_conflict_that_writes_nothing() {
    let orders = racing(1).await;
    let error = orders
        .execute(ConfirmOrder {
            order_id: "o-1".into(),
        })
        .await
        .unwrap_err();
    match &error {
        RepositoryError::Conflict {
            stream_id,
            expected,
            actual,
        } => {
            assert_eq!(stream_id, "Order-o-1");
            assert_eq!(*expected, ExpectedVersion::Exact(1));
            assert_eq!(*actual, Some(2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The racing note is stored; the confirmation is not.
    let names: Vec<String> = orders
        .store()
        .inner
        .read_all(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["OrderPlaced", "OrderNoteAdded"]);
}

#[tokio::test]
async fn a_retrying_execution_decides_again_on_fresh_state() {
    let orders = racing(2).await;
    let executed = orders
        .execute_retrying(
            ConfirmOrder {
                order_id: "o-1".into(),
            },
            CommandContext::new(),
            Retry::immediately(3),
        )
        .await
        .unwrap();
    assert_eq!(executed.version, 4);
    assert_eq!(executed.state.status, Status::Confirmed);
}

#[tokio::test]
async fn retries_are_bounded() {
    let orders = racing(5).await;
    let error = orders
        .execute_retrying(
            ConfirmOrder {
                order_id: "o-1".into(),
            },
            CommandContext::new(),
            Retry::immediately(3),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RepositoryError::RetriesExhausted { attempts: 3, stream_id } if stream_id == "Order-o-1"),
        "{error:?}"
    );
}

#[tokio::test]
async fn loading_reads_streams_longer_than_one_page_of_1024() {
    let store = MemoryStore::new();
    let orders = orders(&store);
    orders.execute(place("o-1")).await.unwrap();
    for _ in 0..1100 {
        orders
            .execute(AddNote {
                order_id: "o-1".into(),
                text: "n".into(),
            })
            .await
            .unwrap();
    }
    let loaded = orders.load("o-1").await.unwrap();
    assert_eq!(loaded.version, 1101);
    assert_eq!(loaded.state.status, Status::Open);
    assert_eq!(orders.load("o-2").await.unwrap().version, 0);
}
