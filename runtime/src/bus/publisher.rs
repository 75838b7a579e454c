//! The outbox: the global log published to JetStream behind a durable checkpoint.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use tracing::Instrument as _;

use crate::cloudevents::CloudEvents;
use crate::envelope::RecordedEvent;
use crate::outbox::{Outbox, Published, Sent, Transport};
use crate::projection::{ReadModel, ReadModelError};
use crate::store::{EventStore, StoreError};
use crate::upcast::Upcaster;

use super::error::BusError;
use super::{
    DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, POSITION_HEADER, STREAM_ID_HEADER, check_stream_name,
    check_subject, connect, subject_for,
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
    outbox: Outbox<S, M>,
    transport: NatsTransport,
}

/// What carries the batches to JetStream: the server, the stream, how messages are made.
struct NatsTransport {
    url: String,
    name: &'static str,
    stream: String,
    subject_prefix: String,
    duplicate_window: Duration,
    ack_timeout: Duration,
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
            .field("url", &self.transport.url)
            .field("stream", &self.transport.stream)
            .field("subject_prefix", &self.transport.subject_prefix)
            .field("name", &self.outbox.name)
            .finish_non_exhaustive()
    }
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
            outbox: Outbox::new(store, checkpoints, "nats_publisher"),
            transport: NatsTransport {
                url: url.into(),
                name: "nats_publisher",
                stream: DEFAULT_STREAM.to_owned(),
                subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
                duplicate_window: Duration::from_secs(120),
                ack_timeout: Duration::from_secs(10),
                connection: None,
                stream_ready: false,
                cloudevents: None,
                upcaster: None,
            },
        }
    }

    /// The JetStream stream to publish to; created (or updated) on first use.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.transport.stream = stream.into();
        self
    }

    /// Publishes in CloudEvents binary mode (the NATS binding): each event's attributes as
    /// `ce-` headers (`ce-id`, `ce-type` `<domain>.<stream type>.<event name>`,
    /// `ce-subject` the stream id, `ce-sequence` the zero-padded position, ...; see
    /// [`crate::cloudevents`]), `content-type: application/json`, and the payload alone
    /// as the body, instead of the whole envelope as JSON. `Nats-Msg-Id` and the
    /// `Factum-` headers stay. [`NatsConsumer`](crate::bus::NatsConsumer) reads both forms.
    pub fn cloudevents(mut self, mapping: CloudEvents) -> Self {
        self.transport.cloudevents = Some(mapping);
        self
    }

    /// Publishes every event in its newest version: events of the stream types `upcaster`
    /// knows that are stored in an older version are decoded and encoded again by their
    /// aggregate's event set, `schema_version` saying the newest version and
    /// `stored_schema_version` the one on disk (see [`crate::upcast`]). Consumers written
    /// against the generated contracts then never meet a retired version. An event that
    /// cannot be upcast stops the publisher ([`BusError::Upcast`], fatal) before it.
    pub fn upcast(mut self, upcaster: Upcaster) -> Self {
        self.transport.upcaster = Some(upcaster);
        self
    }

    /// The subject prefix: events go to `<prefix>.<stream type>.<event name>`, and the
    /// stream takes the subjects `<prefix>.>`.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.transport.subject_prefix = prefix.into();
        self
    }

    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished event; set on the
    /// stream. Make it longer than the longest outage you want republishing to be silent
    /// for (a copy outside the window is still skipped by consumers, by position).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.transport.duplicate_window = window;
        self
    }

    /// How long to wait for JetStream to acknowledge a publish.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.transport.ack_timeout = timeout;
        self
    }

    crate::outbox::outbox_settings!();

    /// The committed checkpoint: every event up to this position is in the stream.
    pub async fn checkpoint(&self) -> Result<u64, BusError> {
        self.outbox.checkpoint::<NatsTransport>().await
    }

    /// Publishes every event after the checkpoint, batch by batch, moving the checkpoint
    /// after each batch's acknowledgements, until the head of the log.
    ///
    /// On failure the checkpoint stays after the last acknowledged event and the error
    /// names the event that was not stored; calling again resumes there.
    pub async fn publish_pending(&mut self) -> Result<Published, BusError> {
        self.outbox.publish_pending(&mut self.transport).await
    }

    /// Runs the publisher in a task: publishes what is pending, then waits for the store
    /// to report new events; retries failures (NATS down, timeouts) with backoff until
    /// [`PublisherHandle::stop`](super::PublisherHandle::stop). Only a fatal error ([`BusError::is_fatal`]) ends it early.
    pub fn spawn(self) -> super::PublisherHandle
    where
        S: Send + Sync,
    {
        self.outbox.spawn(self.transport)
    }
}

impl Transport for NatsTransport {
    type Error = BusError;

    async fn send(&mut self, events: &[RecordedEvent]) -> Sent<BusError> {
        let context = match self.jetstream().await {
            Ok(context) => context,
            Err(error) => {
                return Sent {
                    acknowledged: 0,
                    duplicates: 0,
                    failure: Some(error),
                };
            }
        };
        self.publish_batch(&context, events).await
    }

    fn reset(&mut self) {
        // The stream may be gone (a server with a fresh store): make sure of it again.
        self.stream_ready = false;
    }

    fn checkpoint_error(name: &'static str, source: ReadModelError) -> BusError {
        BusError::Checkpoint { name, source }
    }

    fn store_error(name: &'static str, source: StoreError) -> BusError {
        BusError::Store {
            publisher: name,
            source,
        }
    }

    fn destination(&self) -> String {
        format!("JetStream stream {} at {}", self.stream, self.url)
    }
}

impl NatsTransport {
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

    async fn publish_batch(
        &self,
        context: &jetstream::Context,
        events: &[RecordedEvent],
    ) -> Sent<BusError> {
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
        let mut batch = Sent {
            acknowledged: 0,
            duplicates: 0,
            failure: None,
        };
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
        batch
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
}
