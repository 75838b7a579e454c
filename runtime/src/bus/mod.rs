//! The event bus: committed events published to NATS JetStream, and JetStream consumers
//! that feed projections running in other processes, on other machines.
//!
//! ```text
//!  event store ──read_all──▶ NatsPublisher ──JetStream──▶ NatsConsumer ──▶ Projector<P>
//!  (global log)              checkpoint in a             (other process)   rows + checkpoint
//!                            read model                                     in one transaction
//! ```
//!
//! [`NatsPublisher`] is an outbox on the global log: it reads the events after its
//! checkpoint in position order, publishes each to the subject
//! `<prefix>.<stream type>.<event name>` with the event id as `Nats-Msg-Id`, awaits the
//! server's acknowledgements, and only then moves its checkpoint (kept durably in a
//! [`ReadModel`](crate::projection::ReadModel)) past the acknowledged events. When NATS is
//! down nothing is lost: the checkpoint stays, the publisher retries with backoff, and
//! resumes where it stopped once the server is back.
//!
//! [`NatsConsumer`] reads the stream in order and hands batches of recorded events to a
//! [`Projector`](crate::projection::Projector), which applies them and commits its
//! checkpoint in the same read-model transaction.
//!
//! # Guarantees: effectively once
//!
//! - **At-least-once publish.** An event's checkpoint moves only after JetStream stored it,
//!   so a crash or an outage republishes, never skips.
//! - **Deduplicated by event id.** A republished event carries the same `Nats-Msg-Id`;
//!   within the stream's duplicate window (set by the publisher on the stream it creates or
//!   updates; [`NatsPublisher::duplicate_window`]) JetStream stores it once.
//! - **Stream order is position order.** Publishes are pipelined, and a connection lost in
//!   the middle of a batch could let later events land while earlier ones were dropped on
//!   the wire. So every message but the first of a batch carries
//!   `Nats-Expected-Last-Msg-Id` = the previous event's id: JetStream refuses it unless the
//!   previous event is the last one stored (or it is itself a duplicate). The first of a
//!   batch follows an event already acknowledged. Hence the first copy of every event in
//!   the stream comes after the first copies of all events before it.
//! - **Idempotent apply by position.** The projector skips events at or before its
//!   checkpoint, so redeliveries and copies older than the duplicate window are harmless.
//! - **No skips on the consumer side.** A durable consumer with acknowledgements
//!   redelivers a lost message *after* later ones, which a checkpoint by position would then
//!   skip for ever. So [`NatsConsumer`] reads through a short-lived server-side consumer and
//!   checks every delivery's consumer sequence: on any gap, redelivery or error it drops the
//!   server-side consumer and creates a new one starting right after the last stream
//!   sequence it processed. That sequence (its cursor) is kept in the projection's read
//!   model, so the consumer is durable across restarts of either side.
//!
//! Together: every event reaches the projection exactly once in effect, in position order,
//! whatever restarts in between. The stream must keep messages until consumers have read
//! them (the publisher creates it without limits).
//!
//! Messages that are not a recorded event (written to the subjects by something else) are
//! reported as [`BusError::Malformed`], naming subject and stream sequence, terminated on
//! the server and skipped: they cannot block the projection.
//!
//! One publisher per stream: two publishers on one stream would interleave and break the
//! order check (they would keep refusing each other's messages).

mod consumer;
mod error;
mod publisher;

use std::time::Duration;

/// Re-exported: the NATS client the publisher and consumer are built from.
pub use async_nats;

pub use crate::outbox::Published;
pub use consumer::{Consumed, ConsumerHandle, NatsConsumer};
pub use error::BusError;
pub use publisher::NatsPublisher;

/// A running [`NatsPublisher`].
pub type PublisherHandle = crate::outbox::PublisherHandle<BusError>;

/// The header carrying the event's global position (also in the JSON body).
pub const POSITION_HEADER: &str = "Factum-Position";
/// The header carrying the event's stream id (also in the JSON body).
pub const STREAM_ID_HEADER: &str = "Factum-Stream-Id";

/// The default JetStream stream name.
pub const DEFAULT_STREAM: &str = "FACTUM_EVENTS";
/// The default subject prefix.
pub const DEFAULT_SUBJECT_PREFIX: &str = "factum";

/// The subject an event is published to: `<prefix>.<stream type>.<event name>`.
///
/// Characters a subject token may not hold (`.`, `*`, `>`, whitespace, control
/// characters) are replaced by `_` in the stream type and event name, and an empty one
/// becomes `_`, so every event maps to exactly three tokens after the prefix.
pub fn subject_for(prefix: &str, stream_type: &str, event_name: &str) -> String {
    format!("{prefix}.{}.{}", token(stream_type), token(event_name))
}

fn token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    text.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Checks a subject prefix or filter: dot-separated non-empty tokens without whitespace;
/// wildcards only when `wildcards`.
fn check_subject(what: &'static str, subject: &str, wildcards: bool) -> Result<(), BusError> {
    let invalid = |reason: &str| BusError::InvalidName {
        what,
        name: subject.to_owned(),
        reason: reason.to_owned(),
    };
    if subject.is_empty() {
        return Err(invalid("it is empty"));
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(invalid("it has an empty token"));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it holds whitespace"));
        }
        let wildcard = token == "*" || token == ">";
        if !wildcards && (token.contains('*') || token.contains('>')) {
            return Err(invalid("wildcards are not allowed here"));
        }
        if wildcards && !wildcard && (token.contains('*') || token.contains('>')) {
            return Err(invalid("a wildcard must be a whole token"));
        }
    }
    Ok(())
}

/// Checks a JetStream stream name.
fn check_stream_name(name: &str) -> Result<(), BusError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| {
            !(c == '.'
                || c == '*'
                || c == '>'
                || c == '/'
                || c == '\\'
                || c.is_whitespace()
                || c.is_control())
        });
    if valid {
        Ok(())
    } else {
        Err(BusError::InvalidName {
            what: "stream name",
            name: name.to_owned(),
            reason: "it must be non-empty, without `.`, `*`, `>`, `/`, `\\` or whitespace"
                .to_owned(),
        })
    }
}

/// Connects to NATS, reconnecting by itself after a lost connection.
async fn connect(url: &str, client_name: &str) -> Result<async_nats::Client, BusError> {
    async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            let exponent = u32::try_from(attempts.min(5)).unwrap_or(5);
            Duration::from_millis(50 * 2u64.pow(exponent)).min(Duration::from_secs(2))
        })
        .connect(url)
        .await
        .map_err(|source| BusError::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        })
}

/// The wait after failed try number `failed` (from 1): doubling from `first`, capped.
fn backoff(first: Duration, max: Duration, failed: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed.saturating_sub(1).min(16));
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_three_tokens_after_the_prefix() {
        assert_eq!(
            subject_for("factum", "Order", "OrderPlaced"),
            "factum.Order.OrderPlaced"
        );
        assert_eq!(subject_for("a.b", "x.y", "we ird>*"), "a.b.x_y.we_ird__");
        assert_eq!(subject_for("p", "", "E"), "p._.E");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_subject("prefix", "factum.events", false).is_ok());
        assert!(check_subject("prefix", "factum.*", false).is_err());
        assert!(check_subject("prefix", "factum..x", false).is_err());
        assert!(check_subject("filter", "factum.*.OrderPlaced", true).is_ok());
        assert!(check_subject("filter", "factum.>", true).is_ok());
        assert!(check_subject("filter", "factum.a*", true).is_err());
        assert!(check_stream_name("FACTUM_EVENTS").is_ok());
        assert!(check_stream_name("a.b").is_err());
        assert!(check_stream_name("").is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff(first, max, 1), first);
        assert_eq!(backoff(first, max, 2), Duration::from_millis(200));
        assert_eq!(backoff(first, max, 10), max);
        assert_eq!(backoff(first, max, u32::MAX), max);
    }
}
