//! What the Kafka bus reports.

use crate::error::TaskFailure;
use crate::follow::TaskError;
use crate::projection::ReadModelError;
use crate::store::StoreError;

/// Why publishing to Kafka, or consuming from it, failed. Each names what was being done
/// and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaBusError {
    /// The client could not be configured (a bad broker list or setting).
    #[error("Kafka client for {brokers}: {what}")]
    Client {
        /// The brokers.
        brokers: String,
        /// What could not be set up.
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Creating or looking up a topic failed.
    #[error("Kafka topic `{topic}`: {operation}")]
    Topic {
        /// The topic.
        topic: String,
        /// What was being done.
        operation: &'static str,
        /// librdkafka's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// An event was not stored by the brokers (not sent, refused, or not acknowledged in
    /// time). The publisher's checkpoint stays before it.
    #[error("Kafka topic `{topic}`: publishing event {event_id} (position {position}) failed")]
    Publish {
        /// The topic.
        topic: String,
        /// The event's global position.
        position: u64,
        /// The event's id (its `ce_id`).
        event_id: uuid::Uuid,
        /// librdkafka's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A name given to the bus cannot be used (a topic prefix Kafka refuses).
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An event could not be encoded as a record.
    #[error("event {event_id} (position {position}) cannot be encoded as a Kafka record")]
    Encode {
        /// The event's global position.
        position: u64,
        /// The event's id.
        event_id: uuid::Uuid,
        /// Why.
        #[source]
        source: crate::error::BoxError,
    },
    /// Polling the brokers or reading their metadata failed (brokers down, a topic not
    /// there yet).
    #[error("Kafka consumer for projection `{projection}`: {operation} failed")]
    Consume {
        /// The projection fed.
        projection: &'static str,
        /// What was being done.
        operation: &'static str,
        /// librdkafka's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A record on a topic is not a factum event (no value, not an envelope, or a
    /// `factum_position` header that disagrees with it). Reported and stepped over.
    #[error(
        "Kafka topic `{topic}` partition {partition} offset {offset}: not a factum event; stepped over"
    )]
    Foreign {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// Why it is not one.
        #[source]
        source: crate::error::BoxError,
    },
    /// Applying records to the projection failed; nothing of the batch was lost: the
    /// consumer reads again from the offsets the read model holds.
    #[error("Kafka consumer for projection `{projection}`: applying records failed")]
    Projection {
        /// The projection fed.
        projection: &'static str,
        /// The projector's error.
        #[source]
        source: Box<crate::projection::RunnerError>,
    },
    /// [`KafkaConsumer::consume_available`](super::KafkaConsumer::consume_available) did
    /// not reach the end of the partitions in time.
    #[error(
        "Kafka consumer for projection `{projection}`: still {lag} records behind after {timeout:?}"
    )]
    Behind {
        /// The projection fed.
        projection: &'static str,
        /// Records not read yet, over all partitions.
        lag: u64,
        /// How long it tried.
        timeout: std::time::Duration,
    },
    /// Reading the store failed.
    #[error("Kafka publisher `{publisher}`: reading the event store failed")]
    Store {
        /// The publisher's checkpoint name.
        publisher: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// Reading or moving a checkpoint failed.
    #[error("Kafka bus `{name}`: its checkpoint could not be read or moved")]
    Checkpoint {
        /// The checkpoint's name.
        name: &'static str,
        /// The read model's error.
        #[source]
        source: ReadModelError,
    },
    /// The task running the publisher or consumer ended abnormally.
    #[error("Kafka bus task `{name}`")]
    Task {
        /// The task's name.
        name: &'static str,
        /// How it ended.
        #[source]
        source: TaskFailure,
    },
}

impl KafkaBusError {
    /// Whether retrying cannot help (a bad name or setting, an event that can never be a
    /// record, a task gone): the spawned publisher or consumer stops on it.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Client { .. }
            | Self::InvalidName { .. }
            | Self::Encode { .. }
            | Self::Task { .. } => true,
            Self::Checkpoint { source, .. } => matches!(
                source,
                ReadModelError::InvalidName { .. }
                    | ReadModelError::NotAReadModel { .. }
                    | ReadModelError::SchemaTooNew { .. }
            ),
            Self::Store { source, .. } => matches!(
                source,
                StoreError::CorruptRow { .. } | StoreError::Archived { .. }
            ),
            Self::Projection { source, .. } => !crate::follow::TaskError::is_transient(&**source),
            Self::Topic { .. }
            | Self::Publish { .. }
            | Self::Consume { .. }
            | Self::Foreign { .. }
            | Self::Behind { .. } => false,
        }
    }
}

impl TaskError for KafkaBusError {
    fn task(name: &'static str, source: TaskFailure) -> Self {
        Self::Task { name, source }
    }

    fn is_transient(&self) -> bool {
        !self.is_fatal()
    }
}
