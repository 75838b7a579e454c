//! A consumer-group member that feeds a projection from Kafka topics, its offsets kept in
//! the projection's read model.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::envelope::RecordedEvent;
use crate::follow::{TaskContext, TaskHandle};
use crate::projection::{
    PartitionedRecord, Projection, Projector, ReadModel, ReadModelOf, RunnerError, Target,
};
use crate::retry::Retry;

use super::error::KafkaBusError;
use super::{DEFAULT_TOPIC_PREFIX, check_topic_prefix};

/// Feeds a [`Projector`] from the topics a [`KafkaPublisher`](super::KafkaPublisher)
/// writes, as one member of a Kafka consumer group: start the same consumer in N
/// processes and the group splits the topics' partitions between them.
///
/// ```text
/// let projector = Projector::new(OrderSummary::default(), read_models.clone());
/// let consumer = KafkaConsumer::new(projector, "broker-1:9092,broker-2:9092");
/// let handle = consumer.spawn();   // consumes until handle.stop()
/// ```
///
/// Exactly-once in effect, without Kafka transactions: each partition's offset and the
/// position of the last event applied from it are kept in the projection's read model
/// ([`PartitionOffset`](crate::projection::PartitionOffset)) and committed in the same
/// transaction as the rows its records produced (never auto-committed); when the group
/// assigns a partition, reading starts at the offset the read model holds. An event at
/// or before its partition's position is skipped under the version's write lock: a
/// redelivery, one the member that had the partition before applied, or a copy the
/// publisher sent again after a restart. A record that is not a factum event is reported
/// ([`KafkaBusError::Foreign`], with its topic, partition and offset) and stepped over,
/// never blocking its partition. The offsets are also committed to Kafka afterwards, for
/// lag tools only; they are never read back. A read model reset under a running member
/// is noticed at its next batch: it rejoins the group and reads from the start.
///
/// Ordered: each stream's events (one partition, as the publisher keys records by stream
/// id). Not ordered: events of different streams, which may sit in partitions that
/// different members read at different speeds — a projection fed this way must not
/// depend on the order of events across streams. Do not add partitions to a topic in
/// use: a stream's later events would land in another partition.
///
/// The projection version becomes the one readers see once every partition of its
/// topics has been read to its end ([`KafkaConsumer::lag`] at zero). The version's global
/// checkpoint is not moved: feed a projection version either from the store
/// ([`ProjectionRunner`](crate::projection::ProjectionRunner)) or from Kafka, not both.
/// Building a version from Kafka needs topics that keep every event (no retention
/// limit); otherwise build it from the store.
pub struct KafkaConsumer<P: Projection> {
    projector: Projector<P>,
    brokers: String,
    group: String,
    topics: Topics,
    settings: Vec<(String, String)>,
    batch_size: usize,
    idle_wait: Duration,
    retry: Retry,
    consumer: Option<Arc<GroupConsumer<P>>>,
    /// A poll still running on a blocking thread (its round was cancelled by a stop):
    /// leaving waits for it, so the consumer closes while the brokers are still there.
    polling: Option<tokio::task::JoinHandle<Polled>>,
    activated: bool,
}

/// What one poll on the blocking thread read.
type Polled = Result<Vec<OwnedMessage>, KafkaError>;

/// What the consumer subscribes to.
#[derive(Debug, Clone)]
enum Topics {
    /// Every topic `<prefix>.*`, those created later included.
    Prefix(String),
    /// These topics.
    Named(Vec<String>),
}

type GroupConsumer<P> = BaseConsumer<Rebalancer<ReadModelOf<P>>>;

/// What a call of [`KafkaConsumer::consume_available`] did.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Records read from the topics.
    pub records: u64,
    /// Events the projection applied.
    pub applied: u64,
    /// Events parked after their handler kept failing.
    pub parked: u64,
    /// Records skipped: below their partition's stored offset, or events at or before
    /// the position last applied from their partition.
    pub skipped: u64,
    /// Records that were not factum events ([`KafkaBusError::Foreign`]); stepped over.
    pub foreign: Vec<KafkaBusError>,
}

/// How far a projection fed from Kafka is behind one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset the read model holds (0 when it holds none).
    pub next_offset: i64,
    /// The partition's high watermark: the offset its next record will get.
    pub high_watermark: i64,
}

impl PartitionLag {
    /// Records in the partition the projection has not read yet.
    pub fn records(&self) -> u64 {
        u64::try_from(self.high_watermark - self.next_offset).unwrap_or(0)
    }
}

impl<P: Projection> std::fmt::Debug for KafkaConsumer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("projection", &P::NAME)
            .field("brokers", &self.brokers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// Sets each assigned partition's start to the offset the read model holds: the offsets
/// committed to Kafka are never trusted, since a reset or restored read model must be
/// read into from where it stands.
struct Rebalancer<M> {
    read_model: M,
    target: Target,
    runtime: tokio::runtime::Handle,
}

impl<M: ReadModel> ClientContext for Rebalancer<M> {}

impl<M: ReadModel> ConsumerContext for Rebalancer<M> {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_at_stored_offsets(partitions);
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(projection = self.target.name, error = ?other, "rebalance failed; giving the partitions up");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::warn!(projection = self.target.name, %error, "applying a rebalance failed");
        }
    }
}

impl<M: ReadModel> Rebalancer<M> {
    /// Runs on the thread polling the consumer (a blocking thread, never the runtime's).
    fn start_at_stored_offsets(&self, partitions: &mut TopicPartitionList) {
        let stored = self
            .runtime
            .block_on(self.read_model.partition_offsets(self.target));
        let stored: BTreeMap<(String, i32), i64> = match stored {
            Ok(stored) => stored
                .into_iter()
                .map(|offset| ((offset.topic, offset.partition), offset.next_offset))
                .collect(),
            Err(error) => {
                // Reading from the start is always safe: what the read model holds is
                // skipped under its lock.
                tracing::warn!(
                    projection = self.target.name, error = %crate::error::Report(&error),
                    "reading the stored offsets failed; reading the assigned partitions from their start"
                );
                BTreeMap::new()
            }
        };
        let assigned: Vec<(String, i32)> = partitions
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        for key in assigned {
            let start = stored
                .get(&key)
                .map_or(Offset::Beginning, |next| Offset::Offset(*next));
            tracing::debug!(projection = self.target.name, topic = %key.0, partition = key.1, ?start, "assigned");
            if let Err(error) = partitions.set_partition_offset(&key.0, key.1, start) {
                tracing::warn!(projection = self.target.name, %error, "setting a start offset failed");
            }
        }
    }
}

impl<P: Projection> KafkaConsumer<P> {
    /// A member of the consumer group `factum.<projection>.v<version>` on the Kafka
    /// brokers `brokers` (`host:port`, comma-separated), feeding `projector`.
    ///
    /// Defaults: every topic `domain-events.*` (new ones found within 5 s), batches of
    /// 500 records (one read-model transaction), waits of up to 1 s for new records,
    /// retries from 100 ms doubling to 5 s.
    pub fn new(projector: Projector<P>, brokers: impl Into<String>) -> Self {
        Self {
            projector,
            brokers: brokers.into(),
            group: format!("factum.{}.v{}", P::NAME, P::VERSION),
            topics: Topics::Prefix(DEFAULT_TOPIC_PREFIX.to_owned()),
            settings: Vec::new(),
            batch_size: 500,
            idle_wait: Duration::from_secs(1),
            retry: Retry::new(u32::MAX, Duration::from_millis(100))
                .max_backoff(Duration::from_secs(5)),
            consumer: None,
            polling: None,
            activated: false,
        }
    }

    /// The consumer group: the members feeding one projection version share it.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Reads every topic `<prefix>.*`, as a publisher with that prefix writes them.
    pub fn topic_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.topics = Topics::Prefix(prefix.into());
        self
    }

    /// Reads only these topics (e.g. `domain-events.Order`).
    pub fn topics<T: Into<String>>(mut self, topics: impl IntoIterator<Item = T>) -> Self {
        self.topics = Topics::Named(topics.into_iter().map(Into::into).collect());
        self
    }

    /// A librdkafka consumer setting (`session.timeout.ms`, `security.protocol`,
    /// `sasl.*`, ...). Automatic commits stay off whatever is set.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// Records applied per batch (one read-model transaction).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How long a caught-up consumer waits for a new record before looking again.
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// The wait after the first failure, doubled after each further one up to `max`.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry = Retry::new(u32::MAX, first).max_backoff(max.max(first));
        self
    }

    /// The projector.
    pub fn projector(&self) -> &Projector<P> {
        &self.projector
    }

    /// The projection version it feeds.
    fn target(&self) -> Target {
        self.projector.target()
    }

    fn check_names(&self) -> Result<(), KafkaBusError> {
        match &self.topics {
            Topics::Prefix(prefix) => check_topic_prefix(prefix),
            Topics::Named(topics) if topics.is_empty() => Err(KafkaBusError::InvalidName {
                what: "topic list",
                name: String::new(),
                reason: "name at least one topic".to_owned(),
            }),
            Topics::Named(_) => Ok(()),
        }?;
        if self.group.is_empty() {
            return Err(KafkaBusError::InvalidName {
                what: "consumer group",
                name: String::new(),
                reason: "a group id cannot be empty".to_owned(),
            });
        }
        Ok(())
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("factum consumer {}", P::NAME))
            .set("topic.metadata.refresh.interval.ms", "5000");
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }

    fn client_error(&self, what: &'static str) -> impl FnOnce(KafkaError) -> KafkaBusError {
        let brokers = self.brokers.clone();
        move |source| KafkaBusError::Client {
            brokers,
            what,
            source: Box::new(source),
        }
    }

    /// The group member, made and subscribed on first use and after a failure.
    fn consumer(&mut self) -> Result<Arc<GroupConsumer<P>>, KafkaBusError> {
        if let Some(consumer) = &self.consumer {
            return Ok(Arc::clone(consumer));
        }
        self.check_names()?;
        let context = Rebalancer {
            read_model: self.projector.read_model().clone(),
            target: self.target(),
            runtime: tokio::runtime::Handle::current(),
        };
        let consumer: GroupConsumer<P> = self
            .config()
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(context)
            .map_err(self.client_error("cannot make the consumer"))?;
        let subscription = match &self.topics {
            // librdkafka reads a name starting with `^` as a regular expression.
            Topics::Prefix(prefix) => vec![format!("^{}\\..*", prefix.replace('.', "\\."))],
            Topics::Named(topics) => topics.clone(),
        };
        let names: Vec<&str> = subscription.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(self.client_error("cannot subscribe"))?;
        let consumer = Arc::new(consumer);
        self.consumer = Some(Arc::clone(&consumer));
        Ok(consumer)
    }

    /// Leaves the group (its partitions go to the other members), off the runtime's
    /// threads: closing waits for the group coordinator.
    async fn leave(&mut self) {
        if let Some(polling) = self.polling.take() {
            let _ = polling.await;
        }
        if let Some(consumer) = self.consumer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        }
    }

    /// Polls up to one batch, waiting up to `wait` for the first record.
    async fn poll(&mut self, wait: Duration) -> Result<Vec<OwnedMessage>, KafkaBusError> {
        let consumer = self.consumer()?;
        let batch_size = self.batch_size;
        let polling = self.polling.insert(tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + wait;
            let mut messages = Vec::new();
            while messages.len() < batch_size {
                let timeout = if messages.is_empty() {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO
                };
                match consumer.poll(timeout) {
                    Some(Ok(message)) => messages.push(message.detach()),
                    Some(Err(error)) if messages.is_empty() => return Err(error),
                    Some(Err(_)) | None => break,
                }
            }
            Ok(messages)
        }));
        // Kept in `self.polling` until it ends: a stop may cancel this round here.
        let polled = polling.await;
        self.polling = None;
        let polled = polled.map_err(|error| KafkaBusError::Task {
            name: P::NAME,
            source: crate::error::TaskFailure::Join(error),
        })?;
        polled.map_err(|source| KafkaBusError::Consume {
            projection: P::NAME,
            operation: "poll",
            source: Box::new(source),
        })
    }

    /// Decodes the records: factum events, or foreign records reported in `outcome`.
    fn decode(&self, messages: &[OwnedMessage], outcome: &mut Consumed) -> Vec<PartitionedRecord> {
        let mut records = Vec::with_capacity(messages.len());
        for message in messages {
            outcome.records += 1;
            let event = match decode(message) {
                Ok(mut event) => {
                    let header = header(message, crate::trace::TRACEPARENT);
                    let span = crate::trace::receive_span(
                        "kafka",
                        "poll",
                        message.topic(),
                        &self.group,
                        header.as_deref(),
                        &event,
                    );
                    if let Some(traceparent) =
                        span.in_scope(|| crate::trace::to_record(header.as_deref()))
                    {
                        event.metadata.traceparent = Some(traceparent);
                    }
                    Some(event)
                }
                Err(source) => {
                    let error = KafkaBusError::Foreign {
                        topic: message.topic().to_owned(),
                        partition: message.partition(),
                        offset: message.offset(),
                        source,
                    };
                    tracing::error!(projection = P::NAME, error = %crate::error::Report(&error), "stepping over a record that is not a factum event");
                    outcome.foreign.push(error);
                    None
                }
            };
            records.push(PartitionedRecord {
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                event,
            });
        }
        records
    }

    /// One round: poll, apply in one call, tell Kafka the offsets (for lag tools).
    /// Returns the records read.
    async fn round(
        &mut self,
        wait: Duration,
        outcome: &mut Consumed,
    ) -> Result<usize, KafkaBusError> {
        let messages = self.poll(wait).await?;
        if messages.is_empty() {
            return Ok(0);
        }
        let records = self.decode(&messages, outcome);
        let applied = match self.projector.apply_partitioned(&records).await {
            Ok(applied) => applied,
            Err(source) => {
                // What was polled is not applied: leave the group, and rejoin reading
                // from the offsets the read model holds (which a reset emptied: then the
                // version is made active again once read to the end).
                self.leave().await;
                self.activated = false;
                return Err(KafkaBusError::Projection {
                    projection: P::NAME,
                    source: Box::new(source),
                });
            }
        };
        outcome.applied += applied.applied;
        outcome.parked += applied.parked;
        outcome.skipped += applied.skipped;
        self.commit_hint(&records);
        Ok(messages.len())
    }

    /// Commits the read offsets to Kafka, asynchronously: for lag tools only.
    fn commit_hint(&self, records: &[PartitionedRecord]) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for record in records {
            let entry = next
                .entry((record.topic.as_str(), record.partition))
                .or_default();
            *entry = (*entry).max(record.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
        }
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(projection = P::NAME, %error, "committing offsets to Kafka (for lag tools) failed");
        }
    }

    /// How far the read model is behind each partition of the topics, from the offsets
    /// it holds and the brokers' high watermarks.
    pub async fn lag(&mut self) -> Result<Vec<PartitionLag>, KafkaBusError> {
        self.check_names()?;
        let stored = self
            .projector
            .read_model()
            .partition_offsets(self.target())
            .await
            .map_err(|source| KafkaBusError::Projection {
                projection: P::NAME,
                source: Box::new(RunnerError::ReadModel {
                    projection: P::NAME,
                    source,
                }),
            })?;
        let stored: BTreeMap<(String, i32), i64> = stored
            .into_iter()
            .map(|offset| ((offset.topic, offset.partition), offset.next_offset))
            .collect();
        let config = self.config();
        let topics = self.topics.clone();
        let mut lag = tokio::task::spawn_blocking(move || watermarks(&config, &topics, P::NAME))
            .await
            .map_err(|error| KafkaBusError::Task {
                name: P::NAME,
                source: crate::error::TaskFailure::Join(error),
            })??;
        for partition in &mut lag {
            if let Some(next) = stored.get(&(partition.topic.clone(), partition.partition)) {
                partition.next_offset = *next;
            }
        }
        Ok(lag)
    }

    /// Makes the version the one readers see once every partition was read to its end.
    async fn activate_when_caught_up(&mut self) -> Result<(), KafkaBusError> {
        if self.activated {
            return Ok(());
        }
        let lag = self.lag().await?;
        if lag.is_empty() || lag.iter().any(|partition| partition.records() > 0) {
            return Ok(());
        }
        crate::projection::activate_if_needed::<P>(self.target(), self.projector.read_model())
            .await
            .map_err(|source| KafkaBusError::Projection {
                projection: P::NAME,
                source: Box::new(source),
            })?;
        self.activated = true;
        Ok(())
    }

    /// Joins the group and applies what its partitions hold until every partition of the
    /// topics is read to its end (as of when each was checked), then leaves the group.
    /// For one member alone, a tool or a test; `timeout` bounds the wait for the group to
    /// assign partitions and for the records to arrive.
    pub async fn consume_available(
        &mut self,
        timeout: Duration,
    ) -> Result<Consumed, KafkaBusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut outcome = Consumed::default();
        loop {
            let read = self.round(self.idle_wait, &mut outcome).await?;
            if read == 0 {
                let lag = self.lag().await?;
                if !lag.is_empty() && lag.iter().all(|partition| partition.records() == 0) {
                    self.activate_when_caught_up().await?;
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    self.leave().await;
                    return Err(KafkaBusError::Behind {
                        projection: P::NAME,
                        lag: lag.iter().map(PartitionLag::records).sum(),
                        timeout,
                    });
                }
            }
        }
        self.leave().await;
        Ok(outcome)
    }

    /// Runs the member in a task until [`ConsumerHandle::stop`]: applies what the group
    /// assigns it, waiting for more; retries failures (brokers down, read model
    /// unavailable) with backoff, rejoining the group by itself. Only a fatal error
    /// ([`KafkaBusError::is_fatal`]) ends it early.
    pub fn spawn(self) -> ConsumerHandle {
        let foreign = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&foreign);
        let task = TaskHandle::spawn(P::NAME, |context| self.follow(context, shared));
        ConsumerHandle { foreign, task }
    }

    async fn follow(
        mut self,
        context: TaskContext<KafkaBusError>,
        foreign: Arc<Mutex<Vec<KafkaBusError>>>,
    ) -> Result<(), KafkaBusError> {
        let TaskContext {
            mut stop,
            checkpoint: records_tx,
            status,
        } = context;
        let mut failures = 0u32;
        let mut records = 0u64;
        loop {
            if *stop.borrow() {
                self.leave().await;
                return Ok(());
            }
            let mut outcome = Consumed::default();
            let round = tokio::select! {
                round = self.round(self.idle_wait, &mut outcome) => Some(round),
                _ = stop.changed() => None,
            };
            foreign
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(&mut outcome.foreign);
            let result = match round {
                None => {
                    self.leave().await;
                    return Ok(());
                }
                Some(Ok(0)) => self.activate_when_caught_up().await,
                Some(Ok(read)) => {
                    records += read as u64;
                    records_tx.send_replace(Some(records));
                    Ok(())
                }
                Some(Err(error)) => Err(error),
            };
            match result {
                Ok(()) => failures = 0,
                Err(error) if error.is_fatal() => {
                    self.leave().await;
                    return Err(error);
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let pause = self.retry.backoff(failures);
                    tracing::warn!(
                        projection = P::NAME, group = %self.group, error = %crate::error::Report(&error), failures,
                        retry_in_ms = pause.as_millis() as u64, "consuming from Kafka failed; retrying"
                    );
                    status.report_error(error);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }
}

/// The record's value as an envelope: what the publisher sends.
fn decode(message: &OwnedMessage) -> Result<RecordedEvent, crate::error::BoxError> {
    let payload = message.payload().ok_or("the record has no value")?;
    let event: RecordedEvent = serde_json::from_slice(payload)?;
    if let Some(position) = header(message, super::POSITION_HEADER)
        && position.parse::<u64>().ok() != Some(event.position)
    {
        return Err(format!(
            "its `{}` header ({position}) is not the position of the event it carries ({})",
            super::POSITION_HEADER,
            event.position
        )
        .into());
    }
    Ok(event)
}

fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(str::to_owned)
}

/// Each partition of the topics `topics` names, with its high watermark (the offset the
/// read model holds left at 0, for the caller to fill in).
fn watermarks(
    config: &ClientConfig,
    topics: &Topics,
    projection: &'static str,
) -> Result<Vec<PartitionLag>, KafkaBusError> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let failed = |operation: &'static str| {
        move |source| KafkaBusError::Consume {
            projection,
            operation,
            source: Box::new(source),
        }
    };
    let client: BaseConsumer = config.create().map_err(failed("make a client"))?;
    let metadata = client
        .fetch_metadata(None, TIMEOUT)
        .map_err(failed("read the topics"))?;
    let mut partitions = Vec::new();
    for topic in metadata.topics() {
        let wanted = match topics {
            Topics::Prefix(prefix) => topic
                .name()
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
            Topics::Named(names) => names.iter().any(|name| name == topic.name()),
        };
        if !wanted {
            continue;
        }
        for partition in topic.partitions() {
            let (_, high_watermark) = client
                .fetch_watermarks(topic.name(), partition.id(), TIMEOUT)
                .map_err(failed("read a partition's watermarks"))?;
            partitions.push(PartitionLag {
                topic: topic.name().to_owned(),
                partition: partition.id(),
                next_offset: 0,
                high_watermark,
            });
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(partitions)
}

/// A running [`KafkaConsumer`].
pub struct ConsumerHandle {
    foreign: Arc<Mutex<Vec<KafkaBusError>>>,
    task: TaskHandle<KafkaBusError>,
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("name", &self.task.name())
            .field("records", &self.task.checkpoint())
            .finish_non_exhaustive()
    }
}

impl ConsumerHandle {
    /// Records this member has read since it started.
    pub fn records(&self) -> u64 {
        self.task.checkpoint().unwrap_or(0)
    }

    /// The foreign records stepped over since the last call ([`KafkaBusError::Foreign`]).
    pub fn take_foreign(&self) -> Vec<KafkaBusError> {
        std::mem::take(&mut self.foreign.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The last failure it retried after, for diagnostics.
    pub fn last_error(&self) -> Option<Arc<KafkaBusError>> {
        self.task.last_error()
    }

    /// Whether its task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it (it leaves the group) and returns how it ended.
    pub async fn stop(self) -> Result<(), KafkaBusError> {
        self.task.stop().await
    }
}
