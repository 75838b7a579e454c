//! The outbox: the global log published to Kafka topics behind a durable checkpoint.

use std::collections::BTreeSet;
use std::sync::Arc;
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
use crate::follow::{TaskContext, TaskHandle};
use crate::projection::{ReadModel, ReadModelTx, Target};
use crate::retry::Retry;
use crate::store::EventStore;

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
    store: Arc<S>,
    checkpoints: M,
    brokers: String,
    topic_prefix: String,
    partitions: i32,
    replication: i32,
    name: &'static str,
    batch_size: usize,
    ack_timeout: Duration,
    idle_wait: Duration,
    retry: Retry,
    settings: Vec<(String, String)>,
    cloudevents: CloudEvents,
    producer: Option<FutureProducer>,
    topics: BTreeSet<String>,
}

impl<S, M> std::fmt::Debug for KafkaPublisher<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a call of [`KafkaPublisher::publish_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Events the brokers acknowledged.
    pub published: u64,
    /// The checkpoint: every event up to this global position is in its topic.
    pub checkpoint: u64,
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
            store: Arc::new(store),
            checkpoints,
            brokers: brokers.into(),
            topic_prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
            partitions: 3,
            replication: 1,
            name: "kafka_publisher",
            batch_size: 500,
            ack_timeout: Duration::from_secs(10),
            idle_wait: Duration::from_secs(1),
            retry: Retry::new(u32::MAX, Duration::from_millis(100))
                .max_backoff(Duration::from_secs(5)),
            settings: Vec::new(),
            cloudevents: CloudEvents::new("urn:factum", "factum")
                .unwrap_or_else(|_| unreachable!("the default mapping is valid")),
            producer: None,
            topics: BTreeSet::new(),
        }
    }

    /// The topic prefix: events go to `<prefix>.<stream type>`.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topic_prefix = prefix.into();
        self
    }

    /// The partitions and replication factor of the topics the publisher creates (at
    /// least 1 each); topics that exist are left as they are.
    pub fn topics(mut self, partitions: i32, replication: i32) -> Self {
        self.partitions = partitions.max(1);
        self.replication = replication.max(1);
        self
    }

    /// The CloudEvents mapping of the `ce_` headers: the `source` and the domain the
    /// types are named in (`ce_type` = `<domain>.<stream type>.<event name>`).
    pub fn cloudevents(mut self, mapping: CloudEvents) -> Self {
        self.cloudevents = mapping;
        self
    }

    /// A librdkafka setting for the producer and the topic admin (security, TLS, SASL,
    /// ...: `security.protocol`, `sasl.mechanisms`, ...). Idempotence is always on.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// The name the checkpoint is kept under in the read model (1 to 40 ASCII letters,
    /// digits or underscores); one per publisher.
    pub fn checkpoint_name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Events read and published per batch (acknowledgements awaited together).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How long the brokers may take to acknowledge a record (librdkafka's
    /// `message.timeout.ms`, retries included).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long a caught-up spawned publisher waits for the store's wake-up before
    /// reading again anyway.
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// The wait after the first failure, doubled after each further one up to `max`.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry = Retry::new(u32::MAX, first).max_backoff(max.max(first));
        self
    }

    fn target(&self) -> Target {
        Target {
            name: self.name,
            version: 0,
        }
    }

    /// The committed checkpoint: every event up to this position is in its topic.
    pub async fn checkpoint(&self) -> Result<u64, KafkaBusError> {
        let checkpoint = self
            .checkpoints
            .checkpoint(self.target())
            .await
            .map_err(|source| KafkaBusError::Checkpoint {
                name: self.name,
                source,
            })?;
        Ok(checkpoint.unwrap_or(0))
    }

    async fn commit(&self, position: u64) -> Result<(), KafkaBusError> {
        let checkpoint_error = |source| KafkaBusError::Checkpoint {
            name: self.name,
            source,
        };
        let tx = self
            .checkpoints
            .begin(self.target())
            .await
            .map_err(checkpoint_error)?;
        let current = tx.checkpoint().unwrap_or(0);
        self.checkpoints
            .commit(tx, position.max(current))
            .await
            .map_err(checkpoint_error)
    }

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

    /// Publishes every event after the checkpoint, batch by batch, moving the checkpoint
    /// after each batch's acknowledgements, until the head of the log.
    ///
    /// On failure the checkpoint stays after the last event acknowledged with all
    /// before it, and the error names the first event not stored; calling again
    /// resumes there (republishing what was in flight: consumers skip the copies).
    pub async fn publish_pending(&mut self) -> Result<Published, KafkaBusError> {
        check_topic_prefix(&self.topic_prefix)?;
        let mut outcome = Published {
            checkpoint: self.checkpoint().await?,
            ..Published::default()
        };
        loop {
            let events = self
                .store
                .read_all(outcome.checkpoint, self.batch_size)
                .await
                .map_err(|source| KafkaBusError::Store {
                    publisher: self.name,
                    source,
                })?;
            if events.is_empty() {
                return Ok(outcome);
            }
            let full = events.len() == self.batch_size;
            self.ensure_topics(&events).await?;
            let producer = self.producer()?;
            let (acknowledged, failure) = self.publish_batch(&producer, &events).await;
            if acknowledged > 0 {
                let position = events[acknowledged - 1].position;
                self.commit(position).await?;
                outcome.checkpoint = position;
                outcome.published += acknowledged as u64;
            }
            if let Some(error) = failure {
                // A fresh producer (and topic check) next time: its state may be broken,
                // and the topics may be gone (a broker with a fresh store).
                self.producer = None;
                self.topics.clear();
                return Err(error);
            }
            if !full {
                return Ok(outcome);
            }
        }
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

    /// Runs the publisher in a task: publishes what is pending, then waits for the store
    /// to report new events; retries failures (brokers down, timeouts) with backoff until
    /// [`PublisherHandle::stop`]. Only a fatal error ([`KafkaBusError::is_fatal`]) ends it
    /// early.
    pub fn spawn(self) -> PublisherHandle {
        let task = TaskHandle::spawn(self.name, |context| self.follow(context));
        PublisherHandle { task }
    }

    async fn follow(mut self, context: TaskContext<KafkaBusError>) -> Result<(), KafkaBusError> {
        let TaskContext {
            mut stop,
            checkpoint: checkpoint_tx,
            status,
        } = context;
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            match self.publish_pending().await {
                Ok(published) => {
                    failures = 0;
                    checkpoint_tx.send_replace(Some(published.checkpoint));
                    tokio::select! {
                        waited = self.store.wait_for_events(published.checkpoint, self.idle_wait) => {
                            if let Err(error) = waited {
                                tracing::warn!(publisher = self.name, error = %crate::error::Report(&error), "waiting for events failed");
                                tokio::time::sleep(self.idle_wait).await;
                            }
                        }
                        _ = stop.changed() => {}
                    }
                }
                Err(error) if error.is_fatal() => return Err(error),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let wait = self.retry.backoff(failures);
                    tracing::warn!(
                        publisher = self.name, brokers = %self.brokers, error = %crate::error::Report(&error), failures,
                        retry_in_ms = wait.as_millis() as u64, "publishing to Kafka failed; retrying"
                    );
                    status.report_error(error);
                    if let Ok(checkpoint) = self.checkpoint().await {
                        checkpoint_tx.send_replace(Some(checkpoint));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
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

/// A running publisher.
pub struct PublisherHandle {
    task: TaskHandle<KafkaBusError>,
}

impl std::fmt::Debug for PublisherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherHandle")
            .field("name", &self.task.name())
            .field("checkpoint", &self.task.checkpoint())
            .finish_non_exhaustive()
    }
}

impl PublisherHandle {
    /// The checkpoint last reported (`None` before the first round).
    pub fn checkpoint(&self) -> Option<u64> {
        self.task.checkpoint()
    }

    /// The last failure it retried after, for diagnostics.
    pub fn last_error(&self) -> Option<Arc<KafkaBusError>> {
        self.task.last_error()
    }

    /// Waits until every event up to `position` is in its topic. Returns the task's error
    /// if it ended first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, KafkaBusError> {
        self.task.wait_for(position).await
    }

    /// Whether its task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it after the batch in hand and returns how it ended.
    pub async fn stop(self) -> Result<(), KafkaBusError> {
        self.task.stop().await
    }
}
