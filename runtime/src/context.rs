//! The context every command runs in: who issued it, in which business transaction and
//! tenant, what caused it, and when.
//!
//! A [`CommandContext`] goes with a command into the repository. The handler may take it
//! (`#[handle] fn complete(&self, command: CompleteTask, ctx: &CommandContext)`) to decide
//! by who is asking or by the command's time, and the events the command records carry
//! their metadata from the very same value ([`CommandContext::event_metadata`]): there is
//! no way to decide as one actor and record another.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::{COMMAND_CAUSATION_KEY, Metadata, RecordedEvent};

/// Who issued a command: a kind of principal (`care_coordinator`, `customer`, `service`)
/// and its id within that kind (`CC456`).
///
/// Recorded in every event the command causes, as `metadata.actor` (the id) and
/// `metadata.actor_kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actor {
    /// The kind of principal.
    pub kind: String,
    /// The principal's id within its kind.
    pub id: String,
}

impl Actor {
    /// The kind of the actor of the commands a process manager issues; the id is the
    /// manager's name.
    pub const PROCESS_MANAGER: &'static str = "process_manager";

    /// The actor `id` of the kind `kind`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// Whether this actor is of `kind`.
    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind, self.id)
    }
}

/// What a command carries besides itself; it reaches the decision and flows into the
/// metadata of its events.
///
/// # The causation chain
///
/// Causation ids link every message to the one that caused it, alternating between
/// events and commands: **event → command → event**.
///
/// - A command issued in reaction to an event (by a process manager, say) is built with
///   [`CommandContext::caused_by`]: its `causation_id` is that event's id and it keeps
///   the event's correlation id.
/// - The events a command records get the command's id as their causation id (a command
///   id is not stored anywhere else, so this is how "which command recorded this event"
///   stays answerable), and the command's own causation id under
///   [`COMMAND_CAUSATION_KEY`] in [`Metadata::extra`], so the chain back to the
///   triggering event can be followed from stored events alone.
/// - Every message of one business transaction shares one correlation id.
///
/// # The clock
///
/// A context has its time, [`CommandContext::now`]: when the command was issued (by
/// default when the context was made; [`CommandContext::at`] sets it). Handlers decide by
/// that time rather than by the system clock, so a decision can be replayed and tested,
/// and the events the command records are timestamped with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandContext {
    /// The command's own id; its events' causation id.
    pub command_id: Uuid,
    /// The business transaction's id; the command id when none is given.
    pub correlation_id: Option<Uuid>,
    /// The id of the message that caused this command: the triggering event's id for a
    /// command issued in reaction to an event, `None` for a command from outside.
    pub causation_id: Option<Uuid>,
    /// Who issued the command.
    pub actor: Option<Actor>,
    /// The tenant the command was issued in.
    pub tenant: Option<String>,
    /// Free-form entries copied into every event.
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The W3C trace context the command was issued in (an HTTP request's `traceparent`
    /// header, the causing event's): its events record the current span's context when
    /// there is one (feature `otel`), this one otherwise (see [`trace`](crate::trace)).
    pub traceparent: Option<String>,
    /// When the command was issued, to the microsecond (see [`CommandContext::now`]).
    pub issued_at: DateTime<Utc>,
}

impl Default for CommandContext {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandContext {
    /// A context with a fresh UUID v7 command id, issued now, and nothing else.
    pub fn new() -> Self {
        Self {
            command_id: Uuid::now_v7(),
            correlation_id: None,
            causation_id: None,
            actor: None,
            tenant: None,
            extra: BTreeMap::new(),
            traceparent: None,
            issued_at: crate::envelope::now(),
        }
    }

    /// The context of a command issued in reaction to `event`: a fresh command id, the
    /// event's correlation id (or, when it has none, a new correlation starting at the
    /// event's id), the event's id as causation id, the event's tenant, and the trace
    /// context of the span reacting to it (feature `otel`) or else the event's.
    pub fn caused_by(event: &RecordedEvent) -> Self {
        Self {
            correlation_id: Some(event.metadata.correlation_id.unwrap_or(event.event_id)),
            causation_id: Some(event.event_id),
            tenant: event.metadata.tenant.clone(),
            traceparent: crate::trace::to_record(event.metadata.traceparent.as_deref()),
            ..Self::new()
        }
    }

    /// Sets the command's id (by default a fresh UUID v7). A command re-sent with the
    /// same id can be recognised by the events it already recorded.
    pub fn command_id(mut self, command_id: Uuid) -> Self {
        self.command_id = command_id;
        self
    }

    /// Sets who issued the command.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the tenant the command is issued in.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the correlation id of the business transaction.
    pub fn correlation_id(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Sets the id of the message that caused this command.
    pub fn causation_id(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    /// Sets the W3C trace context the command is issued in (a `traceparent` value; one
    /// that does not read as such is not recorded).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// The context with its trace context made the current span's, when there is one
    /// (feature `otel`): what its events record. Called where a command starts, on the
    /// caller's task, since the decision may run on a store's own thread.
    pub fn in_current_trace(mut self) -> Self {
        self.traceparent = crate::trace::to_record(self.traceparent.as_deref());
        self
    }

    /// Adds a free-form entry.
    pub fn extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// Sets when the command was issued, truncated to whole microseconds (the precision
    /// every store keeps).
    pub fn at(mut self, issued_at: DateTime<Utc>) -> Self {
        self.issued_at = chrono::SubsecRound::trunc_subsecs(issued_at, 6);
        self
    }

    /// The command's time: what a handler decides by, and its events' timestamp.
    pub fn now(&self) -> DateTime<Utc> {
        self.issued_at
    }

    /// The actor, if it is of `kind`.
    pub fn actor_of(&self, kind: &str) -> Option<&Actor> {
        self.actor.as_ref().filter(|actor| actor.is(kind))
    }

    /// The metadata of the events this command causes: the command's correlation id (its
    /// own id when it has none), the command id as causation id, its actor, tenant and
    /// extra entries, its trace context when it is a valid `traceparent`, and, when the
    /// command has a causation id, that id under [`COMMAND_CAUSATION_KEY`].
    pub fn event_metadata(&self) -> Metadata {
        let mut extra = self.extra.clone();
        if let Some(causation_id) = self.causation_id {
            extra.insert(
                COMMAND_CAUSATION_KEY.to_owned(),
                serde_json::Value::String(causation_id.to_string()),
            );
        }
        Metadata {
            correlation_id: Some(self.correlation_id.unwrap_or(self.command_id)),
            causation_id: Some(self.command_id),
            actor: self.actor.as_ref().map(|actor| actor.id.clone()),
            actor_kind: self.actor.as_ref().map(|actor| actor.kind.clone()),
            tenant: self.tenant.clone(),
            traceparent: self
                .traceparent
                .as_deref()
                .and_then(|text| crate::trace::TraceParent::parse(text).ok())
                .map(|parent| parent.to_string()),
            extra,
        }
    }
}

/// A command id that is not one: absent, or not a UUID. Command ids reach factum as text
/// on the wire (an `Idempotency-Key` header, a message property); [`parse_command_id`]
/// reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandIdError {
    /// No id was given, or the nil UUID, which would make every command without an id a
    /// repeat of the first.
    #[error("the command has no id (a UUID, unique per command; the nil UUID is no id)")]
    Missing,
    /// The text is not a UUID.
    #[error("command id `{value}` is not a UUID")]
    Malformed {
        /// The text given (its first 64 characters, for a long one).
        value: String,
        /// What is wrong with it.
        #[source]
        source: uuid::Error,
    },
}

/// Reads a command id from text: a UUID in any of its usual spellings (hyphenated,
/// simple, braced, URN), never the nil UUID.
///
/// ```
/// use factum::context::{parse_command_id, CommandIdError};
///
/// let id = parse_command_id("0190f1c2-7a4b-7c3d-9e8f-0123456789ab").unwrap();
/// assert_eq!(id.to_string(), "0190f1c2-7a4b-7c3d-9e8f-0123456789ab");
/// assert_eq!(parse_command_id(""), Err(CommandIdError::Missing));
/// assert_eq!(parse_command_id("00000000-0000-0000-0000-000000000000"), Err(CommandIdError::Missing));
/// assert!(matches!(parse_command_id("order-7"), Err(CommandIdError::Malformed { .. })));
/// ```
pub fn parse_command_id(text: &str) -> Result<Uuid, CommandIdError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CommandIdError::Missing);
    }
    match Uuid::try_parse(text) {
        Ok(id) if id.is_nil() => Err(CommandIdError::Missing),
        Ok(id) => Ok(id),
        Err(error) => Err(CommandIdError::Malformed {
            value: text.chars().take(64).collect(),
            source: error,
        }),
    }
}

impl Metadata {
    /// The actor who issued the command that recorded the event, when its kind was
    /// recorded too.
    pub fn issued_by(&self) -> Option<Actor> {
        match (&self.actor_kind, &self.actor) {
            (Some(kind), Some(id)) => Some(Actor::new(kind.clone(), id.clone())),
            _ => None,
        }
    }
}
