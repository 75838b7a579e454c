//! What factum reports about itself through the [`metrics`] facade: the application
//! installs the recorder (a Prometheus exporter, say) and every store, projection and
//! command reports to it; without one, reporting costs a check of the global recorder.
//!
//! | name | kind | labels | counts or measures |
//! |---|---|---|---|
//! | `event_store_events_appended_total` | counter | `aggregate_type`, `event_type` | events appended (committed) |
//! | `event_store_append_latency_seconds` | histogram | `aggregate_type` | each `append` and `append_command` call, from the call to the store's answer, whatever it was, and each command session that wrote its events |
//! | `event_store_concurrency_conflicts_total` | counter | `aggregate_type` | appends refused because the stream was not at the expected version |
//! | `event_store_size_bytes` | gauge | — | the store's size on disk, when [`record_store_size`] is called |
//! | `projection_events_processed_total` | counter | `projection_name`, `event_type` | events a projection applied |
//! | `projection_lag_events` | gauge | `projection_name` | events between a projection's (or a reactor's, or a process manager's) checkpoint and the head of the log |
//! | `projection_lag_seconds` | gauge | `projection_name` | age of the oldest event it has not applied (0 when caught up) |
//! | `projection_parked_events` | gauge | `projection_name` | events in its dead letters (a projection's, a reactor's or a process manager's) |
//! | `factum_commands_total` | counter | `command`, `aggregate`, `outcome` | commands, by outcome (`executed`, `rejected`, `denied`, `conflict`, `invalid`, `failed`); from the [`Metrics`](crate::application::Metrics) middleware |
//! | `factum_command_duration_seconds` | histogram | `command`, `aggregate`, `outcome` | the same commands' durations |
//!
//! `aggregate_type` is the stream type an append names (an aggregate's name for
//! repositories). A projection's gauges are set by its runner after each batch it applies
//! and each time it finds itself caught up; a reactor's and a process manager's, under
//! their names, each time they catch up.

use std::time::Instant;

use tracing::Instrument as _;

use crate::envelope::NewEvent;
use crate::store::{AppendOutcome, CommandAppend, StoreError};

/// Events appended: counter by `aggregate_type` and `event_type`.
pub const EVENTS_APPENDED: &str = "event_store_events_appended_total";
/// How long appends take: histogram by `aggregate_type`.
pub const APPEND_LATENCY: &str = "event_store_append_latency_seconds";
/// Appends refused for a concurrent writer: counter by `aggregate_type`.
pub const CONCURRENCY_CONFLICTS: &str = "event_store_concurrency_conflicts_total";
/// The store's size on disk in bytes: gauge.
pub const STORE_SIZE: &str = "event_store_size_bytes";
/// Events a projection applied: counter by `projection_name` and `event_type`.
pub const PROJECTION_PROCESSED: &str = "projection_events_processed_total";
/// Events a projection is behind: gauge by `projection_name`.
pub const PROJECTION_LAG_EVENTS: &str = "projection_lag_events";
/// Age of the oldest event a projection has not applied: gauge by `projection_name`.
pub const PROJECTION_LAG_SECONDS: &str = "projection_lag_seconds";
/// Events in a projection's dead letters: gauge by `projection_name`.
pub const PROJECTION_PARKED: &str = "projection_parked_events";
/// Commands: counter by `command`, `aggregate` and `outcome`.
pub const COMMANDS: &str = "factum_commands_total";
/// Commands' durations: histogram by `command`, `aggregate` and `outcome`.
pub const COMMAND_DURATION: &str = "factum_command_duration_seconds";

/// Sets [`STORE_SIZE`] to `bytes`: call it with what the store reports (for example
/// `SqliteStore::size_on_disk`) when metrics are scraped or on a timer.
pub fn record_store_size(bytes: u64) {
    metrics::gauge!(STORE_SIZE).set(bytes as f64);
}

/// The `append` and `append_command` of a backend's `EventStore` impl: its inherent
/// `append_unmeasured` and `append_command_unmeasured`, measured and traced as an
/// [`Append`] in a store of the OpenTelemetry `db.system.name` given.
macro_rules! measured_appends {
    ($system:literal) => {
        async fn append(
            &self,
            stream_id: &str,
            stream_type: &str,
            expected: crate::store::ExpectedVersion,
            events: Vec<crate::envelope::NewEvent>,
        ) -> Result<crate::store::AppendOutcome, crate::store::StoreError> {
            crate::telemetry::Append::start($system, stream_id, stream_type, &events)
                .append(self.append_unmeasured(stream_id, stream_type, expected, events))
                .await
        }

        async fn append_command(
            &self,
            stream_id: &str,
            stream_type: &str,
            expected: crate::store::ExpectedVersion,
            events: Vec<crate::envelope::NewEvent>,
            command: crate::store::CommandRecord,
        ) -> Result<crate::store::CommandAppend, crate::store::StoreError> {
            crate::telemetry::Append::start($system, stream_id, stream_type, &events)
                .append_command(self.append_command_unmeasured(
                    stream_id,
                    stream_type,
                    expected,
                    events,
                    command,
                ))
                .await
        }
    };
}
pub(crate) use measured_appends;

/// The `append_if` and `append_command_if` of a backend's `DecisionStore` impl: its
/// inherent `append_under` and `append_command_under` given the condition, measured and
/// traced as an [`Append`] like any other.
macro_rules! measured_conditional_appends {
    ($system:literal) => {
        async fn append_if(
            &self,
            stream_id: &str,
            stream_type: &str,
            expected: crate::store::ExpectedVersion,
            events: Vec<crate::envelope::NewEvent>,
            condition: &crate::store::decision::AppendCondition,
        ) -> Result<crate::store::AppendOutcome, crate::store::StoreError> {
            crate::telemetry::Append::start($system, stream_id, stream_type, &events)
                .append(self.append_under(
                    stream_id,
                    stream_type,
                    expected,
                    events,
                    Some(condition),
                ))
                .await
        }

        async fn append_command_if(
            &self,
            stream_id: &str,
            stream_type: &str,
            expected: crate::store::ExpectedVersion,
            events: Vec<crate::envelope::NewEvent>,
            command: crate::store::CommandRecord,
            condition: &crate::store::decision::AppendCondition,
        ) -> Result<crate::store::CommandAppend, crate::store::StoreError> {
            crate::telemetry::Append::start($system, stream_id, stream_type, &events)
                .append_command(self.append_command_under(
                    stream_id,
                    stream_type,
                    expected,
                    events,
                    command,
                    Some(condition),
                ))
                .await
        }
    };
}
pub(crate) use measured_conditional_appends;

/// One append being measured and traced: started before the store works, finished with
/// its answer.
pub(crate) struct Append {
    aggregate_type: String,
    events: Vec<(String, u64)>,
    started: Instant,
    span: tracing::Span,
}

impl Append {
    /// Starts measuring the append of `events` to `stream_id`, of `aggregate_type`, in a
    /// store of the OpenTelemetry `db.system.name` `system`.
    pub(crate) fn start(
        system: &'static str,
        stream_id: &str,
        aggregate_type: &str,
        events: &[NewEvent],
    ) -> Self {
        Self {
            aggregate_type: aggregate_type.to_owned(),
            events: by_name(events.iter().map(|event| event.name.as_str())),
            started: Instant::now(),
            span: crate::trace::append_span(system, stream_id, aggregate_type, events.len()),
        }
    }

    /// The append's span, for work done under it.
    #[cfg(feature = "sqlite")]
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The events, when they are known only once the append ran (a command's decision
    /// in SQLite's one-transaction session).
    #[cfg(feature = "sqlite")]
    pub(crate) fn set_events(&mut self, events: Vec<(String, u64)>) {
        let count: u64 = events.iter().map(|(_, count)| count).sum();
        if count > 1 {
            self.span.record("db.operation.batch.size", count);
        }
        self.events = events;
    }

    /// Runs an append and reports it.
    pub(crate) async fn append(
        self,
        append: impl Future<Output = Result<AppendOutcome, StoreError>>,
    ) -> Result<AppendOutcome, StoreError> {
        let result = append.instrument(self.span.clone()).await;
        self.finish(result.as_ref().map(|_| true));
        result
    }

    /// Runs a command's append and reports it (a command found recorded wrote nothing).
    pub(crate) async fn append_command(
        self,
        append: impl Future<Output = Result<CommandAppend, StoreError>>,
    ) -> Result<CommandAppend, StoreError> {
        let result = append.instrument(self.span.clone()).await;
        self.finish(
            result
                .as_ref()
                .map(|answer| matches!(answer, CommandAppend::Appended(_))),
        );
        result
    }

    /// Reports the append: `written` says whether the events were (a command found
    /// already executed writes nothing).
    pub(crate) fn finish(self, outcome: Result<bool, &StoreError>) {
        let aggregate = self.aggregate_type;
        metrics::histogram!(APPEND_LATENCY, "aggregate_type" => aggregate.clone())
            .record(self.started.elapsed().as_secs_f64());
        match outcome {
            Ok(true) => {
                for (name, count) in self.events {
                    metrics::counter!(
                        EVENTS_APPENDED,
                        "aggregate_type" => aggregate.clone(),
                        "event_type" => name,
                    )
                    .increment(count);
                }
            }
            Ok(false) => {}
            Err(StoreError::Conflict { .. }) => {
                crate::trace::record_error(&self.span, "conflict");
                metrics::counter!(CONCURRENCY_CONFLICTS, "aggregate_type" => aggregate)
                    .increment(1);
            }
            Err(error) => crate::trace::record_error(&self.span, error.kind()),
        }
    }
}

/// Each distinct name with how often it occurs, in first-seen order (a batch holds few
/// distinct names, so a list beats a map).
pub(crate) fn by_name<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for name in names {
        match counts.iter_mut().find(|(seen, _)| seen == name) {
            Some((_, count)) => *count += 1,
            None => counts.push((name.to_owned(), 1)),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_counted_in_first_seen_order() {
        assert_eq!(
            by_name(["B", "A", "B", "B"]),
            vec![("B".to_owned(), 3), ("A".to_owned(), 1)]
        );
        assert!(by_name([]).is_empty());
    }
}
