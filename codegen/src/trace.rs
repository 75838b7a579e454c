//! `factum trace <correlation-id>`: the causal tree of one business transaction
//! ([`factum::causation`]), and, given the read models, which projections applied each
//! event.

use std::process::ExitCode;

use factum::causation::{Applier, CausalTree, CommandNode, correlated};
use factum::projection::{ReadModel, Target, VersionState};
use factum::uuid::Uuid;

use crate::inspect::{Db, Output, StoreArgs, print_json};
use crate::projection_commands::{Models, named};
use crate::store_commands::{block_on, failed};

/// Prints the causal tree of the transaction `correlation_id`.
pub fn trace(
    store: &StoreArgs,
    read_models: Option<&str>,
    correlation_id: &str,
    output: Output,
) -> Result<ExitCode, String> {
    let correlation: Uuid = correlation_id
        .parse()
        .map_err(|error| format!("`{correlation_id}` is not a correlation id (a UUID): {error}"))?;
    block_on(async {
        let events = on_store!(Db::open(store, false).await?, store => {
            correlated(&store, correlation).await.map_err(failed)?
        });
        if events.is_empty() {
            return Err(format!(
                "no event of correlation {correlation} in {}",
                store.db
            ));
        }
        let appliers = match read_models {
            Some(spec) => {
                let models = Models::open(spec).await?;
                let names = models.names().await?;
                on_models!(&models, models => appliers(models, names).await?)
            }
            None => Vec::new(),
        };
        let tree = CausalTree::of(correlation, &events, &appliers);
        match output {
            Output::Json => print_json(&serde_json::to_value(&tree).map_err(failed)?)?,
            Output::Table => {
                let (commands, events) = tree.size();
                println!("correlation {correlation}: {commands} command(s), {events} event(s)");
                for command in &tree.commands {
                    print_command(command, 0);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The active version of each projection `names` names in `models`.
async fn appliers(models: &impl ReadModel, names: Vec<String>) -> Result<Vec<Applier>, String> {
    let mut appliers = Vec::new();
    for name in names {
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

/// Prints `command`, its events and what they caused, indented by `depth`.
fn print_command(command: &CommandNode, depth: usize) {
    let indent = "  ".repeat(depth);
    let by = match (&command.actor, &command.actor_kind) {
        (Some(actor), Some(kind)) => format!(" by {kind}:{actor}"),
        (Some(actor), None) => format!(" by {actor}"),
        _ => String::new(),
    };
    println!("{indent}command {}{by}", command.command_id);
    for event in &command.events {
        let projections = if event.applied_by.is_empty() {
            String::new()
        } else {
            format!(" -> {}", event.applied_by.join(", "))
        };
        println!(
            "{indent}  event {} {} v{} in {} v{}{projections}",
            event.position, event.name, event.schema_version, event.stream_id, event.stream_version
        );
        for next in &event.caused {
            print_command(next, depth + 2);
        }
    }
}
