//! The outbox: the global log published to Kafka topics behind a durable checkpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::Instrument as _;

use crate::cloudevents::CloudEvents;
use crate::envelope::RecordedEvent;
use crate::outbox::{Outbox, Published, Sent, Transport};
use crate::projection::{ReadModel, ReadModelError};
use crate::store::{EventStore, StoreError};

use super::error::KafkaBusError;
use super::{DEFAULT_TOPIC_PREFIX, POSITION_HEADER, check_topic_prefix, topic_for};

/// Publishes every committed event of a store to Kafka, in position order: one topic per
/// stream type (`<prefix>.<stream type>`), the stream id as the record key (so a stream's
/// events stay in one partition, in order), the envelope as JSON as the value, the
/// CloudEvents Kafka-binding attributes (`ce_id`, `ce_type`, `ce_source`,
/// `ce_specversion`, ...) and the global position (`factum_position`) as headers. Its
/// checkpoint is kept in a read model and moves only past events the brokers
/// acknowledged.
///
/// ```text
/// let publisher = KafkaPublisher::new(store.clone(), read_models.clone(), "broker-1:9092,broker-2:9092")
///     .topic_prefix("domain-events");
/// let handle = publisher.spawn();          // follows the log until handle.stop()
/// ```
///
/// See the [module docs](super) for the guarantees.
pub struct KafkaPublisher<S, M> {
    outbox: Outbox<S, M>,
    transport: KafkaTransport,
}

/// What carries the batches to the brokers: the producer, the topics, the mapping.
struct KafkaTransport {
    brokers: String,
    name: &'static str,
    topic_prefix: String,
    partitions: i32,
    replication: i32,
    ack_timeout: Duration,
    settings: Vec<(String, String)>,
    cloudevents: CloudEvents,
    producer: Option<FutureProducer>,
    topics: BTreeSet<String>,
}

impl<S, M> std::fmt::Debug for KafkaPublisher<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("brokers", &self.transport.brokers)
            .field("topic_prefix", &self.transport.topic_prefix)
            .field("name", &self.outbox.name)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + 'static, M: ReadModel> KafkaPublisher<S, M> {
    /// A publisher of `store`'s log to the Kafka brokers `brokers` (`host:port`,
    /// comma-separated), its checkpoint kept in `checkpoints` under the name
    /// `kafka_publisher`.
    ///
    /// Defaults: topics `domain-events.<stream type>` created with 3 partitions and
    /// replication factor 1 when missing, CloudEvents source `urn:factum` in domain
    /// `factum`, batches of 500 events, 10 s to acknowledge, retries from 100 ms doubling
    /// to 5 s.
    pub fn new(store: S, checkpoints: M, brokers: impl Into<String>) -> Self {
        Self {
            outbox: Outbox::new(store, checkpoints, "kafka_publisher"),
            transport: KafkaTransport {
                brokers: brokers.into(),
                name: "kafka_publisher",
                topic_prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
                partitions: 3,
                replication: 1,
                ack_timeout: Duration::from_secs(10),
                settings: Vec::new(),
                cloudevents: CloudEvents::default(),
                producer: None,
                topics: BTreeSet::new(),
            },
        }
    }

    /// The topic prefix: events go to `<prefix>.<stream type>`.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.transport.topic_prefix = prefix.into();
        self
    }

    /// The partitions and replication factor of the topics the publisher creates (at
    /// least 1 each); topics that exist are left as they are.
    pub fn topics(mut self, partitions: i32, replication: i32) -> Self {
        self.transport.partitions = partitions.max(1);
        self.transport.replication = replication.max(1);
        self
    }

    /// The CloudEvents mapping of the `ce_` headers: the `source` and the domain the
    /// types are named in (`ce_type` = `<domain>.<stream type>.<event name>`).
    pub fn cloudevents(mut self, mapping: CloudEvents) -> Self {
        self.transport.cloudevents = mapping;
        self
    }

    /// A librdkafka setting for the producer and the topic admin (security, TLS, SASL,
    /// ...: `security.protocol`, `sasl.mechanisms`, ...). Idempotence is always on.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.transport.settings.push((key.into(), value.into()));
        self
    }

    /// How long the brokers may take to acknowledge a record (librdkafka's
    /// `message.timeout.ms`, retries included).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.transport.ack_timeout = timeout;
        self
    }

    crate::outbox::outbox_settings!();

    /// The committed checkpoint: every event up to this position is in its topic.
    pub async fn checkpoint(&self) -> Result<u64, KafkaBusError> {
        self.outbox.checkpoint::<KafkaTransport>().await
    }

    /// Publishes every event after the checkpoint, batch by batch, moving the checkpoint
    /// after each batch's acknowledgements, until the head of the log.
    ///
    /// On failure the checkpoint stays after the last event acknowledged with all
    /// before it, and the error names the first event not stored; calling again
    /// resumes there (republishing what was in flight: consumers skip the copies).
    pub async fn publish_pending(&mut self) -> Result<Published, KafkaBusError> {
        check_topic_prefix(&self.transport.topic_prefix)?;
        self.outbox.publish_pending(&mut self.transport).await
    }

    /// Runs the publisher in a task: publishes what is pending, then waits for the store
    /// to report new events; retries failures (brokers down, timeouts) with backoff until
    /// [`PublisherHandle::stop`](super::PublisherHandle::stop). Only a fatal error ([`KafkaBusError::is_fatal`]) ends it
    /// early.
    pub fn spawn(self) -> super::PublisherHandle
    where
        S: Send + Sync,
    {
        self.outbox.spawn(self.transport)
    }
}

impl Transport for KafkaTransport {
    type Error = KafkaBusError;

    async fn send(&mut self, events: &[RecordedEvent]) -> Sent<KafkaBusError> {
        let failed = |error| Sent {
            acknowledged: 0,
            duplicates: 0,
            failure: Some(error),
        };
        if let Err(error) = check_topic_prefix(&self.topic_prefix) {
            return failed(error);
        }
        if let Err(error) = self.ensure_topics(events).await {
            return failed(error);
        }
        let producer = match self.producer() {
            Ok(producer) => producer,
            Err(error) => return failed(error),
        };
        let (acknowledged, failure) = self.publish_batch(&producer, events).await;
        Sent {
            acknowledged,
            duplicates: 0,
            failure,
        }
    }

    fn reset(&mut self) {
        // A fresh producer and topic check next time: its idempotence state may be
        // broken, and the topics may be gone (a broker with a fresh store).
        self.producer = None;
        self.topics.clear();
    }

    fn checkpoint_error(name: &'static str, source: ReadModelError) -> KafkaBusError {
        KafkaBusError::Checkpoint { name, source }
    }

    fn store_error(name: &'static str, source: StoreError) -> KafkaBusError {
        KafkaBusError::Store {
            publisher: name,
            source,
        }
    }

    fn destination(&self) -> String {
        format!("Kafka at {}", self.brokers)
    }
}

impl KafkaTransport {
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("factum publisher {}", self.name));
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }

    /// The idempotent producer, made on first use and after a failure (a producer whose
    /// idempotence state failed must not be used again).
    fn producer(&mut self) -> Result<FutureProducer, KafkaBusError> {
        if let Some(producer) = &self.producer {
            return Ok(producer.clone());
        }
        let timeout = self.ack_timeout.as_millis().clamp(1, i32::MAX as u128);
        let producer: FutureProducer = self
            .config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", timeout.to_string())
            .create()
            .map_err(|source| KafkaBusError::Client {
                brokers: self.brokers.clone(),
                what: "cannot make the producer",
                source: Box::new(source),
            })?;
        self.producer = Some(producer.clone());
        Ok(producer)
    }

    /// Creates the topics of `events` that this publisher has not seen yet (an existing
    /// topic is left as it is).
    async fn ensure_topics(&mut self, events: &[RecordedEvent]) -> Result<(), KafkaBusError> {
        let missing: BTreeSet<String> = events
            .iter()
            .map(|event| topic_for(&self.topic_prefix, &event.stream_type))
            .filter(|topic| !self.topics.contains(topic))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> =
            self.config()
                .create()
                .map_err(|source| KafkaBusError::Client {
                    brokers: self.brokers.clone(),
                    what: "cannot make the topic admin",
                    source: Box::new(source),
                })?;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|topic| {
                NewTopic::new(
                    topic,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.ack_timeout));
        let results = admin
            .create_topics(&new, &options)
            .await
            .map_err(|source| KafkaBusError::Topic {
                topic: missing.iter().cloned().collect::<Vec<_>>().join(", "),
                operation: "create",
                source: Box::new(source),
            })?;
        for result in results {
            match result {
                Ok(topic) => {
                    self.topics.insert(topic);
                }
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    self.topics.insert(topic);
                }
                Err((topic, code)) => {
                    return Err(KafkaBusError::Topic {
                        topic,
                        operation: "create",
                        source: Box::new(KafkaError::AdminOp(code)),
                    });
                }
            }
        }
        Ok(())
    }

    /// Sends every event of the batch, then awaits the acknowledgements in order: how
    /// many were acknowledged from the first on without a gap, and the first failure.
    async fn publish_batch(
        &self,
        producer: &FutureProducer,
        events: &[RecordedEvent],
    ) -> (usize, Option<KafkaBusError>) {
        let mut pending = Vec::with_capacity(events.len());
        let mut failure = None;
        for event in events {
            let topic = topic_for(&self.topic_prefix, &event.stream_type);
            let (value, headers) = match self.record_of(event) {
                Ok(record) => record,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            let span = crate::trace::publish_span("kafka", &topic, event);
            // The publish span's context, or the event's: the consumer continues it.
            let traceparent =
                span.in_scope(|| crate::trace::to_record(event.metadata.traceparent.as_deref()));
            let headers = match traceparent {
                Some(traceparent) => headers.insert(Header {
                    key: crate::trace::TRACEPARENT,
                    value: Some(traceparent.as_bytes()),
                }),
                None => headers,
            };
            let record = FutureRecord::to(&topic)
                .key(event.stream_id.as_str())
                .payload(value.as_slice())
                .headers(headers);
            let _entered = span.enter();
            match producer.send_result(record) {
                Ok(delivery) => pending.push((event, topic.clone(), delivery)),
                Err((source, _)) => {
                    failure = Some(publish_error(event, topic, source));
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for (event, topic, delivery) in pending {
            let span = tracing::debug_span!("acknowledged", position = event.position);
            match delivery.instrument(span).await {
                Ok(Ok(_)) => acknowledged += 1,
                Ok(Err((source, _))) => {
                    failure = Some(publish_error(event, topic, source));
                    break;
                }
                Err(_canceled) => {
                    failure = Some(publish_error(event, topic, KafkaError::Canceled));
                    break;
                }
            }
        }
        (acknowledged, failure)
    }

    /// The value (the envelope as JSON) and headers (the CloudEvents Kafka binding's
    /// `ce_` attributes, `content-type`, `factum_position`) of `event`'s record.
    fn record_of(&self, event: &RecordedEvent) -> Result<(Vec<u8>, OwnedHeaders), KafkaBusError> {
        let encode = |source: crate::error::BoxError| KafkaBusError::Encode {
            position: event.position,
            event_id: event.event_id,
            source,
        };
        let value = serde_json::to_vec(event).map_err(|error| encode(Box::new(error)))?;
        let binary = self
            .cloudevents
            .to_binary(event)
            .map_err(|error| encode(Box::new(error)))?;
        let mut headers = OwnedHeaders::new_with_capacity(binary.headers.len() + 1);
        for (name, value) in &binary.headers {
            // The Kafka binding names attributes `ce_<name>`; `content-type` stays.
            let name = match name.strip_prefix("ce-") {
                Some(attribute) => format!("ce_{attribute}"),
                None => name.clone(),
            };
            headers = headers.insert(Header {
                key: &name,
                value: Some(value.as_bytes()),
            });
        }
        let position = event.position.to_string();
        headers = headers.insert(Header {
            key: POSITION_HEADER,
            value: Some(position.as_bytes()),
        });
        Ok((value, headers))
    }
}

fn publish_error(event: &RecordedEvent, topic: String, source: KafkaError) -> KafkaBusError {
    KafkaBusError::Publish {
        topic,
        position: event.position,
        event_id: event.event_id,
        source: Box::new(source),
    }
}
