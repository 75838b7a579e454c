//! Decisions across entities: reading the events a query matches, and appending under
//! the condition that no event matching it was appended since (the dynamic consistency
//! boundary of the dcb.events specification).
//!
//! A [`Query`] is a list of [`QueryItem`]s and matches an event when any item does; an
//! item matches an event whose name is one of its names (any name when it lists none)
//! and that carries every one of its tags. [`DecisionStore::read_matching`] returns the
//! matching events in log order, with the position up to which the log was read; an
//! [`AppendCondition`] built from that position makes
//! [`DecisionStore::append_if`] refuse with [`StoreError::ConditionFailed`] when an
//! event matching the query was appended after it: the decision was made on stale
//! facts and is re-run.
//!
//! The read position is captured with the read (in one snapshot), never after it: an event
//! that commits between the read and a later look at the head would otherwise be
//! counted as read. The check and the append are one serialised step in every store.

use std::future::Future;

use crate::envelope::NewEvent;
use crate::envelope::RecordedEvent;
use crate::store::{
    AppendOutcome, CommandAppend, CommandRecord, CommandSession, EventStore, ExpectedVersion,
    StoreError,
};
use crate::tag::Tag;

/// One alternative of a [`Query`]: events of one of these names carrying all these tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryItem {
    /// The event names it matches; any name when empty.
    pub names: Vec<String>,
    /// The tags a matching event carries, all of them; any tags when empty.
    pub tags: Vec<Tag>,
}

impl QueryItem {
    /// The item matching events of any of `names` (any name when empty).
    pub fn names<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
            tags: Vec::new(),
        }
    }

    /// The item, matching only events that also carry `tags`.
    #[must_use]
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// Whether an event named `name` carrying `tags` matches.
    pub fn matches(&self, name: &str, tags: &[Tag]) -> bool {
        (self.names.is_empty() || self.names.iter().any(|wanted| wanted == name))
            && self.tags.iter().all(|wanted| tags.contains(wanted))
    }
}

/// Which events a decision reads: those any of its items match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The alternatives; a query without items matches no event.
    pub items: Vec<QueryItem>,
}

impl Query {
    /// The query of `items`.
    pub fn new(items: impl IntoIterator<Item = QueryItem>) -> Self {
        Self {
            items: items.into_iter().collect(),
        }
    }

    /// The query matching what either this one or `other` matches.
    #[must_use]
    pub fn or(mut self, other: Query) -> Self {
        self.items.extend(other.items);
        self
    }

    /// Whether an event named `name` carrying `tags` matches.
    pub fn matches(&self, name: &str, tags: &[Tag]) -> bool {
        self.items.iter().any(|item| item.matches(name, tags))
    }
}

/// The events a query matched, and how far the log was read.
#[derive(Debug, Clone, Default)]
pub struct MatchedEvents {
    /// The matching events, in log order.
    pub events: Vec<RecordedEvent>,
    /// The log was read up to this position (every matching event up to it is in
    /// `events`): the position an [`AppendCondition`] of a decision on these events
    /// names.
    pub read_to: u64,
}

/// The condition of [`DecisionStore::append_if`]: no event matching `query` stored after
/// position `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendCondition {
    /// The events that would invalidate the decision.
    pub query: Query,
    /// The position the decision read up to ([`MatchedEvents::read_to`]).
    pub after: u64,
}

/// A store that decides across entities: reads by [`Query`], appends under an
/// [`AppendCondition`], the check and the append one serialised step.
///
/// Idempotency comes first: a batch whose event ids are stored as this exact batch, or a
/// command whose id is recorded, is answered as already applied (as by
/// [`EventStore::append`] and [`EventStore::append_command`]), never as a failed
/// condition.
pub trait DecisionStore: EventStore {
    /// The events `query` matches after position `after`, in log order, and the
    /// position the log was read up to, from one consistent view of the log.
    fn read_matching(
        &self,
        query: &Query,
        after: u64,
    ) -> impl Future<Output = Result<MatchedEvents, StoreError>> + Send;

    /// Appends `events` as [`EventStore::append`] does, unless an event matching
    /// `condition.query` is stored after `condition.after`:
    /// [`StoreError::ConditionFailed`], nothing written.
    fn append_if(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        condition: &AppendCondition,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Appends `events` with the command's record as [`EventStore::append_command`]
    /// does (a recorded command id is answered from its record, whatever the
    /// condition), unless the condition fails: [`StoreError::ConditionFailed`], nothing
    /// written or recorded.
    fn append_command_if(
        &self,
        stream_id: &str,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        command: CommandRecord,
        condition: &AppendCondition,
    ) -> impl Future<Output = Result<CommandAppend, StoreError>> + Send;

    /// Runs one decision of a command: looks its record up, visits the events `query`
    /// matches (in log order, so the caller folds its models), asks `decide` for the
    /// events to write, and appends them to `stream_id` with the command's record, under
    /// the condition that no event `query` matches was stored since the visit
    /// ([`DecisionStore::append_command_if`]'s checks and guarantees).
    ///
    /// A command recorded before is answered [`CommandSession::AlreadyExecuted`] (even
    /// when `decide` would now refuse it: the facts it made refuse its repeat); a
    /// decision that fails is [`CommandSession::Refused`] and writes nothing; a failed
    /// condition is an error converted from [`StoreError::ConditionFailed`], and the
    /// caller decides again. Errors of `visit` end the session with that error.
    ///
    /// The default reads ([`DecisionStore::read_matching`]), decides, and appends
    /// conditionally ([`DecisionStore::append_command_if`]), looking the record up only
    /// when the decision refuses. A store may run it all in one write transaction
    /// instead — SQLite does, on its writer thread (so `visit` and `decide` own what they
    /// use): the decision is taken under the write lock, and its condition cannot fail.
    fn run_decision<E, V, D>(
        &self,
        stream_id: &str,
        stream_type: &str,
        query: &Query,
        command: CommandRecord,
        visit: V,
        decide: D,
    ) -> impl Future<Output = Result<CommandSession<E>, E>> + Send
    where
        E: From<StoreError> + Send + 'static,
        V: FnMut(&RecordedEvent) -> Result<(), E> + Send + 'static,
        D: FnOnce() -> Result<Vec<NewEvent>, E> + Send + 'static,
    {
        run_in_steps(
            self,
            stream_id,
            stream_type,
            query,
            command,
            visit,
            decide,
            std::future::ready(()),
        )
    }
}

/// [`DecisionStore::run_decision`] in three steps: the read, the decision, the
/// conditional append; `between` runs once after the decision and before the append
/// (what a concurrent writer could do there, for `testing::DecisionFixture`).
#[allow(
    clippy::too_many_arguments,
    reason = "one session's parts, passed once"
)]
pub(crate) async fn run_in_steps<S, E, V, D, F>(
    store: &S,
    stream_id: &str,
    stream_type: &str,
    query: &Query,
    command: CommandRecord,
    mut visit: V,
    decide: D,
    between: F,
) -> Result<CommandSession<E>, E>
where
    S: DecisionStore + ?Sized,
    E: From<StoreError>,
    V: FnMut(&RecordedEvent) -> Result<(), E>,
    D: FnOnce() -> Result<Vec<NewEvent>, E>,
    F: Future<Output = ()>,
{
    let read = store.read_matching(query, 0).await?;
    for event in &read.events {
        visit(event)?;
    }
    let events = match decide() {
        Ok(events) => events,
        Err(refusal) => {
            return Ok(match store.command_outcome(command.command_id).await? {
                Some(outcome) => CommandSession::AlreadyExecuted(outcome),
                None => CommandSession::Refused(refusal),
            });
        }
    };
    between.await;
    let condition = AppendCondition {
        query: query.clone(),
        after: read.read_to,
    };
    Ok(
        match store
            .append_command_if(
                stream_id,
                stream_type,
                ExpectedVersion::Any,
                events,
                command,
                &condition,
            )
            .await?
        {
            CommandAppend::Appended(outcome) => CommandSession::Appended(outcome),
            CommandAppend::AlreadyExecuted(outcome) => CommandSession::AlreadyExecuted(outcome),
        },
    )
}
