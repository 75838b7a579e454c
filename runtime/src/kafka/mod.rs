//! The Kafka bus (feature `kafka`): committed events published to Kafka topics, for
//! projections, analytics and other services that subscribe there.
//!
//! ```text
//!  event store ──read_all──▶ KafkaPublisher ──topics `domain-events.<stream type>`──▶ KafkaConsumer × N
//!  (global log)              checkpoint in a   key = stream id, value = the envelope    (one consumer group,
//!                            read model        headers: ce_* + factum_position          offsets in the read model)
//! ```
//!
//! [`KafkaPublisher`] is an outbox on the global log: it reads the events after its
//! checkpoint in position order, sends each with librdkafka's idempotent producer to the
//! topic of its stream type, keyed by its stream id, awaits the brokers'
//! acknowledgements, and only then moves its checkpoint (kept durably in a
//! [`ReadModel`](crate::projection::ReadModel)) past the events acknowledged with all
//! before them. When the brokers are down nothing is lost: the checkpoint stays, the
//! publisher retries with backoff and resumes where it stopped.
//!
//! # Guarantees
//!
//! - **At-least-once publish.** An event's checkpoint moves only after the brokers stored
//!   it (`acks=all`), so a crash or an outage republishes, never skips.
//! - **Per-stream order.** The record key is the stream id, so a stream's events land in
//!   one partition; the idempotent producer keeps a partition's records in the order
//!   they were sent, retries included, and the publisher sends in position order. So in
//!   every partition the first copies of the events come in position order; a copy
//!   republished after a failure comes later and carries an older position
//!   (`factum_position`), which is how a consumer tells it apart.
//! - **No order across streams.** Events of different streams may sit in different
//!   partitions (and different topics, one per stream type), which consumers read
//!   independently: a consumer sees each stream in order, not the global log.
//!
//! A record's value is the [`RecordedEvent`](crate::envelope::RecordedEvent) as JSON (the
//! envelope: ids, stream, version, position, name, schema version, payload, metadata);
//! its headers carry the CloudEvents Kafka binding's attributes (`ce_id`, `ce_source`,
//! `ce_specversion`, `ce_type` `<domain>.<stream type>.<event name>`, `ce_subject` the
//! stream id, `ce_time`, `ce_sequence`, factum's extensions), `content-type`, the global
//! position as `factum_position`, and the W3C `traceparent`.
//!
//! One publisher per topic prefix: two would both publish every event.
//!
//! [`KafkaConsumer`] feeds a projection from the topics as a member of a consumer group,
//! so one projection version can be built by several processes; each partition's offset
//! and last applied position are committed in the read model with the rows they produced.
//! Exactly-once in effect: see its docs for what it skips, and for what is (each stream)
//! and is not (events of different streams) ordered.
//!
//! Point it at a real cluster by giving the brokers (`host:port`, comma-separated), the
//! topics' partitions and replication ([`KafkaPublisher::topics`]), and the cluster's
//! security settings ([`KafkaPublisher::setting`]: `security.protocol`, `sasl.*`,
//! `ssl.*`, as librdkafka names them).

mod consumer;
mod error;
mod publisher;

/// Re-exported: the librdkafka binding the bus is built on.
pub use rdkafka;

pub use crate::outbox::Published;
pub use consumer::{Consumed, ConsumerHandle, KafkaConsumer, PartitionLag};
pub use error::KafkaBusError;
pub use publisher::KafkaPublisher;

/// A running [`KafkaPublisher`].
pub type PublisherHandle = crate::outbox::PublisherHandle<KafkaBusError>;

/// The default topic prefix: events go to `domain-events.<stream type>`.
pub const DEFAULT_TOPIC_PREFIX: &str = "domain-events";
/// The header carrying the event's global position (also in the value).
pub const POSITION_HEADER: &str = "factum_position";

/// The topic an event is published to: `<prefix>.<stream type>`, the characters Kafka
/// does not allow in a topic name (anything but ASCII letters, digits, `.`, `_` and `-`)
/// replaced by `_` in the stream type, an empty one `_`.
pub fn topic_for(prefix: &str, stream_type: &str) -> String {
    let stream_type: String = if stream_type.is_empty() {
        "_".to_owned()
    } else {
        stream_type
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{prefix}.{stream_type}")
}

/// Checks a topic prefix: 1 to 200 ASCII letters, digits, `.`, `_` and `-` (Kafka allows
/// 249 characters in a topic name; the stream type needs the rest).
fn check_topic_prefix(prefix: &str) -> Result<(), KafkaBusError> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(KafkaBusError::InvalidName {
            what: "topic prefix",
            name: prefix.to_owned(),
            reason: "use 1 to 200 ASCII letters, digits, `.`, `_` or `-`".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_the_prefix_and_the_stream_type_made_legal() {
        assert_eq!(topic_for("domain-events", "Order"), "domain-events.Order");
        assert_eq!(topic_for("p", "Care Task/2"), "p.Care_Task_2");
        assert_eq!(topic_for("p", ""), "p._");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_topic_prefix("domain-events").is_ok());
        assert!(check_topic_prefix("").is_err());
        assert!(check_topic_prefix("a b").is_err());
        assert!(check_topic_prefix(&"x".repeat(201)).is_err());
    }
}
