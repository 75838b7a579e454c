//! `factum trace <correlation-id>`: the causal tree of one business transaction, from
//! the stored events alone — each command (known by its id, its events' causation id),
//! the events it recorded, the commands those caused in turn (their events keep the
//! triggering event's id under `command_causation_id`), and, given the read models,
//! which projections applied each event.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use factum::envelope::{COMMAND_CAUSATION_KEY, RecordedEvent};
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ReadModel, Target, VersionState};
use factum::store::{EventStore, SqliteStore};
use factum::uuid::Uuid;
use serde_json::{Value, json};

use crate::inspect::{Output, print_json};
use crate::projection_commands::named;
use crate::store_commands::{block_on, failed};

/// Prints the causal tree of the transaction `correlation_id`.
pub fn trace(
    db: &Path,
    read_models: Option<&Path>,
    correlation_id: &str,
    output: Output,
) -> Result<ExitCode, String> {
    let correlation: Uuid = correlation_id
        .parse()
        .map_err(|error| format!("`{correlation_id}` is not a correlation id (a UUID): {error}"))?;
    block_on(async {
        if !db.exists() {
            return Err(format!("{} does not exist", db.display()));
        }
        let store = SqliteStore::open(db).await.map_err(failed)?;
        let events = correlated(&store, correlation).await?;
        if events.is_empty() {
            return Err(format!(
                "no event of correlation {correlation} in {}",
                db.display()
            ));
        }
        let appliers = match read_models {
            Some(dir) => appliers(dir).await?,
            None => Vec::new(),
        };
        let tree = Tree::of(&events, &appliers);
        match output {
            Output::Json => print_json(&json!({
                "correlation_id": correlation,
                "commands": tree.roots.iter().map(|command| tree.command_json(*command)).collect::<Vec<_>>(),
            }))?,
            Output::Table => {
                println!(
                    "correlation {correlation}: {} command(s), {} event(s)",
                    tree.commands.len(),
                    events.len()
                );
                for command in &tree.roots {
                    tree.print_command(*command, 0);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Every event of the transaction, in log order (the whole log is read: the store keeps
/// no index by correlation).
async fn correlated(store: &SqliteStore, correlation: Uuid) -> Result<Vec<RecordedEvent>, String> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await.map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(events);
        };
        after = last.position;
        events.extend(
            page.into_iter()
                .filter(|event| event.metadata.correlation_id == Some(correlation)),
        );
    }
}

/// A projection version, what it has applied up to, and what it parked.
struct Applier {
    name: String,
    checkpoint: u64,
    parked: Vec<u64>,
}

/// The active version of each projection in the read-model directory `dir`.
async fn appliers(dir: &Path) -> Result<Vec<Applier>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let models = SqliteReadModel::open(dir).await.map_err(failed)?;
    let mut appliers = Vec::new();
    for name in models.names().await.map_err(failed)? {
        let name = named(&name);
        for version in models.versions(name).await.map_err(failed)? {
            if version.state != VersionState::Active {
                continue;
            }
            let target = Target {
                name,
                version: version.version,
            };
            let parked = models
                .parked(target)
                .await
                .map_err(failed)?
                .iter()
                .map(|parked| parked.event.position)
                .collect();
            appliers.push(Applier {
                name: name.to_owned(),
                checkpoint: version.checkpoint,
                parked,
            });
        }
    }
    Ok(appliers)
}

/// Commands and their events, linked by causation.
struct Tree<'a> {
    /// By command id: its events, in log order.
    commands: BTreeMap<Uuid, Vec<&'a RecordedEvent>>,
    /// The commands no event of the transaction caused, in the order of their first event.
    roots: Vec<Uuid>,
    /// By event id: the commands it caused, in order.
    caused: BTreeMap<Uuid, Vec<Uuid>>,
    appliers: &'a [Applier],
}

impl<'a> Tree<'a> {
    fn of(events: &'a [RecordedEvent], appliers: &'a [Applier]) -> Self {
        let mut commands: BTreeMap<Uuid, Vec<&RecordedEvent>> = BTreeMap::new();
        let mut order = Vec::new();
        for event in events {
            // An event appended outside a command has no causation: its own root.
            let command = event.metadata.causation_id.unwrap_or(event.event_id);
            let entry = commands.entry(command).or_default();
            if entry.is_empty() {
                order.push(command);
            }
            entry.push(event);
        }
        let ids: std::collections::HashSet<Uuid> =
            events.iter().map(|event| event.event_id).collect();
        let mut caused: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        let mut roots = Vec::new();
        for command in order {
            let trigger = commands[&command]
                .first()
                .and_then(|event| event.metadata.extra.get(COMMAND_CAUSATION_KEY))
                .and_then(Value::as_str)
                .and_then(|id| id.parse::<Uuid>().ok())
                .filter(|id| ids.contains(id));
            match trigger {
                Some(trigger) => caused.entry(trigger).or_default().push(command),
                None => roots.push(command),
            }
        }
        Self {
            commands,
            roots,
            caused,
            appliers,
        }
    }

    /// The projections that applied `event`: past it, and it not parked.
    fn applied_by(&self, event: &RecordedEvent) -> Vec<&str> {
        self.appliers
            .iter()
            .filter(|applier| {
                applier.checkpoint >= event.position && !applier.parked.contains(&event.position)
            })
            .map(|applier| applier.name.as_str())
            .collect()
    }

    fn print_command(&self, command: Uuid, depth: usize) {
        let events = &self.commands[&command];
        let indent = "  ".repeat(depth);
        let by = events
            .first()
            .and_then(|event| {
                let actor = event.metadata.actor.as_deref()?;
                Some(match event.metadata.actor_kind.as_deref() {
                    Some(kind) => format!(" by {kind}:{actor}"),
                    None => format!(" by {actor}"),
                })
            })
            .unwrap_or_default();
        println!("{indent}command {command}{by}");
        for event in events {
            let applied = self.applied_by(event);
            let projections = if applied.is_empty() {
                String::new()
            } else {
                format!(" -> {}", applied.join(", "))
            };
            println!(
                "{indent}  event {} {} v{} in {} v{}{projections}",
                event.position,
                event.name,
                event.schema_version,
                event.stream_id,
                event.stream_version
            );
            for next in self.caused.get(&event.event_id).into_iter().flatten() {
                self.print_command(*next, depth + 2);
            }
        }
    }

    fn command_json(&self, command: Uuid) -> Value {
        let events: Vec<Value> = self.commands[&command]
            .iter()
            .map(|event| {
                json!({
                    "position": event.position,
                    "event_id": event.event_id,
                    "name": event.name,
                    "schema_version": event.schema_version,
                    "stream_id": event.stream_id,
                    "stream_version": event.stream_version,
                    "applied_by": self.applied_by(event),
                    "caused": self.caused.get(&event.event_id).into_iter().flatten()
                        .map(|next| self.command_json(*next)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let first = self.commands[&command].first();
        json!({
            "command_id": command,
            "actor": first.and_then(|event| event.metadata.actor.clone()),
            "actor_kind": first.and_then(|event| event.metadata.actor_kind.clone()),
            "events": events,
        })
    }
}
