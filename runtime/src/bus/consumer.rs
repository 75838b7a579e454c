//! A JetStream consumer that feeds a projection, in order, without skips.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use futures_util::StreamExt;

use crate::cloudevents::CloudEvents;
use crate::envelope::RecordedEvent;
use crate::error::TaskFailure;
use crate::follow::{TaskContext, TaskError, TaskHandle};
use crate::projection::{Projection, Projector, ReadModel, ReadModelOf, RunnerError, Target};

use super::error::{BusError, NatsError};
use super::{DEFAULT_STREAM, POSITION_HEADER, backoff, check_stream_name, check_subject, connect};

/// Feeds a [`Projector`] from a JetStream stream written by a
/// [`NatsPublisher`](super::NatsPublisher), typically in another process.
///
/// ```text
/// let projector = Projector::new(OrderSummary::default(), read_models.clone());
/// let consumer = NatsConsumer::new(projector, "nats://10.0.0.7:4222", "order_summary_bus")
///     .stream("ORDERS");
/// let mut handle = consumer.spawn();
/// handle.wait_for(position).await?;
/// ```
///
/// Its cursor (the last stream sequence processed) is kept in the projection's read model
/// under its name and the projection's version, so a restart resumes where it stopped and
/// a new projection version reads the stream from the start. See the [module docs](super)
/// for the guarantees.
pub struct NatsConsumer<P: Projection> {
    projector: Projector<P>,
    url: String,
    stream: String,
    name: &'static str,
    filter_subject: Option<String>,
    batch_size: usize,
    idle_wait: Duration,
    fetch_timeout: Duration,
    first_backoff: Duration,
    max_backoff: Duration,
    session: Option<Session>,
}

/// The connection and the server-side consumer being read.
struct Session {
    stream: stream::Stream,
    reader: Option<Reader>,
}

/// A server-side consumer and where its deliveries stand.
struct Reader {
    consumer: consumer::PullConsumer,
    /// The consumer sequence the next delivery must carry.
    next_delivery: u64,
}

/// What a call of [`NatsConsumer::consume_available`] did.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Messages read from the stream.
    pub messages: u64,
    /// Events the projection applied.
    pub applied: u64,
    /// Events skipped: at or before the projection's checkpoint (redeliveries, copies),
    /// or not handled by it.
    pub skipped: u64,
    /// Messages that were not recorded events ([`BusError::Malformed`]); skipped.
    pub malformed: Vec<BusError>,
    /// The projection's checkpoint afterwards.
    pub checkpoint: u64,
}

impl<P: Projection> std::fmt::Debug for NatsConsumer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer")
            .field("projection", &P::NAME)
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("name", &self.name)
            .field("filter_subject", &self.filter_subject)
            .finish_non_exhaustive()
    }
}

impl<P: Projection> NatsConsumer<P> {
    /// A consumer named `name` (1 to 40 ASCII letters, digits or underscores, not the
    /// projection's own name) of the NATS server at `url`, feeding `projector`.
    ///
    /// Defaults: stream [`DEFAULT_STREAM`], every subject, batches of 500, waits of up to
    /// 1 s for new messages, retries from 100 ms doubling to 5 s.
    pub fn new(projector: Projector<P>, url: impl Into<String>, name: &'static str) -> Self {
        Self {
            projector,
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            name,
            filter_subject: None,
            batch_size: 500,
            idle_wait: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            session: None,
        }
    }

    /// The JetStream stream to read.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// Reads only the subjects matching `filter` (wildcards allowed), e.g.
    /// `factum.Order.>`. One filter: NATS 2.9 takes one per consumer.
    pub fn filter_subject(mut self, filter: impl Into<String>) -> Self {
        self.filter_subject = Some(filter.into());
        self
    }

    /// Messages fetched and applied per batch (one read-model transaction).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How long a caught-up consumer waits on the server for a new message before asking
    /// again.
    pub fn idle_wait(mut self, idle_wait: Duration) -> Self {
        self.idle_wait = idle_wait;
        self
    }

    /// The wait after the first failure, doubled after each further one up to `max`.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// The projector.
    pub fn projector(&self) -> &Projector<P> {
        &self.projector
    }

    /// Gives the projector back.
    pub fn into_projector(self) -> Projector<P> {
        self.projector
    }

    /// The projection's committed checkpoint.
    pub async fn checkpoint(&mut self) -> Result<u64, BusError> {
        self.projector
            .checkpoint()
            .await
            .map_err(|source| BusError::Projection {
                consumer: self.name,
                source: Box::new(source),
            })
    }

    fn cursor_target(&self) -> Target {
        Target {
            name: self.name,
            version: P::VERSION,
        }
    }

    fn read_model(&self) -> &ReadModelOf<P> {
        self.projector.read_model()
    }

    fn checkpoint_error(&self) -> impl Fn(crate::projection::ReadModelError) -> BusError + use<P> {
        let name = self.name;
        move |source| BusError::Checkpoint { name, source }
    }

    fn consumer_error(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(NatsError) -> BusError + use<P> {
        let stream = self.stream.clone();
        let consumer = self.name.to_owned();
        move |source| BusError::Consumer {
            stream,
            consumer,
            operation,
            source,
        }
    }

    /// The last stream sequence processed, as stored.
    async fn cursor(&mut self) -> Result<u64, BusError> {
        Ok(self
            .read_model()
            .checkpoint(self.cursor_target())
            .await
            .map_err(self.checkpoint_error())?
            .unwrap_or(0))
    }

    async fn store_cursor(&mut self, sequence: u64) -> Result<(), BusError> {
        let tx = self
            .read_model()
            .begin(self.cursor_target())
            .await
            .map_err(self.checkpoint_error())?;
        // Not monotonic: after a reset of the projection the cursor starts again from 1.
        self.read_model()
            .commit(tx, sequence)
            .await
            .map_err(self.checkpoint_error())
    }

    fn check_names(&self) -> Result<(), BusError> {
        check_stream_name(&self.stream)?;
        if let Some(filter) = &self.filter_subject {
            check_subject("filter subject", filter, true)?;
        }
        if self.name == P::NAME {
            return Err(BusError::InvalidName {
                what: "consumer name",
                name: self.name.to_owned(),
                reason: "it is the projection's own name; the cursor needs a read model of its own"
                    .to_owned(),
            });
        }
        Ok(())
    }

    async fn session(&mut self) -> Result<&mut Session, BusError> {
        let session = match self.session.take() {
            Some(session) => session,
            None => self.connect_session().await?,
        };
        Ok(self.session.insert(session))
    }

    async fn connect_session(&mut self) -> Result<Session, BusError> {
        self.check_names()?;
        let client = connect(&self.url, &format!("factum consumer {}", self.name)).await?;
        let context = jetstream::ContextBuilder::new()
            .timeout(self.fetch_timeout)
            .build(client);
        let stream = context
            .get_stream(&self.stream)
            .await
            .map_err(|source| BusError::Stream {
                stream: self.stream.clone(),
                operation: "look up",
                source: Box::new(source),
            })?;
        Ok(Session {
            stream,
            reader: None,
        })
    }

    /// Where to start reading: after the stored cursor when it agrees with the
    /// projection's checkpoint, else from the start (the projection skips what it has).
    async fn start_sequence(&mut self, stream: &stream::Stream) -> Result<u64, BusError> {
        let checkpoint = self.checkpoint().await?;
        let cursor = self.cursor().await?;
        if checkpoint == 0 || cursor == 0 {
            return Ok(1);
        }
        match stream.get_raw_message(cursor).await {
            Ok(message) => {
                let position = message
                    .headers
                    .get(POSITION_HEADER)
                    .and_then(|value| value.as_str().parse::<u64>().ok());
                match position {
                    // The cursor is past what the projection has: it was reset or restored.
                    Some(position) if position > checkpoint => Ok(1),
                    _ => Ok(cursor + 1),
                }
            }
            Err(error) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                Ok(cursor + 1)
            }
            Err(source) => Err(self.consumer_error("read the message at the cursor")(
                Box::new(source),
            )),
        }
    }

    async fn create_reader(&mut self) -> Result<(), BusError> {
        let stream = self.session().await?.stream.clone();
        let start = self.start_sequence(&stream).await?;
        let config = consumer::pull::Config {
            description: Some(format!("factum consumer {} for {}", self.name, P::NAME)),
            deliver_policy: if start <= 1 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            },
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(600),
            max_ack_pending: i64::try_from(self.batch_size.saturating_mul(4).max(1000))
                .unwrap_or(i64::MAX),
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            inactive_threshold: Duration::from_secs(300),
            memory_storage: true,
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|source| {
            self.consumer_error("create the server-side consumer")(Box::new(source))
        })?;
        tracing::debug!(consumer = self.name, stream = %self.stream, start, "reading the stream");
        if let Some(session) = self.session.as_mut() {
            session.reader = Some(Reader {
                consumer,
                next_delivery: 1,
            });
        }
        Ok(())
    }

    /// Drops the server-side consumer (best effort); the next read creates a new one after
    /// the cursor.
    async fn drop_reader(&mut self) {
        if let Some(session) = self.session.as_mut()
            && let Some(reader) = session.reader.take()
        {
            let name = reader.consumer.cached_info().name.clone();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                session.stream.delete_consumer(&name),
            )
            .await;
        }
    }

    /// Receives up to one batch: what is there now, or (with `wait`) the first message to
    /// arrive within `wait`.
    async fn receive(
        &mut self,
        wait: Option<Duration>,
    ) -> Result<Vec<jetstream::Message>, BusError> {
        if self
            .session
            .as_ref()
            .and_then(|s| s.reader.as_ref())
            .is_none()
        {
            self.create_reader().await?;
        }
        let batch_size = self.batch_size;
        let fetch_timeout = self.fetch_timeout;
        let fetch_error = self.consumer_error("fetch");
        let Some(reader) = self.session.as_ref().and_then(|s| s.reader.as_ref()) else {
            return Ok(Vec::new());
        };
        let request = match wait {
            None => {
                reader
                    .consumer
                    .fetch()
                    .max_messages(batch_size)
                    .messages()
                    .await
            }
            Some(wait) => {
                reader
                    .consumer
                    .batch()
                    .max_messages(1)
                    .expires(wait)
                    .messages()
                    .await
            }
        };
        let mut batch = match request {
            Ok(batch) => batch,
            Err(source) => return Err(fetch_error(Box::new(source))),
        };
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default() + fetch_timeout;
        let mut messages = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(Ok(message))) => messages.push(message),
                Ok(None) => return Ok(messages),
                Ok(Some(Err(source))) => {
                    if messages.is_empty() {
                        return Err(fetch_error(source));
                    }
                    return Ok(messages);
                }
                Err(_elapsed) => {
                    if messages.is_empty() {
                        return Err(fetch_error("no answer from the server in time".into()));
                    }
                    return Ok(messages);
                }
            }
        }
    }

    /// Processes received messages in order: checks each delivery follows the previous
    /// one, decodes, applies the events in one projector call, stores the cursor, and
    /// acknowledges. Returns whether the deliveries were contiguous.
    async fn process(
        &mut self,
        messages: Vec<jetstream::Message>,
        outcome: &mut Consumed,
    ) -> Result<bool, BusError> {
        let Some(reader) = self.session.as_mut().and_then(|s| s.reader.as_mut()) else {
            return Ok(false);
        };
        let mut contiguous = true;
        let mut last_sequence = None;
        let mut last_message = None;
        let mut events: Vec<RecordedEvent> = Vec::with_capacity(messages.len());
        let mut malformed = Vec::new();
        let mut received = Vec::with_capacity(messages.len());
        for message in messages {
            let (delivery, sequence) = match message.info() {
                Ok(info) => (info.consumer_sequence, info.stream_sequence),
                Err(_) => {
                    contiguous = false;
                    break;
                }
            };
            // A lost delivery (gap) or a redelivery: what follows may be out of order.
            if delivery != reader.next_delivery
                || last_sequence.is_some_and(|last| sequence <= last)
            {
                contiguous = false;
                break;
            }
            reader.next_delivery += 1;
            last_sequence = Some(sequence);
            outcome.messages += 1;
            // CloudEvents binary mode (`NatsPublisher::cloudevents`) or the envelope as JSON.
            let decoded = match message
                .headers
                .as_ref()
                .filter(|headers| headers.get("ce-specversion").is_some())
            {
                Some(headers) => CloudEvents::recorded_from_binary(
                    |name| headers.get(name).map(|value| value.as_str().to_owned()),
                    &message.payload,
                )
                .map_err(crate::error::BoxError::from),
                None => serde_json::from_slice::<RecordedEvent>(&message.payload)
                    .map_err(crate::error::BoxError::from),
            };
            match decoded {
                Ok(mut event) => {
                    // The projection continues the trace through this message's span.
                    let header = message
                        .headers
                        .as_ref()
                        .and_then(|headers| headers.get(crate::trace::TRACEPARENT))
                        .map(|value| value.as_str());
                    let span = crate::trace::receive_span(
                        "nats",
                        "fetch",
                        &message.subject,
                        self.name,
                        header,
                        &event,
                    );
                    if let Some(traceparent) = span.in_scope(|| crate::trace::to_record(header)) {
                        event.metadata.traceparent = Some(traceparent);
                    }
                    // Open until the batch is applied.
                    received.push(span);
                    // A copy republished after the duplicate window: the projector skips
                    // what its checkpoint covers, and within a batch we keep the first.
                    if events
                        .last()
                        .is_none_or(|last| event.position > last.position)
                    {
                        events.push(event);
                    } else {
                        outcome.skipped += 1;
                    }
                }
                Err(error) => {
                    let error = BusError::Malformed {
                        stream: self.stream.clone(),
                        subject: message.subject.to_string(),
                        stream_sequence: sequence,
                        source: error,
                    };
                    tracing::error!(consumer = self.name, error = %crate::error::Report(&error), "skipping a malformed message");
                    if let Err(ack_error) = message.ack_with(AckKind::Term).await {
                        tracing::debug!(consumer = self.name, %ack_error, "terminating a malformed message failed");
                    }
                    malformed.push(error);
                }
            }
            last_message = Some(message);
        }
        if let Some(last) = events.last() {
            let scanned_to = last.position;
            let applied = match self.projector.apply(&events, scanned_to).await {
                Ok(applied) => applied,
                // The projection was reset (rebuilt) under this consumer: nothing was
                // written; the next round starts where its checkpoint now says.
                Err(RunnerError::CheckpointMovedBack { .. }) => return Ok(false),
                Err(source) => {
                    return Err(BusError::Projection {
                        consumer: self.name,
                        source: Box::new(source),
                    });
                }
            };
            outcome.applied += applied.applied + applied.parked;
            outcome.skipped += applied.skipped;
            outcome.skipped +=
                events.len() as u64 - applied.applied - applied.parked - applied.skipped;
        }
        if let Some(sequence) = last_sequence {
            self.store_cursor(sequence).await?;
        }
        if let Some(message) = last_message {
            // AckAll: acknowledges everything up to it. The cursor, not the ack, is the
            // truth; a lost ack costs nothing.
            if let Err(error) = message.ack().await {
                tracing::debug!(consumer = self.name, error = %crate::error::Report(&*error), "acknowledging failed");
            }
        }
        for error in malformed {
            outcome.malformed.push(error);
        }
        Ok(contiguous)
    }

    /// Drops the server-side consumer if the server no longer knows it (or cannot say),
    /// so the next round makes a new one after the cursor.
    async fn check_reader(&mut self) {
        let timeout = self.fetch_timeout;
        let Some(reader) = self.session.as_mut().and_then(|s| s.reader.as_mut()) else {
            return;
        };
        let known = matches!(
            tokio::time::timeout(timeout, reader.consumer.info()).await,
            Ok(Ok(_))
        );
        if !known {
            tracing::debug!(
                consumer = self.name,
                "the server-side consumer is gone; making a new one after the cursor"
            );
            self.drop_reader().await;
        }
    }

    /// One round: receive, process; on a gap or error the server-side consumer is
    /// dropped so the next round starts after the cursor. Returns the messages read.
    async fn round(
        &mut self,
        wait: Option<Duration>,
        outcome: &mut Consumed,
    ) -> Result<usize, BusError> {
        let messages = match self.receive(wait).await {
            Ok(messages) => messages,
            Err(error) => {
                self.drop_reader().await;
                return Err(error);
            }
        };
        let count = messages.len();
        if count == 0 {
            // A server restarted without its memory-stored consumer answers pulls with
            // nothing at all, no error: make sure ours still exists.
            self.check_reader().await;
            return Ok(0);
        }
        match self.process(messages, outcome).await {
            Ok(true) => Ok(count),
            Ok(false) => {
                tracing::debug!(
                    consumer = self.name,
                    "a delivery was lost or repeated; reading again after the cursor"
                );
                self.drop_reader().await;
                Ok(count)
            }
            Err(error) => {
                self.drop_reader().await;
                Err(error)
            }
        }
    }

    /// Reads and applies everything the stream holds now, batch by batch, and returns.
    pub async fn consume_available(&mut self) -> Result<Consumed, BusError> {
        let mut outcome = Consumed::default();
        loop {
            if self.round(None, &mut outcome).await? == 0 {
                break;
            }
        }
        outcome.checkpoint = self.checkpoint().await?;
        Ok(outcome)
    }

    /// Runs the consumer in a task until [`ConsumerHandle::stop`]: reads what there is,
    /// then waits on the server for more; retries failures (NATS down, timeouts) with
    /// backoff, reconnecting by itself. Only a fatal error ([`BusError::is_fatal`]) ends
    /// it early.
    pub fn spawn(self) -> ConsumerHandle {
        let reports = Arc::new(Mutex::new(Reports::default()));
        let shared = Arc::clone(&reports);
        let task = TaskHandle::spawn(self.name, |context| self.follow(context, shared));
        ConsumerHandle { reports, task }
    }

    async fn follow(
        mut self,
        context: TaskContext<BusError>,
        reports: Arc<Mutex<Reports>>,
    ) -> Result<(), BusError> {
        let TaskContext {
            mut stop,
            checkpoint: checkpoint_tx,
            status,
        } = context;
        let mut failures = 0u32;
        let mut wait = None;
        loop {
            if *stop.borrow() {
                self.drop_reader().await;
                return Ok(());
            }
            let mut outcome = Consumed::default();
            let round = tokio::select! {
                round = self.round(wait, &mut outcome) => Some(round),
                _ = stop.changed() => None,
            };
            {
                let mut reports = reports.lock().unwrap_or_else(PoisonError::into_inner);
                reports.malformed.append(&mut outcome.malformed);
            }
            match round {
                None => {
                    self.drop_reader().await;
                    return Ok(());
                }
                Some(Ok(count)) => {
                    failures = 0;
                    wait = (count == 0).then_some(self.idle_wait);
                    if outcome.messages > 0 || checkpoint_tx.borrow().is_none() {
                        match self.checkpoint().await {
                            Ok(checkpoint) => {
                                checkpoint_tx.send_replace(Some(checkpoint));
                            }
                            Err(error) if error.is_fatal() => return Err(error),
                            Err(error) => {
                                tracing::warn!(consumer = self.name, error = %crate::error::Report(&error), "reading the checkpoint failed")
                            }
                        }
                    }
                }
                Some(Err(error)) if error.is_fatal() => return Err(error),
                Some(Err(error)) => {
                    failures = failures.saturating_add(1);
                    wait = None;
                    let pause = backoff(self.first_backoff, self.max_backoff, failures);
                    tracing::warn!(
                        consumer = self.name, stream = %self.stream, error = %crate::error::Report(&error), failures,
                        retry_in_ms = pause.as_millis() as u64, "consuming failed; retrying"
                    );
                    if matches!(error, BusError::Stream { .. } | BusError::Connect { .. }) {
                        self.session = None;
                    }
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

#[derive(Default)]
struct Reports {
    malformed: Vec<BusError>,
}

/// A running consumer.
pub struct ConsumerHandle {
    reports: Arc<Mutex<Reports>>,
    task: TaskHandle<BusError>,
}

/// For [`ConsumerHandle`] and [`PublisherHandle`](super::PublisherHandle).
impl TaskError for BusError {
    fn task(name: &'static str, source: TaskFailure) -> Self {
        BusError::Task { name, source }
    }

    fn is_transient(&self) -> bool {
        !self.is_fatal()
    }
}

impl std::fmt::Debug for ConsumerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerHandle")
            .field("name", &self.task.name())
            .field("checkpoint", &self.task.checkpoint())
            .finish_non_exhaustive()
    }
}

impl ConsumerHandle {
    /// The projection's checkpoint as last reported (`None` before the first round).
    pub fn checkpoint(&self) -> Option<u64> {
        self.task.checkpoint()
    }

    /// The malformed messages skipped since the last call ([`BusError::Malformed`]).
    pub fn take_malformed(&self) -> Vec<BusError> {
        std::mem::take(
            &mut self
                .reports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .malformed,
        )
    }

    /// The last failure it retried after, for diagnostics: its causes are its
    /// `source()`, shown by [`Report`](crate::error::Report).
    pub fn last_error(&self) -> Option<Arc<BusError>> {
        self.task.last_error()
    }

    /// Waits until the projection has applied everything up to global `position`.
    /// Returns the task's error if it ended first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, BusError> {
        self.task.wait_for(position).await
    }

    /// Whether its task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it and returns how it ended.
    pub async fn stop(self) -> Result<(), BusError> {
        self.task.stop().await
    }
}
