//! Publishing the log to the buses: factum's `KafkaPublisher` against the raw `rdkafka`
//! producer sending the same records, and factum's `NatsPublisher` against the raw
//! `async-nats` JetStream client publishing the same messages, in one criterion run.
//!
//! - `publish_kafka_1000`: 1,000 new events (10 order streams; appended before timing)
//!   published by a long-lived `KafkaPublisher` (`publish_pending`: reading them from the
//!   store, sending them with the idempotent producer in batches of 500, awaiting every
//!   acknowledgement, committing the checkpoint after each batch), against a long-lived
//!   raw idempotent `FutureProducer` (`acks=all`) sending the same 1,000 records (topic,
//!   key, value and headers as factum's, built before timing) and awaiting every delivery.
//! - `publish_nats_1000`: the same through a long-lived `NatsPublisher`, against the raw
//!   `async-nats` JetStream context publishing the same messages (subject, headers and
//!   body as factum's, built before timing) and awaiting every acknowledgement.
//!
//! - `end_to_end_kafka`: one event appended to the store until its row is in a
//!   projection's read model: through a spawned `KafkaPublisher` (woken by the append)
//!   and a spawned `KafkaConsumer` applying it to a SQLite read model, against the raw
//!   path: after the append, the same record produced with rdkafka, a raw consumer thread
//!   inserting the row into a SQLite table of its own. Both consumers fetch with
//!   `fetch.wait.max.ms=10`; the producers keep librdkafka's defaults.
//! - `end_to_end_nats`: the same through a spawned `NatsPublisher` and `NatsConsumer`,
//!   against a raw JetStream publish after the append and a raw pull consumer inserting
//!   the row.
//!
//! Steady state: the topics, the stream, the producers and the connections are made
//! once, before timing, as a service makes them. The end-to-end figures poll the row
//! every 50 µs, the same way on both sides.
//!
//! Before timing, the bench checks that the raw records are exactly what factum sent (read
//! back from the broker). Needs a broker and a server: `eval "$(scripts/kafka.sh start)"`
//! and `eval "$(scripts/nats.sh start)"`; run with `cargo bench -p factum-benches
//! --features bus --bench bus`. The figures are recorded in `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factum::bus::NatsPublisher;
use factum::bus::async_nats;
use factum::cloudevents::CloudEvents;
use factum::envelope::{Metadata, NewEvent, RecordedEvent};
use factum::kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use factum::kafka::rdkafka::client::DefaultClientContext;
use factum::kafka::rdkafka::config::ClientConfig;
use factum::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use factum::kafka::rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use factum::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use factum::kafka::{KafkaPublisher, topic_for};
use factum::projection::sqlite::SqliteReadModel;
use factum::store::{EventStore, ExpectedVersion, SqliteStore};
use serde_json::json;

/// Events published per iteration.
const EVENTS: usize = 1_000;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the bus bench needs a Kafka-protocol broker and a NATS server \
             (`eval \"$(scripts/kafka.sh start)\"`, `eval \"$(scripts/nats.sh start)\"`)"
        )
    })
}

/// A name no earlier iteration or run used.
fn fresh(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bench-{kind}-{}-{nanos}", std::process::id())
}

/// Appends 1,000 events: 100 `ItemAdded` to each of 10 order streams, with a command's
/// metadata.
async fn history(store: &SqliteStore) {
    for stream in 0..10 {
        let events: Vec<NewEvent> = (0..EVENTS / 10)
            .map(|n| {
                let payload = serde_json::value::to_raw_value(
                    &json!({"sku": format!("SKU-{:04}", n % 40), "quantity": 2, "unit_price": 1234}),
                )
                .expect("JSON");
                let metadata = Metadata {
                    actor: Some("support-agent-7".to_owned()),
                    correlation_id: Some(factum::uuid::Uuid::now_v7()),
                    ..Metadata::default()
                };
                NewEvent::new("ItemAdded", 2, payload, metadata)
            })
            .collect();
        store
            .append(
                &format!("order-{stream}"),
                "Order",
                ExpectedVersion::Any,
                events,
            )
            .await
            .expect("append");
    }
}

/// A record as factum's Kafka publisher makes it: value, headers (the `ce_` binding, the
/// position).
#[derive(Debug, PartialEq)]
struct KafkaRecord {
    key: String,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn kafka_records(events: &[RecordedEvent]) -> Vec<KafkaRecord> {
    let mapping = CloudEvents::default();
    events
        .iter()
        .map(|event| {
            let binary = mapping.to_binary(event).expect("a CloudEvent");
            let mut headers: Vec<(String, String)> = binary
                .headers
                .into_iter()
                .map(|(name, value)| match name.strip_prefix("ce-") {
                    Some(attribute) => (format!("ce_{attribute}"), value),
                    None => (name, value),
                })
                .collect();
            headers.push((
                factum::kafka::POSITION_HEADER.to_owned(),
                event.position.to_string(),
            ));
            KafkaRecord {
                key: event.stream_id.clone(),
                value: serde_json::to_vec(event).expect("JSON"),
                headers,
            }
        })
        .collect()
}

/// The raw side: every record through the long-lived idempotent producer, then every
/// delivery.
async fn raw_kafka(producer: &FutureProducer, topic: &str, records: &[KafkaRecord]) {
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let future = producer
            .send_result(
                FutureRecord::to(topic)
                    .key(&record.key)
                    .payload(&record.value)
                    .headers(headers),
            )
            .map_err(|(error, _)| error)
            .expect("queued");
        pending.push(future);
    }
    for delivery in pending {
        delivery.await.expect("delivered").expect("acknowledged");
    }
}

/// Every record of `topic`, sorted by position.
fn read_topic(brokers: &str, topic: &str, count: usize) -> Vec<KafkaRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", fresh("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "reading {topic}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("a record");
        let mut headers: Vec<(String, String)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        // factum adds the publish's trace context when there is one; none here.
        headers.retain(|(name, _)| name != "traceparent");
        records.push(KafkaRecord {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    records.sort_by_key(|record| {
        serde_json::from_slice::<RecordedEvent>(&record.value)
            .expect("an envelope")
            .position
    });
    records
}

/// A message as factum's NATS publisher makes it: subject, headers, body.
struct NatsMessage {
    subject: String,
    headers: async_nats::HeaderMap,
    body: Vec<u8>,
}

fn nats_messages(events: &[RecordedEvent], prefix: &str) -> Vec<NatsMessage> {
    let mut previous: Option<factum::uuid::Uuid> = None;
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            // The first of each of the publisher's batches (500) follows an acknowledged
            // event and says nothing of its predecessor.
            if index % 500 == 0 {
                previous = None;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
            headers.insert(
                factum::bus::POSITION_HEADER,
                event.position.to_string().as_str(),
            );
            headers.insert(factum::bus::STREAM_ID_HEADER, event.stream_id.as_str());
            if let Some(previous) = previous {
                headers.insert("Nats-Expected-Last-Msg-Id", previous.to_string().as_str());
            }
            previous = Some(event.event_id);
            NatsMessage {
                subject: factum::bus::subject_for(prefix, &event.stream_type, &event.name),
                headers,
                body: serde_json::to_vec(event).expect("JSON"),
            }
        })
        .collect()
}

/// The raw side: every message through the long-lived JetStream context, then every
/// acknowledgement.
async fn raw_nats(jetstream: &async_nats::jetstream::Context, messages: &[NatsMessage]) {
    let mut acks = Vec::with_capacity(messages.len());
    for message in messages {
        let ack = jetstream
            .publish_with_headers(
                message.subject.clone(),
                message.headers.clone(),
                message.body.clone().into(),
            )
            .await
            .expect("published");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("acknowledged");
    }
}

/// The time `iterations` runs of `run` took, each given what `prepare` made (untimed)
/// and followed by `check` of its result (untimed).
fn timed<P, R>(
    iterations: u64,
    mut prepare: impl FnMut() -> P,
    mut run: impl FnMut(P) -> R,
    mut check: impl FnMut(R),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let prepared = prepare();
        let started = Instant::now();
        let outcome = run(prepared);
        total += started.elapsed();
        check(outcome);
    }
    total
}

/// Appends 1,000 more events (untimed) and returns them as stored.
fn more(runtime: &tokio::runtime::Runtime, store: &SqliteStore) -> Vec<RecordedEvent> {
    runtime.block_on(async {
        let head = store
            .head()
            .await
            .expect("the head")
            .map_or(0, |head| head.position);
        history(store).await;
        store.read_all(head, EVENTS).await.expect("read back")
    })
}

fn publish(c: &mut Criterion) {
    let brokers = required("FACTUM_KAFKA_BROKERS");
    let url = required("FACTUM_NATS_URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a directory");
    let store = runtime
        .block_on(SqliteStore::open(dir.path().join("events.sqlite3")))
        .expect("open");
    let checkpoints = runtime
        .block_on(SqliteReadModel::open(dir.path().join("checkpoints")))
        .expect("checkpoints");

    // One long-lived publisher, producer and client each, as a service runs them; the
    // first 1,000 events make the topics and the stream and check the raw records.
    let prefix = fresh("bus");
    let raw_topic = format!("{prefix}-raw.Order");
    let name = prefix.replace('-', "_");
    let mut kafka = KafkaPublisher::new(store.clone(), checkpoints.clone(), brokers.as_str())
        .topic_prefix(&prefix);
    let mut nats = NatsPublisher::new(store.clone(), checkpoints.clone(), url.as_str())
        .stream(name.to_uppercase())
        .subject_prefix(&name)
        .checkpoint_name("nats_publisher");
    let raw_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("a producer");
    let (raw_jetstream, raw_prefix) = runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("an admin client");
        admin
            .create_topics(
                &[NewTopic::new(&raw_topic, 3, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create the topic");
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let jetstream = async_nats::jetstream::new(client);
        let raw_prefix = format!("{name}_raw");
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: raw_prefix.to_uppercase(),
                subjects: vec![format!("{raw_prefix}.>")],
                ..Default::default()
            })
            .await
            .expect("create the stream");
        (jetstream, raw_prefix)
    });
    let first = more(&runtime, &store);
    let records = kafka_records(&first);
    runtime.block_on(async {
        kafka.publish_pending().await.expect("publish to Kafka");
        nats.publish_pending().await.expect("publish to NATS");
        raw_kafka(&raw_producer, &raw_topic, &records).await;
    });
    let factum_sent = read_topic(&brokers, &topic_for(&prefix, "Order"), EVENTS);
    let raw_sent = read_topic(&brokers, &raw_topic, EVENTS);
    assert!(
        factum_sent == raw_sent,
        "the raw records differ from factum's"
    );
    assert!(
        factum_sent == records,
        "factum sent other records than the raw side's"
    );

    let mut group = c.benchmark_group("publish_kafka_1000");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("factum", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || more(&runtime, &store),
                |_| runtime.block_on(kafka.publish_pending()).expect("publish"),
                |published| assert_eq!(black_box(published.published), EVENTS as u64),
            )
        });
    });
    group.bench_function("raw_rdkafka", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || kafka_records(&more(&runtime, &store)),
                |records| {
                    runtime.block_on(raw_kafka(&raw_producer, &raw_topic, black_box(&records)))
                },
                drop,
            )
        });
    });
    group.finish();

    let mut group = c.benchmark_group("publish_nats_1000");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("factum", |b| {
        b.iter_custom(|iterations| {
            let nats = std::cell::RefCell::new(&mut nats);
            timed(
                iterations,
                || {
                    // The Kafka side's events too: the NATS publisher follows the same log.
                    let pending = runtime.block_on(nats.borrow_mut().publish_pending());
                    black_box(pending.expect("catch up"));
                    more(&runtime, &store);
                },
                |_| {
                    runtime
                        .block_on(nats.borrow_mut().publish_pending())
                        .expect("publish")
                },
                |published| assert_eq!(black_box(published.published), EVENTS as u64),
            )
        });
    });
    group.bench_function("raw_async_nats", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || nats_messages(&more(&runtime, &store), &raw_prefix),
                |messages| runtime.block_on(raw_nats(&raw_jetstream, black_box(&messages))),
                drop,
            )
        });
    });
    group.finish();
}

/// A projection writing one row per event: what the end-to-end benches wait for.
struct Rows;

impl factum::projection::Projection for Rows {
    const NAME: &'static str = "bench_rows";
    const VERSION: u32 = 1;
    const EVENTS: &'static [&'static str] = &["ItemAdded"];
    type Tx = factum::projection::sqlite::SqliteTx;

    async fn setup(
        &mut self,
        tx: &mut factum::projection::sqlite::SqliteTx,
    ) -> Result<(), factum::projection::ProjectionError> {
        tx.execute_batch("CREATE TABLE rows (position INTEGER PRIMARY KEY)")?;
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &RecordedEvent,
        tx: &mut factum::projection::sqlite::SqliteTx,
    ) -> Result<(), factum::projection::ProjectionError> {
        tx.execute(
            "INSERT INTO rows (position) VALUES (?1)",
            [event.position as i64],
        )?;
        Ok(())
    }
}

/// Waits until `file`'s `rows` table holds `position` (polling every 50 µs).
fn wait_for_row(file: &std::path::Path, position: u64) {
    let started = Instant::now();
    loop {
        let found =
            rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|connection| {
                    connection.query_row(
                        "SELECT count(*) FROM rows WHERE position = ?1",
                        [position as i64],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|count| count == 1);
        if found {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the row of position {position} never came"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// One more event, appended; its position.
async fn append_one(store: &SqliteStore) -> u64 {
    let payload = serde_json::value::to_raw_value(
        &json!({"sku": "SKU-0001", "quantity": 1, "unit_price": 1234}),
    )
    .expect("JSON");
    store
        .append(
            "order-e2e",
            "Order",
            ExpectedVersion::Any,
            vec![NewEvent::new("ItemAdded", 2, payload, Metadata::default())],
        )
        .await
        .expect("append")
        .last_position
}

/// A table of rows in a SQLite file of the raw side's own.
fn raw_rows(file: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(file).expect("the raw rows");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS rows (position INTEGER PRIMARY KEY)",
        )
        .expect("the rows table");
    connection
}

fn end_to_end(c: &mut Criterion) {
    use factum::bus::NatsConsumer;
    use factum::kafka::KafkaConsumer;
    use factum::projection::{Projector, Target};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let brokers = required("FACTUM_KAFKA_BROKERS");
    let url = required("FACTUM_NATS_URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a directory");
    let store = runtime
        .block_on(SqliteStore::open(dir.path().join("events.sqlite3")))
        .expect("open");
    let target = Target {
        name: "bench_rows",
        version: 1,
    };
    let stop = Arc::new(AtomicBool::new(false));

    // Kafka, factum: both spawned, following the log.
    let prefix = fresh("e2e");
    let kafka_models = runtime
        .block_on(SqliteReadModel::open(dir.path().join("kafka")))
        .expect("read models");
    let (kafka_publisher, kafka_consumer) = runtime.block_on(async {
        let publisher = KafkaPublisher::new(store.clone(), kafka_models.clone(), brokers.as_str())
            .topic_prefix(&prefix)
            .idle_wait(Duration::from_millis(100))
            .spawn();
        let consumer =
            KafkaConsumer::new(Projector::new(Rows, kafka_models.clone()), brokers.as_str())
                .topic_prefix(&prefix)
                .group(fresh("e2e-group"))
                .idle_wait(Duration::from_millis(100))
                .setting("fetch.wait.max.ms", "10")
                .spawn();
        (publisher, consumer)
    });
    let kafka_file = kafka_models.path_of(target);
    // The first event makes the topic and the projection's table.
    let first = runtime.block_on(append_one(&store));
    wait_for_row(&kafka_file, first);

    // Kafka, raw: a producer, and a consumer thread inserting rows.
    let raw_topic = format!("{prefix}-raw.Order");
    let raw_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("a producer");
    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("an admin client");
        admin
            .create_topics(
                &[NewTopic::new(&raw_topic, 3, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create the topic");
    });
    let raw_kafka_file = dir.path().join("raw-kafka.sqlite3");
    let raw_kafka_thread = {
        let (brokers, topic, file, stop) = (
            brokers.clone(),
            raw_topic.clone(),
            raw_kafka_file.clone(),
            Arc::clone(&stop),
        );
        let rows = raw_rows(&file);
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", fresh("raw-e2e"))
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "10")
                .create()
                .expect("a consumer");
            consumer.subscribe(&[&topic]).expect("subscribe");
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let position = message
                    .headers()
                    .and_then(|headers| {
                        headers
                            .iter()
                            .find(|header| header.key == factum::kafka::POSITION_HEADER)
                            .and_then(|header| header.value)
                            .and_then(|value| std::str::from_utf8(value).ok())
                            .and_then(|value| value.parse::<i64>().ok())
                    })
                    .expect("a position");
                rows.execute(
                    "INSERT OR IGNORE INTO rows (position) VALUES (?1)",
                    [position],
                )
                .expect("insert");
            }
        })
    };
    let raw_kafka_once = |position: u64| {
        let event = runtime
            .block_on(store.read_all(position - 1, 1))
            .expect("read back")
            .remove(0);
        let record = kafka_records(std::slice::from_ref(&event)).remove(0);
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        producer_send(&raw_producer, &raw_topic, &record, headers)
    };
    let warm = runtime.block_on(append_one(&store));
    let delivery = raw_kafka_once(warm);
    wait_for_row(&raw_kafka_file, warm);
    drop(delivery);

    let mut group = c.benchmark_group("end_to_end_kafka");
    group.bench_function("factum", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || (),
                |_| wait_for_row(&kafka_file, runtime.block_on(append_one(&store))),
                drop,
            )
        });
    });
    group.bench_function("raw_rdkafka", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || (),
                |_| {
                    let position = runtime.block_on(append_one(&store));
                    let delivery = raw_kafka_once(position);
                    wait_for_row(&raw_kafka_file, position);
                    delivery
                },
                drop,
            )
        });
    });
    group.finish();
    runtime.block_on(async {
        kafka_publisher.stop().await.expect("the publisher stops");
        kafka_consumer.stop().await.expect("the consumer stops");
    });

    // NATS, factum: both spawned, following the log.
    let name = fresh("e2e").replace('-', "_");
    let nats_models = runtime
        .block_on(SqliteReadModel::open(dir.path().join("nats")))
        .expect("read models");
    let (nats_publisher, nats_consumer) = runtime.block_on(async {
        let publisher = NatsPublisher::new(store.clone(), nats_models.clone(), url.as_str())
            .stream(name.to_uppercase())
            .subject_prefix(&name)
            .checkpoint_name("nats_publisher")
            .idle_wait(Duration::from_millis(100))
            .spawn();
        // The stream exists once the publisher published the log so far.
        let published = store
            .head()
            .await
            .expect("head")
            .map_or(0, |head| head.position);
        let mut publisher = publisher;
        publisher.wait_for(published).await.expect("published");
        let consumer = NatsConsumer::new(
            Projector::new(Rows, nats_models.clone()),
            url.as_str(),
            "bench_rows_bus",
        )
        .stream(name.to_uppercase())
        .idle_wait(Duration::from_millis(100))
        .spawn();
        (publisher, consumer)
    });
    let nats_file = nats_models.path_of(target);
    let first = runtime.block_on(append_one(&store));
    wait_for_row(&nats_file, first);

    // NATS, raw: a stream, a pull consumer task inserting rows.
    let raw_name = format!("{name}_raw");
    let raw_nats_file = dir.path().join("raw-nats.sqlite3");
    let rows = std::sync::Mutex::new(raw_rows(&raw_nats_file));
    let (jetstream, raw_task) = runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let jetstream = async_nats::jetstream::new(client);
        let stream = jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: raw_name.to_uppercase(),
                subjects: vec![format!("{raw_name}.>")],
                ..Default::default()
            })
            .await
            .expect("create the stream");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .expect("a consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let rows = Arc::new(rows);
        let task = tokio::spawn(async move {
            use futures_util::StreamExt as _;
            while let Some(Ok(message)) = messages.next().await {
                let position: i64 = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(factum::bus::POSITION_HEADER))
                    .and_then(|value| value.as_str().parse().ok())
                    .expect("a position");
                rows.lock()
                    .expect("the rows")
                    .execute(
                        "INSERT OR IGNORE INTO rows (position) VALUES (?1)",
                        [position],
                    )
                    .expect("insert");
                message.ack().await.expect("ack");
            }
        });
        (jetstream, task)
    });
    let raw_nats_once = |position: u64| {
        runtime.block_on(async {
            let event = store
                .read_all(position - 1, 1)
                .await
                .expect("read back")
                .remove(0);
            let message = nats_messages(std::slice::from_ref(&event), &raw_name).remove(0);
            jetstream
                .publish_with_headers(message.subject, message.headers, message.body.into())
                .await
                .expect("published")
                .await
                .expect("acknowledged");
        });
    };
    let warm = runtime.block_on(append_one(&store));
    raw_nats_once(warm);
    wait_for_row(&raw_nats_file, warm);

    let mut group = c.benchmark_group("end_to_end_nats");
    group.bench_function("factum", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || (),
                |_| wait_for_row(&nats_file, runtime.block_on(append_one(&store))),
                drop,
            )
        });
    });
    group.bench_function("raw_async_nats", |b| {
        b.iter_custom(|iterations| {
            timed(
                iterations,
                || (),
                |_| {
                    let position = runtime.block_on(append_one(&store));
                    raw_nats_once(position);
                    wait_for_row(&raw_nats_file, position);
                },
                drop,
            )
        });
    });
    group.finish();
    runtime.block_on(async {
        nats_publisher.stop().await.expect("the publisher stops");
        nats_consumer.stop().await.expect("the consumer stops");
    });
    raw_task.abort();
    stop.store(true, Ordering::Relaxed);
    raw_kafka_thread.join().expect("the raw consumer thread");
}

/// Sends `record` with `headers` to `topic`; the delivery, to await or drop.
fn producer_send(
    producer: &FutureProducer,
    topic: &str,
    record: &KafkaRecord,
    headers: OwnedHeaders,
) -> factum::kafka::rdkafka::producer::DeliveryFuture {
    producer
        .send_result(
            FutureRecord::to(topic)
                .key(&record.key)
                .payload(&record.value)
                .headers(headers),
        )
        .map_err(|(error, _)| error)
        .expect("queued")
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    targets = publish, end_to_end
}
criterion_main!(benches);
