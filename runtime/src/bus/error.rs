//! What the event bus reports.

use crate::projection::{ReadModelError, RunnerError};
use crate::store::StoreError;

/// A boxed error from the NATS client.
pub type NatsError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why publishing or consuming failed. Each names what was being done and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The NATS server could not be reached.
    #[error("NATS at {url}: could not connect")]
    Connect {
        /// The server's URL.
        url: String,
        /// The client's error.
        #[source]
        source: NatsError,
    },
    /// Creating, updating or looking up the JetStream stream failed.
    #[error("JetStream stream `{stream}`: {operation}")]
    Stream {
        /// The stream.
        stream: String,
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: NatsError,
    },
    /// An event was not stored by JetStream (not sent, refused or not acknowledged in
    /// time). The publisher's checkpoint stays before it.
    #[error(
        "JetStream stream `{stream}`: publishing event {event_id} (position {position}) to `{subject}` failed"
    )]
    Publish {
        /// The stream.
        stream: String,
        /// The subject.
        subject: String,
        /// The event's global position.
        position: u64,
        /// The event's id (its `Nats-Msg-Id`).
        event_id: uuid::Uuid,
        /// The client's error.
        #[source]
        source: NatsError,
    },
    /// An event is larger, as a message, than the NATS server accepts (its
    /// `max_payload`, 1 MiB by default, at most 64 MiB): it can never be published as it
    /// is, so the publisher stops before it instead of retrying. Raise `max_payload` in
    /// the server's configuration, or keep large data out of events (store a reference).
    #[error(
        "JetStream stream `{stream}`: event {event_id} (position {position}) is {bytes} bytes of JSON, which with its headers is more than the server's max_payload of {max_payload} bytes; nothing past it is published"
    )]
    TooLarge {
        /// The stream.
        stream: String,
        /// The event's global position.
        position: u64,
        /// The event's id.
        event_id: uuid::Uuid,
        /// The size of the event's JSON (the message's headers add a few hundred bytes).
        bytes: usize,
        /// The server's limit.
        max_payload: usize,
    },
    /// A recorded event could not be upcast to its newest version (see
    /// [`NatsPublisher::upcast`](crate::bus::NatsPublisher::upcast)); nothing from it on
    /// is published.
    #[error(
        "JetStream stream `{stream}`: an event cannot be published in its newest version; nothing past it is published"
    )]
    Upcast {
        /// The stream.
        stream: String,
        /// Which event, and why.
        #[source]
        source: Box<crate::upcast::UpcastError>,
    },
    /// A recorded event could not be encoded as JSON.
    #[error("event {event_id} (position {position}) could not be encoded")]
    Encode {
        /// The event's global position.
        position: u64,
        /// The event's id.
        event_id: uuid::Uuid,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A recorded event could not be written as a CloudEvent (binary mode, see
    /// [`NatsPublisher::cloudevents`](crate::bus::NatsPublisher::cloudevents)).
    #[error("event {event_id} (position {position}) could not be written as a CloudEvent")]
    CloudEvent {
        /// The event's global position.
        position: u64,
        /// The event's id.
        event_id: uuid::Uuid,
        /// Why.
        #[source]
        source: crate::cloudevents::CloudEventError,
    },
    /// Creating the server-side consumer or fetching from it failed.
    #[error("JetStream stream `{stream}`, consumer `{consumer}`: {operation}")]
    Consumer {
        /// The stream.
        stream: String,
        /// The factum consumer's name.
        consumer: String,
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: NatsError,
    },
    /// A message on the stream is not a recorded event. It was terminated on the server
    /// and skipped.
    #[error(
        "JetStream stream `{stream}`, message {stream_sequence} on `{subject}` is not a recorded event"
    )]
    Malformed {
        /// The stream.
        stream: String,
        /// The message's subject.
        subject: String,
        /// The message's stream sequence.
        stream_sequence: u64,
        /// What was wrong with it.
        #[source]
        source: crate::error::BoxError,
    },
    /// Reading the event store failed.
    #[error("publisher `{publisher}`: reading the event store failed")]
    Store {
        /// The publisher's checkpoint name.
        publisher: &'static str,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// Reading or writing a checkpoint (the publisher's, or a consumer's cursor) failed.
    #[error("`{name}`: checkpoint")]
    Checkpoint {
        /// The publisher's or consumer's name.
        name: &'static str,
        /// What the read model said.
        #[source]
        source: ReadModelError,
    },
    /// The projection fed by a consumer failed.
    #[error("consumer `{consumer}`")]
    Projection {
        /// The consumer's name.
        consumer: &'static str,
        /// What the projector said.
        #[source]
        source: Box<RunnerError>,
    },
    /// A name or subject cannot be used.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The task of a spawned publisher or consumer ended abnormally.
    #[error("`{name}`: its task ended abnormally")]
    Task {
        /// The publisher's or consumer's name.
        name: &'static str,
        /// How it ended.
        #[source]
        source: crate::error::TaskFailure,
    },
}

impl BusError {
    /// Whether trying again cannot help: a bad name, a projection that stopped on a poison
    /// event or failed to set up, a checkpoint file that is no read model or was written
    /// by a newer factum. Everything else (outages, timeouts, a refused publish)
    /// is retried by the spawned tasks.
    pub fn is_fatal(&self) -> bool {
        match self {
            BusError::InvalidName { .. }
            | BusError::Encode { .. }
            | BusError::CloudEvent { .. }
            | BusError::Upcast { .. }
            | BusError::TooLarge { .. }
            | BusError::Task { .. } => true,
            BusError::Projection { source, .. } => matches!(
                **source,
                RunnerError::Poisoned { .. } | RunnerError::Setup { .. }
            ),
            BusError::Checkpoint { source, .. } => {
                matches!(
                    source,
                    ReadModelError::InvalidName { .. }
                        | ReadModelError::NotAReadModel { .. }
                        | ReadModelError::SchemaTooNew { .. }
                )
            }
            _ => false,
        }
    }
}
