//! The causal tree of one business transaction, from the stored events alone: each
//! command (known by its id, its events' causation id), the events it recorded, the
//! commands those caused in turn (their events keep the triggering event's id under
//! [`COMMAND_CAUSATION_KEY`]), and which projections applied each event. The operator's
//! `factum trace` and the web console show it.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use crate::envelope::{COMMAND_CAUSATION_KEY, RecordedEvent};
use crate::store::{EventStore, StoreError};

/// Every event of the transaction `correlation_id`, in log order. The whole log is read:
/// no store keeps an index by correlation.
pub async fn correlated<S: EventStore>(
    store: &S,
    correlation_id: Uuid,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(events);
        };
        after = last.position;
        events.extend(
            page.into_iter()
                .filter(|event| event.metadata.correlation_id == Some(correlation_id)),
        );
    }
}

/// A projection's active version, as far as it has applied the log: what tells whether
/// it applied an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applier {
    /// The projection's name.
    pub name: String,
    /// The position it has applied every event up to.
    pub checkpoint: u64,
    /// The positions it parked (did not apply).
    pub parked: Vec<u64>,
}

impl Applier {
    /// Whether it applied the event at `position`: past it, and it not parked.
    pub fn applied(&self, position: u64) -> bool {
        self.checkpoint >= position && !self.parked.contains(&position)
    }
}

/// The commands of one transaction, each with its events and what those caused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CausalTree {
    /// The transaction's id.
    pub correlation_id: Uuid,
    /// The commands no event of the transaction caused, in the order of their first
    /// event.
    pub commands: Vec<CommandNode>,
}

/// A command and the events it recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandNode {
    /// The command's id (its events' causation id; an event appended outside a command
    /// stands for itself).
    pub command_id: Uuid,
    /// Who issued it, when its events say.
    pub actor: Option<String>,
    /// The actor's kind, when recorded.
    pub actor_kind: Option<String>,
    /// Its events, in log order.
    pub events: Vec<EventNode>,
}

/// An event of the transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventNode {
    /// Its global position.
    pub position: u64,
    /// Its id.
    pub event_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its payload's schema version.
    pub schema_version: u32,
    /// Its stream.
    pub stream_id: String,
    /// Its version in the stream.
    pub stream_version: u64,
    /// When it happened.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The projections that applied it.
    pub applied_by: Vec<String>,
    /// The commands it caused.
    pub caused: Vec<CommandNode>,
}

impl CausalTree {
    /// The tree of `events` (one transaction's, in log order), with which of `appliers`
    /// applied each.
    pub fn of(correlation_id: Uuid, events: &[RecordedEvent], appliers: &[Applier]) -> Self {
        let mut by_command: BTreeMap<Uuid, Vec<&RecordedEvent>> = BTreeMap::new();
        let mut order = Vec::new();
        for event in events {
            let command = event.metadata.causation_id.unwrap_or(event.event_id);
            let entry = by_command.entry(command).or_default();
            if entry.is_empty() {
                order.push(command);
            }
            entry.push(event);
        }
        let ids: HashSet<Uuid> = events.iter().map(|event| event.event_id).collect();
        let mut caused: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        let mut roots = Vec::new();
        for command in order {
            let trigger = by_command[&command]
                .first()
                .and_then(|event| event.metadata.extra.get(COMMAND_CAUSATION_KEY))
                .and_then(serde_json::Value::as_str)
                .and_then(|id| id.parse::<Uuid>().ok())
                .filter(|id| ids.contains(id));
            match trigger {
                Some(trigger) => caused.entry(trigger).or_default().push(command),
                None => roots.push(command),
            }
        }
        let builder = Builder {
            by_command: &by_command,
            caused: &caused,
            appliers,
        };
        Self {
            correlation_id,
            commands: roots
                .into_iter()
                .map(|command| builder.command(command, 0))
                .collect(),
        }
    }

    /// How many commands and events the tree holds.
    pub fn size(&self) -> (usize, usize) {
        fn count(command: &CommandNode, totals: &mut (usize, usize)) {
            totals.0 += 1;
            totals.1 += command.events.len();
            for event in &command.events {
                for next in &event.caused {
                    count(next, totals);
                }
            }
        }
        let mut totals = (0, 0);
        for command in &self.commands {
            count(command, &mut totals);
        }
        totals
    }
}

/// Builds the nodes from the indexes of [`CausalTree::of`].
struct Builder<'a> {
    by_command: &'a BTreeMap<Uuid, Vec<&'a RecordedEvent>>,
    caused: &'a BTreeMap<Uuid, Vec<Uuid>>,
    appliers: &'a [Applier],
}

impl Builder<'_> {
    fn command(&self, command: Uuid, depth: usize) -> CommandNode {
        let events = &self.by_command[&command];
        let first = events.first();
        CommandNode {
            command_id: command,
            actor: first.and_then(|event| event.metadata.actor.clone()),
            actor_kind: first.and_then(|event| event.metadata.actor_kind.clone()),
            events: events
                .iter()
                .map(|event| EventNode {
                    position: event.position,
                    event_id: event.event_id,
                    name: event.name.clone(),
                    schema_version: event.schema_version,
                    stream_id: event.stream_id.clone(),
                    stream_version: event.stream_version,
                    timestamp: event.timestamp,
                    applied_by: self
                        .appliers
                        .iter()
                        .filter(|applier| applier.applied(event.position))
                        .map(|applier| applier.name.clone())
                        .collect(),
                    // A command causes others only through its own events, and the log
                    // is finite; the depth bound guards against forged ids that loop.
                    caused: match depth < 64 {
                        true => self
                            .caused
                            .get(&event.event_id)
                            .into_iter()
                            .flatten()
                            .map(|next| self.command(*next, depth + 1))
                            .collect(),
                        false => Vec::new(),
                    },
                })
                .collect(),
        }
    }
}
