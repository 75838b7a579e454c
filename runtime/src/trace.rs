//! Traces: the spans factum opens, named after OpenTelemetry's semantic conventions, and
//! the W3C trace context (`traceparent`) that carries one trace from a command to its
//! events, to the projections and reactors that apply them, to the commands those issue,
//! and across NATS.
//!
//! | span | `otel.kind` | opened by | attributes |
//! |---|---|---|---|
//! | `factum.command` | internal | the [`Tracing`](crate::application::Tracing) middleware | `command`, `aggregate`, `aggregate_id`, `command_id`, `correlation_id`, `actor`, `tenant` |
//! | `append` (`otel.name` `append events`) | client | every store's `append` | `db.system.name` (`sqlite`, `postgresql`, `memory`), `db.operation.name`, `db.collection.name`, `db.operation.batch.size`, `factum.stream_id`, `factum.stream_type`; `error.type` on failure |
//! | `project` (`project <projection>`) | consumer | a projection applying one event | `factum.projection`, `factum.event`, `factum.position`, `factum.correlation_id` |
//! | `react` (`react <reactor>`) | consumer | a reactor or a process manager reacting to one event | `factum.reactor`, `factum.event`, `factum.position`, `factum.correlation_id` |
//! | `publish` (`publish <subject>`) | producer | the NATS publisher, per event | `messaging.system` `nats`, `messaging.operation.type` `send`, `messaging.destination.name`, `messaging.message.id` |
//! | `process` (`process <subject>`) | consumer | the NATS consumer, per message | `messaging.system` `nats`, `messaging.operation.type` `process`, `messaging.destination.name`, `messaging.consumer.group.name`, `messaging.message.id` |
//!
//! Every event records, in [`Metadata::traceparent`](crate::envelope::Metadata), the trace
//! context of the command that recorded it; the NATS publisher sends it as the
//! `traceparent` header; [`CommandContext::caused_by`](crate::context::CommandContext::caused_by)
//! hands it on to the commands an event causes. With the `otel` feature (and
//! `tracing-opentelemetry`'s layer installed), that context is the current span's, and the
//! spans above continue the context they are given: a projection's or a reactor's span is
//! the child of the span that recorded the event, so one trace runs from the first
//! command to the last. Without it, factum hands on the context it was given (say, an HTTP
//! request's `traceparent` header) unchanged.

use std::fmt;
use std::str::FromStr;

/// The name of the W3C trace context header, of the NATS header and of the CloudEvents
/// extension that carry it.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context `traceparent` value: the trace, the parent span in it, and the
/// flags (sampled or not).
///
/// ```
/// use factum::trace::TraceParent;
///
/// let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap();
/// assert!(parent.is_sampled());
/// assert_eq!(parent.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
/// assert_eq!(parent.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01".parse::<TraceParent>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// Text that is not a `traceparent` value: names the text (its first 64 characters) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a W3C traceparent: {reason}")]
pub struct TraceParentError {
    /// The text given (its first 64 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TraceParent {
    /// A context from its parts; `None` when the trace or the parent id is zero (which
    /// W3C makes invalid).
    pub fn new(trace_id: u128, parent_id: u64, flags: u8) -> Option<Self> {
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Reads a `traceparent` value. Version `00` is read exactly; a later version is read
    /// by its first four fields, as W3C asks, and written back as `00`.
    pub fn parse(text: &str) -> Result<Self, TraceParentError> {
        let fail = |reason| TraceParentError {
            value: text.chars().take(64).collect(),
            reason,
        };
        let bytes = text.as_bytes();
        if bytes.len() < 55 {
            return Err(fail(
                "too short (version-traceid-parentid-flags, 55 characters)",
            ));
        }
        let version =
            hex(&bytes[..2]).ok_or_else(|| fail("the version is not two lowercase hex digits"))?;
        match version {
            0xff => return Err(fail("version ff is invalid")),
            0 if bytes.len() != 55 => return Err(fail("version 00 has exactly 55 characters")),
            _ if bytes.len() > 55 && bytes[55] != b'-' => {
                return Err(fail("fields after the flags are not separated by `-`"));
            }
            _ => {}
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(fail("the fields are not separated by `-`"));
        }
        let trace_id = hex(&bytes[3..35])
            .ok_or_else(|| fail("the trace id is not 32 lowercase hex digits"))?;
        let parent_id = hex(&bytes[36..52])
            .ok_or_else(|| fail("the parent id is not 16 lowercase hex digits"))?;
        let flags = hex(&bytes[53..55])
            .ok_or_else(|| fail("the flags are not two lowercase hex digits"))?;
        if trace_id == 0 {
            return Err(fail("the trace id is all zeros"));
        }
        if parent_id == 0 {
            return Err(fail("the parent id is all zeros"));
        }
        Ok(Self {
            trace_id,
            parent_id: parent_id as u64,
            flags: flags as u8,
        })
    }

    /// The trace's id.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The id of the span the context names as parent.
    pub fn parent_id(&self) -> u64 {
        self.parent_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller sampled the trace (flag `01`).
    pub fn is_sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `digits` as a number, when they are all lowercase hex digits (W3C allows no others).
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The trace context of the current `tracing` span, when it belongs to an OpenTelemetry
/// trace (feature `otel`, with `tracing-opentelemetry`'s layer installed); `None`
/// otherwise.
pub fn current() -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let span = tracing::Span::current();
        if span.is_disabled() {
            return None;
        }
        let context = span.context();
        let span = context.span();
        let span = span.span_context();
        TraceParent::new(
            u128::from_be_bytes(span.trace_id().to_bytes()),
            u64::from_be_bytes(span.span_id().to_bytes()),
            span.trace_flags().to_u8(),
        )
    }
    #[cfg(not(feature = "otel"))]
    None
}

/// The context to record in what is caused now: the current span's, else `given` (what
/// the cause carried), when that is a valid `traceparent`.
pub(crate) fn to_record(given: Option<&str>) -> Option<String> {
    current()
        .or_else(|| given.and_then(|text| TraceParent::parse(text).ok()))
        .map(|parent| parent.to_string())
}

/// Makes `span` a child of the remote context `traceparent` names (a no-op without the
/// `otel` feature, or for text that is no `traceparent`).
pub(crate) fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let Some(parent) = traceparent.and_then(|text| TraceParent::parse(text).ok()) else {
            return;
        };
        if span.is_disabled() {
            return;
        }
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.parent_id.to_be_bytes()),
            TraceFlags::new(parent.flags),
            true,
            TraceState::NONE,
        );
        // Refused only once the span has started (it has not: it was just opened).
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, traceparent);
}

/// The span of one store append, child of the current span.
pub(crate) fn append_span(
    system: &'static str,
    stream_id: &str,
    stream_type: &str,
    events: usize,
) -> tracing::Span {
    tracing::info_span!(
        target: "factum::store",
        "append",
        otel.name = "append events",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = system,
        db.operation.name = "append",
        db.collection.name = "events",
        db.operation.batch.size = (events > 1).then_some(events),
        factum.stream_id = stream_id,
        factum.stream_type = stream_type,
        "error.type" = tracing::field::Empty,
    )
}

/// Marks `span` failed, with `kind` as the error's type.
pub(crate) fn record_error(span: &tracing::Span, kind: &str) {
    span.record("otel.status_code", "error");
    span.record("error.type", kind);
}

/// The span of a handler (`$role` `$handler`) applying or reacting to `$event`, continuing
/// the event's trace: one definition for the two kinds, whose names and fields are
/// literals.
macro_rules! handler_span {
    ($target:literal, $role:literal, $field:ident, $handler:expr, $event:expr) => {{
        let (handler, event): (&str, &crate::envelope::RecordedEvent) = ($handler, $event);
        let span = tracing::info_span!(
            target: $target,
            $role,
            otel.name = format!("{} {handler}", $role),
            otel.kind = "consumer",
            otel.status_code = tracing::field::Empty,
            factum.$field = handler,
            factum.event = event.name.as_str(),
            factum.position = event.position,
            factum.correlation_id = event.metadata.correlation_id.map(tracing::field::display),
            "error.type" = tracing::field::Empty,
        );
        continue_from(&span, event.metadata.traceparent.as_deref());
        span
    }};
}

/// The span of a projection applying `event`, continuing the event's trace.
pub(crate) fn project_span(
    projection: &str,
    event: &crate::envelope::RecordedEvent,
) -> tracing::Span {
    handler_span!(
        "factum::projection",
        "project",
        projection,
        projection,
        event
    )
}

/// The span of a reactor or a process manager reacting to `event`, continuing the
/// event's trace.
pub(crate) fn react_span(reactor: &str, event: &crate::envelope::RecordedEvent) -> tracing::Span {
    handler_span!("factum::process", "react", reactor, reactor, event)
}

/// The span of publishing `event` with `system` (`nats`, `kafka`) to `destination` (a
/// subject, a topic), continuing the event's trace.
#[cfg(any(feature = "nats", feature = "kafka"))]
pub(crate) fn publish_span(
    system: &'static str,
    subject: &str,
    event: &crate::envelope::RecordedEvent,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "factum::bus",
        "publish",
        otel.name = format!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.destination.name = subject,
        messaging.message.id = %event.event_id,
        factum.position = event.position,
    );
    continue_from(&span, event.metadata.traceparent.as_deref());
    span
}

/// The span of receiving the message `event` arrived in from `destination` (a NATS
/// subject, a Kafka topic), continuing the trace its `traceparent` header names (else the
/// event's).
#[cfg(any(feature = "nats", feature = "kafka"))]
pub(crate) fn receive_span(
    system: &'static str,
    operation: &'static str,
    destination: &str,
    consumer: &str,
    header: Option<&str>,
    event: &crate::envelope::RecordedEvent,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "factum::bus",
        "receive",
        otel.name = format!("receive {destination}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "receive",
        messaging.operation.name = operation,
        messaging.destination.name = destination,
        messaging.consumer.group.name = consumer,
        messaging.message.id = %event.event_id,
        factum.position = event.position,
    );
    continue_from(&span, header.or(event.metadata.traceparent.as_deref()));
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_w3c_examples() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parent = TraceParent::parse(text).unwrap();
        assert_eq!(parent.trace_id(), 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(parent.parent_id(), 0xb7ad6b7169203331);
        assert!(parent.is_sampled());
        assert_eq!(parent.to_string(), text);
        let unsampled = TraceParent::parse(&text.replace("-01", "-00")).unwrap();
        assert!(!unsampled.is_sampled());
    }

    #[test]
    fn reads_a_later_version_by_its_first_fields() {
        let parent =
            TraceParent::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what")
                .unwrap();
        assert_eq!(
            parent.to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn refuses_what_w3c_makes_invalid() {
        let cases = [
            ("", "too short"),
            (
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "version ff",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
                "exactly 55",
            ),
            (
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                "trace id is not",
            ),
            (
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                "trace id is all zeros",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                "parent id is all zeros",
            ),
            (
                "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "separated",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
                "flags",
            ),
            (
                "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
                "after the flags",
            ),
        ];
        for (text, reason) in cases {
            let error = TraceParent::parse(text).unwrap_err();
            assert!(error.reason.contains(reason), "{text}: {error}");
            assert!(error.to_string().contains("is not a W3C traceparent"));
        }
    }

    #[test]
    fn without_a_trace_the_given_context_is_handed_on() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(to_record(Some(text)).as_deref(), Some(text));
        assert_eq!(to_record(Some("garbage")), None);
        assert_eq!(to_record(None), None);
    }
}
