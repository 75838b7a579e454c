//! The outbox: the global log published to JetStream behind a durable checkpoint.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use tracing::Instrument as _;

use crate::cloudevents::CloudEvents;
use crate::envelope::RecordedEvent;
use crate::follow::{TaskContext, TaskHandle};
use crate::projection::{ReadModel, ReadModelTx, Target};
use crate::store::EventStore;
use crate::upcast::Upcaster;

use super::error::BusError;
use super::{
    DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, POSITION_HEADER, STREAM_ID_HEADER, backoff,
    check_stream_name, check_subject, connect, subject_for,
};

/// Publishes every committed event of a store to a JetStream stream, in position order,
/// deduplicated by event id, with its checkpoint kept in a read model.
///
/// ```text
/// let publisher = NatsPublisher::new(store.clone(), read_models.clone(), "nats://127.0.0.1:4222")
///     .stream("ORDERS").subject_prefix("orders");
/// let handle = publisher.spawn();          // follows the log until handle.stop()
/// ```
///
/// See the [module docs](super) for the guarantees.
pub struct NatsPublisher<S, M> {
    store: Arc<S>,
    checkpoints: M,
    url: String,
    stream: String,
    subject_prefix: String,
    duplicate_window: Duration,
    name: &'static str,
    batch_size: usize,
    ack_timeout: Duration,
    idle_wait: Duration,
    first_backoff: Duration,
    max_backoff: Duration,
    connection: Option<jetstream::Context>,
    stream_ready: bool,
    cloudevents: Option<CloudEvents>,
    upcaster: Option<Upcaster>,
}

/// A message's body and the headers it adds to `Nats-Msg-Id` and the `Factum-` ones.
type Message = (Vec<u8>, Vec<(String, String)>);

impl<S, M> std::fmt::Debug for NatsPublisher<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsPublisher")
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a call of [`NatsPublisher::publish_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Events JetStream stored.
    pub published: u64,
    /// Events JetStream recognised as already stored (same `Nats-Msg-Id`) and did not
    /// store again.
    pub duplicates: u64,
    /// The checkpoint: every event up to this global position is in the stream.
    pub checkpoint: u64,
}

impl<S: EventStore + 'static, M: ReadModel> NatsPublisher<S, M> {
    /// A publisher of `store`'s log to the NATS server at `url`, its checkpoint kept in
    /// `checkpoints` under the name `nats_publisher`.
    ///
    /// Defaults: stream [`DEFAULT_STREAM`] on subjects `factum.>`, a duplicate window of
    /// 2 minutes, batches of 500 events, 10 s to acknowledge, retries from 100 ms doubling
    /// to 5 s.
    pub fn new(store: S, checkpoints: M, url: impl Into<String>) -> Self {
        Self {
            store: Arc::new(store),
            checkpoints,
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            duplicate_window: Duration::from_secs(120),
            name: "nats_publisher",
            batch_size: 500,
            ack_timeout: Duration::from_secs(10),
            idle_wait: Duration::from_secs(1),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            connection: None,
            stream_ready: false,
            cloudevents: None,
            upcaster: None,
        }
    }

    /// The JetStream stream to publish to; created (or updated) on first use.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = stream.into();
        self
    }

    /// Publishes in CloudEvents binary mode (the NATS binding): each event's attributes as
    /// `ce-` headers (`ce-id`, `ce-type` `<domain>.<stream type>.<event name>`,
    /// `ce-subject` the stream id, `ce-sequence` the zero-padded position, ...; see
    /// [`crate::cloudevents`]), `content-type: application/json`, and the payload alone
    /// as the body, instead of the whole envelope as JSON. `Nats-Msg-Id` and the
    /// `Factum-` headers stay. [`NatsConsumer`](crate::bus::NatsConsumer) reads both forms.
    pub fn cloudevents(mut self, mapping: CloudEvents) -> Self {
        self.cloudevents = Some(mapping);
        self
    }

    /// Publishes every event in its newest version: events of the stream types `upcaster`
    /// knows that are stored in an older version are decoded and encoded again by their
    /// aggregate's event set, `schema_version` saying the newest version and
    /// `stored_schema_version` the one on disk (see [`crate::upcast`]). Consumers written
    /// against the generated contracts then never meet a retired version. An event that
    /// cannot be upcast stops the publisher ([`BusError::Upcast`], fatal) before it.
    pub fn upcast(mut self, upcaster: Upcaster) -> Self {
        self.upcaster = Some(upcaster);
        self
    }

    /// The subject prefix: events go to `<prefix>.<stream type>.<event name>`, and the
    /// stream takes the subjects `<prefix>.>`.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished event; set on the
    /// stream. Make it longer than the longest outage you want republishing to be silent
    /// for (a copy outside the window is still skipped by consumers, by position).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
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

    /// How long to wait for JetStream to acknowledge a publish.
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
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    fn target(&self) -> Target {
        Target {
            name: self.name,
            version: 0,
        }
    }

    /// The committed checkpoint: every event up to this position is in the stream.
    pub async fn checkpoint(&self) -> Result<u64, BusError> {
        let checkpoint = self
            .checkpoints
            .checkpoint(self.target())
            .await
            .map_err(|source| BusError::Checkpoint {
                name: self.name,
                source,
            })?;
        Ok(checkpoint.unwrap_or(0))
    }

    async fn commit(&self, position: u64) -> Result<(), BusError> {
        let checkpoint_error = |source| BusError::Checkpoint {
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

    /// Connects (if needed) and creates or updates the stream (once per connection or
    /// after a failed publish).
    async fn jetstream(&mut self) -> Result<jetstream::Context, BusError> {
        check_stream_name(&self.stream)?;
        check_subject("subject prefix", &self.subject_prefix, false)?;
        let context = match &self.connection {
            Some(context) => context.clone(),
            None => {
                let client = connect(&self.url, &format!("factum publisher {}", self.name)).await?;
                let context = jetstream::ContextBuilder::new()
                    .timeout(self.ack_timeout)
                    .build(client);
                self.connection = Some(context.clone());
                self.stream_ready = false;
                context
            }
        };
        if !self.stream_ready {
            let config = stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.subject_prefix)],
                duplicate_window: self.duplicate_window,
                storage: stream::StorageType::File,
                description: Some("factum: committed events, in global position order".into()),
                ..Default::default()
            };
            context
                .create_or_update_stream(config)
                .await
                .map_err(|source| BusError::Stream {
                    stream: self.stream.clone(),
                    operation: "create or update",
                    source: Box::new(source),
                })?;
            self.stream_ready = true;
        }
        Ok(context)
    }

    /// Publishes every event after the checkpoint, batch by batch, moving the checkpoint
    /// after each batch's acknowledgements, until the head of the log.
    ///
    /// On failure the checkpoint stays after the last acknowledged event and the error
    /// names the event that was not stored; calling again resumes there.
    pub async fn publish_pending(&mut self) -> Result<Published, BusError> {
        let mut outcome = Published {
            checkpoint: self.checkpoint().await?,
            ..Published::default()
        };
        loop {
            let events = self
                .store
                .read_all(outcome.checkpoint, self.batch_size)
                .await
                .map_err(|source| BusError::Store {
                    publisher: self.name,
                    source,
                })?;
            let Some(last) = events.last() else {
                return Ok(outcome);
            };
            let full = events.len() == self.batch_size;
            let last_position = last.position;
            let context = self.jetstream().await?;
            let batch = self.publish_batch(&context, &events).await?;
            if batch.acknowledged > 0 {
                let position = events[batch.acknowledged - 1].position;
                self.commit(position).await?;
                outcome.checkpoint = position;
                outcome.duplicates += batch.duplicates;
                outcome.published += batch.acknowledged as u64 - batch.duplicates;
            }
            if let Some(error) = batch.failure {
                // The stream may be gone (a server with a fresh store): make sure of it again.
                self.stream_ready = false;
                return Err(error);
            }
            debug_assert_eq!(outcome.checkpoint, last_position);
            if !full {
                return Ok(outcome);
            }
        }
    }

    async fn publish_batch(
        &self,
        context: &jetstream::Context,
        events: &[RecordedEvent],
    ) -> Result<Batch, BusError> {
        let mut pending = Vec::with_capacity(events.len());
        let mut failure = None;
        for (index, event) in events.iter().enumerate() {
            let subject = subject_for(&self.subject_prefix, &event.stream_type, &event.name);
            let (body, headers) = match self.message_of(event) {
                Ok(message) => message,
                Err(error) => {
                    // The events before it are still acknowledged and checkpointed.
                    failure = Some(error);
                    break;
                }
            };
            let bytes = body.len();
            let span = crate::trace::publish_span("nats", &subject, event);
            let mut message = jetstream::message::PublishMessage::build()
                .payload(body.into())
                .message_id(event.event_id.to_string())
                .header(POSITION_HEADER, event.position.to_string())
                .header(STREAM_ID_HEADER, event.stream_id.as_str());
            for (name, value) in &headers {
                message = message.header(name.as_str(), value.as_str());
            }
            // The publish span's context, or the event's: the consumer continues it.
            let traceparent =
                span.in_scope(|| crate::trace::to_record(event.metadata.traceparent.as_deref()));
            if let Some(traceparent) = traceparent {
                message = message.header(crate::trace::TRACEPARENT, traceparent.as_str());
            }
            if index > 0 {
                // Stored only right after the previous event: see the module docs.
                message = message.expected_last_message_id(events[index - 1].event_id.to_string());
            }
            match context
                .send_publish(subject.clone(), message)
                .instrument(span)
                .await
            {
                Ok(ack) => pending.push((event, subject, ack)),
                Err(source) if matches!(source.kind(), PublishErrorKind::MaxPayloadExceeded) => {
                    failure = Some(BusError::TooLarge {
                        stream: self.stream.clone(),
                        position: event.position,
                        event_id: event.event_id,
                        bytes,
                        max_payload: context.client().server_info().max_payload,
                    });
                    break;
                }
                Err(source) => {
                    failure = Some(self.publish_error(event, subject, Box::new(source)));
                    break;
                }
            }
        }
        let mut batch = Batch::default();
        for (event, subject, ack) in pending {
            match ack.await {
                Ok(ack) => {
                    batch.acknowledged += 1;
                    if ack.duplicate {
                        batch.duplicates += 1;
                    }
                }
                Err(source) => {
                    if matches!(source.kind(), PublishErrorKind::WrongLastMessageId) {
                        tracing::debug!(
                            stream = %self.stream, position = event.position,
                            "JetStream refused an event out of order; republishing from it"
                        );
                    }
                    failure = Some(self.publish_error(event, subject, Box::new(source)));
                    break;
                }
            }
        }
        batch.failure = failure;
        Ok(batch)
    }

    /// The body and extra headers of `event`'s message: the envelope as JSON, or the
    /// CloudEvents binary form; upcast to its newest version first if the publisher has
    /// an [`Upcaster`].
    fn message_of(&self, event: &RecordedEvent) -> Result<Message, BusError> {
        let upcast = match &self.upcaster {
            // Only an event that is upcast is copied.
            Some(upcaster) => upcaster
                .upcast_ref(event)
                .map_err(|source| BusError::Upcast {
                    stream: self.stream.clone(),
                    source: Box::new(source),
                })?,
            None => std::borrow::Cow::Borrowed(event),
        };
        let event = upcast.as_ref();
        match &self.cloudevents {
            Some(mapping) => {
                let binary = mapping
                    .to_binary(event)
                    .map_err(|source| BusError::CloudEvent {
                        position: event.position,
                        event_id: event.event_id,
                        source,
                    })?;
                Ok((binary.data.get().as_bytes().to_vec(), binary.headers))
            }
            None => Ok((
                serde_json::to_vec(event).map_err(|source| BusError::Encode {
                    position: event.position,
                    event_id: event.event_id,
                    source,
                })?,
                Vec::new(),
            )),
        }
    }

    fn publish_error(
        &self,
        event: &RecordedEvent,
        subject: String,
        source: super::error::NatsError,
    ) -> BusError {
        BusError::Publish {
            stream: self.stream.clone(),
            subject,
            position: event.position,
            event_id: event.event_id,
            source,
        }
    }

    /// Runs the publisher in a task: publishes what is pending, then waits for the store
    /// to report new events; retries failures (NATS down, timeouts) with backoff until
    /// [`PublisherHandle::stop`]. Only a fatal error ([`BusError::is_fatal`]) ends it early.
    pub fn spawn(self) -> PublisherHandle {
        let task = TaskHandle::spawn(self.name, |context| self.follow(context));
        PublisherHandle { task }
    }

    async fn follow(mut self, context: TaskContext<BusError>) -> Result<(), BusError> {
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
                    let wait = backoff(self.first_backoff, self.max_backoff, failures);
                    tracing::warn!(
                        publisher = self.name, stream = %self.stream, error = %crate::error::Report(&error), failures,
                        retry_in_ms = wait.as_millis() as u64, "publishing failed; retrying"
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

#[derive(Default)]
struct Batch {
    /// The events acknowledged, from the first of the batch, without a gap.
    acknowledged: usize,
    /// Of those, the ones JetStream already had.
    duplicates: u64,
    /// The first event not stored, if any.
    failure: Option<BusError>,
}

/// A running publisher.
pub struct PublisherHandle {
    task: TaskHandle<BusError>,
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

    /// The last failure it retried after, for diagnostics: its causes are its
    /// `source()`, shown by [`Report`](crate::error::Report).
    pub fn last_error(&self) -> Option<Arc<BusError>> {
        self.task.last_error()
    }

    /// Waits until every event up to `position` is in the stream. Returns the task's error
    /// if it ended first.
    pub async fn wait_for(&mut self, position: u64) -> Result<u64, BusError> {
        self.task.wait_for(position).await
    }

    /// Whether its task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it after the batch in hand and returns how it ended.
    pub async fn stop(self) -> Result<(), BusError> {
        self.task.stop().await
    }
}
