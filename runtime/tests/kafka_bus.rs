//! The Kafka bus against a real Kafka-protocol broker (nisshi, started by
//! `scripts/kafka.sh`): the publisher's records read back with a plain consumer — one
//! topic per stream type, keyed by stream id, the envelope as the value, the CloudEvents
//! Kafka-binding headers and the position; a stream's events in order in one partition;
//! the checkpoint at the head, and a second run publishing only what is new.
//!
//! Run with `eval "$(scripts/kafka.sh start)" && cargo test -p factum --features
//! kafka,sqlite --test kafka_bus`.

mod kafka_common;

use std::collections::BTreeMap;

use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::kafka::{KafkaPublisher, topic_for};
use factum::projection::sqlite::SqliteReadModel;
use factum::store::{EventStore, ExpectedVersion, SqliteStore};
use kafka_common::{Record, brokers, read_back, unique};

/// `count` events on each of `streams` streams of two stream types, interleaved.
async fn history(store: &SqliteStore, streams: u64, count: u64, from: u64) {
    for n in from..from + count {
        for stream in 0..streams {
            let stream_type = if stream % 2 == 0 {
                "Order"
            } else {
                "Care Task"
            };
            let payload =
                serde_json::value::to_raw_value(&serde_json::json!({ "n": n, "stream": stream }))
                    .expect("JSON");
            let metadata = Metadata {
                actor: Some(format!("clerk-{stream}")),
                correlation_id: Some(uuid::Uuid::now_v7()),
                ..Metadata::default()
            };
            store
                .append(
                    &format!("{stream_type}-{stream}"),
                    stream_type,
                    if n == 1 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(n - 1)
                    },
                    vec![NewEvent::new("Counted", 1, payload, metadata)],
                )
                .await
                .expect("appends");
        }
    }
}

/// The records' events by global position, each checked against its record's topic,
/// key and headers.
fn events_of(records: &[Record], prefix: &str) -> BTreeMap<u64, RecordedEvent> {
    let mut events = BTreeMap::new();
    for record in records {
        let event: RecordedEvent = serde_json::from_slice(&record.value).expect("an envelope");
        assert_eq!(record.topic, topic_for(prefix, &event.stream_type));
        assert_eq!(record.key.as_deref(), Some(event.stream_id.as_str()));
        let header = |name: &str| record.headers.get(name).map(String::as_str);
        assert_eq!(header("ce_id"), Some(event.event_id.to_string().as_str()));
        assert_eq!(header("ce_specversion"), Some("1.0"));
        assert_eq!(header("ce_source"), Some("urn:factum"));
        assert_eq!(
            header("ce_type"),
            Some(format!("factum.{}.{}", event.stream_type, event.name).as_str())
        );
        assert_eq!(header("ce_subject"), Some(event.stream_id.as_str()));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(
            header("factum_position"),
            Some(event.position.to_string().as_str())
        );
        assert!(
            events.insert(event.position, event).is_none(),
            "a record twice: {record:?}"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_published_to_a_topic_per_stream_type_keyed_by_stream() {
    let dir = tempfile::tempdir().expect("a directory");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("opens");
    let read_models = SqliteReadModel::open(dir.path().join("read"))
        .await
        .expect("opens");
    history(&store, 6, 5, 1).await;
    let prefix = unique("publish");
    let mut publisher = KafkaPublisher::new(store.clone(), read_models.clone(), brokers())
        .topic_prefix(&prefix)
        .batch_size(7);
    let published = publisher.publish_pending().await.expect("publishes");
    assert_eq!((published.published, published.checkpoint), (30, 30));
    assert_eq!(publisher.checkpoint().await.expect("reads"), 30);

    let orders = topic_for(&prefix, "Order");
    let tasks = topic_for(&prefix, "Care Task");
    assert_eq!(tasks, format!("{prefix}.Care_Task"));
    let records = read_back(&[&orders, &tasks], 30);
    let events = events_of(&records, &prefix);
    assert_eq!(
        events.into_values().collect::<Vec<_>>(),
        store.read_all(0, 100).await.expect("reads")
    );
    // Each stream in one partition, in order.
    let mut streams: BTreeMap<String, Vec<(i32, i64, u64)>> = BTreeMap::new();
    for record in &records {
        let event: RecordedEvent = serde_json::from_slice(&record.value).expect("an envelope");
        streams.entry(event.stream_id).or_default().push((
            record.partition,
            record.offset,
            event.stream_version,
        ));
    }
    for (stream, mut placed) in streams {
        placed.sort();
        assert!(
            placed.windows(2).all(|pair| pair[0].0 == pair[1].0),
            "{stream} in one partition: {placed:?}"
        );
        let versions: Vec<u64> = placed.iter().map(|(_, _, version)| *version).collect();
        assert_eq!(versions, [1, 2, 3, 4, 5], "{stream} in order");
    }

    // Later events: only they are published, on the next run.
    history(&store, 6, 2, 6).await;
    let mut publisher =
        KafkaPublisher::new(store.clone(), read_models, brokers()).topic_prefix(&prefix);
    let published = publisher.publish_pending().await.expect("publishes");
    assert_eq!((published.published, published.checkpoint), (12, 42));
    let records = read_back(&[&orders, &tasks], 42);
    assert_eq!(events_of(&records, &prefix).len(), 42);
}
