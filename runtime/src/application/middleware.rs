//! The middleware factum brings: rules on the context, a tracing span, metrics.

use std::collections::BTreeSet;
use std::time::Instant;

use tracing::Instrument;

use super::{ApplicationError, Call, Handled, Middleware, Next};
use crate::repository::RepositoryError;

/// Rules every command's context must keep: its actor, if any, is of a known kind; an
/// actor is there at all, if required. Breaking one is
/// [`ApplicationError::UnknownActorKind`] or [`ApplicationError::MissingActor`], before
/// anything is loaded or written.
#[derive(Debug, Clone, Default)]
pub struct ContextRules {
    actor_kinds: Option<BTreeSet<String>>,
    require_actor: bool,
}

impl ContextRules {
    /// No rules yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only actors of these kinds may issue commands.
    pub fn actor_kinds<K: Into<String>>(mut self, kinds: impl IntoIterator<Item = K>) -> Self {
        self.actor_kinds = Some(kinds.into_iter().map(Into::into).collect());
        self
    }

    /// Every command must have an actor.
    pub fn require_actor(mut self) -> Self {
        self.require_actor = true;
        self
    }

    fn check(&self, call: &Call) -> Result<(), ApplicationError> {
        match (&call.context.actor, &self.actor_kinds) {
            (None, _) if self.require_actor => Err(ApplicationError::MissingActor {
                command: call.command_name(),
            }),
            (Some(actor), Some(kinds)) if !kinds.contains(&actor.kind) => {
                Err(ApplicationError::UnknownActorKind {
                    command: call.command_name(),
                    kind: actor.kind.chars().take(128).collect(),
                    known: kinds.iter().cloned().collect(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Middleware for ContextRules {
    fn handle(&self, call: Call, next: Next) -> Handled {
        match self.check(&call) {
            Ok(()) => next.run(call),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }
}

/// A `tracing` span per command (`factum.command`, with the command, aggregate, command
/// id, correlation id, actor and tenant; with the `otel` feature, continuing the
/// context's [`traceparent`](crate::context::CommandContext::traceparent) when the caller
/// is not traced itself: see [`trace`](crate::trace)), and an event at its end: the stream, version
/// and position on success (`DEBUG`), the error otherwise (`INFO` for a rejection or a
/// denial, which are answers; `WARN` for the rest).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracing;

impl Middleware for Tracing {
    fn handle(&self, call: Call, next: Next) -> Handled {
        let context = &call.context;
        let span = tracing::info_span!(
            target: "factum::application",
            "factum.command",
            command = call.command_name(),
            aggregate = call.aggregate(),
            aggregate_id = %call.aggregate_id(),
            command_id = %context.command_id,
            correlation_id = context.correlation_id.map(tracing::field::display),
            actor = context.actor.as_ref().map(tracing::field::display),
            tenant = context.tenant.as_deref(),
        );
        // The command continues the trace it was issued in, unless a span of the
        // caller's (an HTTP server's) already belongs to a trace.
        if crate::trace::current().is_none() {
            crate::trace::continue_from(&span, context.traceparent.as_deref());
        }
        Box::pin(
            async move {
                let result = next.run(call).await;
                match &result {
                    Ok(outcome) => tracing::debug!(
                        target: "factum::application",
                        stream_id = outcome.stream_id,
                        version = outcome.version,
                        position = outcome.position,
                        events = outcome.event_ids.len(),
                        "command executed"
                    ),
                    Err(error) if is_answer(error) => tracing::info!(
                        target: "factum::application",
                        error = %crate::error::Report(error),
                        "command not executed"
                    ),
                    Err(error) => tracing::warn!(
                        target: "factum::application",
                        error = %crate::error::Report(error),
                        "command failed"
                    ),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Whether an error is the domain's or the policy's answer rather than a failure.
fn is_answer(error: &ApplicationError) -> bool {
    matches!(
        error,
        ApplicationError::Repository { source, .. }
            if matches!(**source, RepositoryError::Rejected(_) | RepositoryError::Denied { .. })
    )
}

/// Command metrics through the [`metrics`] facade (the exporter is the application's
/// choice): the counter `factum_commands_total` and the histogram
/// `factum_command_duration_seconds`, labelled by `command`, `aggregate` and `outcome`
/// (`executed`, `rejected`, `denied`, `conflict`, `invalid`, `failed`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics;

impl Metrics {
    /// The `outcome` label of a result.
    pub fn outcome_label<T>(result: &Result<T, ApplicationError>) -> &'static str {
        use ApplicationError as E;
        use RepositoryError as R;
        match result {
            Ok(_) => "executed",
            Err(E::Repository { source, .. }) => match &**source {
                R::Rejected(_) => "rejected",
                R::Denied { .. } => "denied",
                R::Conflict { .. } | R::RetriesExhausted { .. } => "conflict",
                R::MissingCommandId { .. }
                | R::UnencodableCommand { .. }
                | R::CommandIdReused { .. } => "invalid",
                _ => "failed",
            },
            Err(
                E::UnknownCommand { .. }
                | E::UnroutedType { .. }
                | E::InvalidCommand(_)
                | E::CommandId(_)
                | E::UnknownActorKind { .. }
                | E::MissingActor { .. }
                | E::Refused { .. },
            ) => "invalid",
        }
    }
}

impl Middleware for Metrics {
    fn handle(&self, call: Call, next: Next) -> Handled {
        let command = call.command_name();
        let aggregate = call.aggregate();
        Box::pin(async move {
            let started = Instant::now();
            let result = next.run(call).await;
            let labels = [
                ("command", command),
                ("aggregate", aggregate),
                ("outcome", Metrics::outcome_label(&result)),
            ];
            metrics::counter!(crate::telemetry::COMMANDS, &labels).increment(1);
            metrics::histogram!(crate::telemetry::COMMAND_DURATION, &labels)
                .record(started.elapsed().as_secs_f64());
            result
        })
    }
}
