//! Operator commands an application builds into its own binary (feature `operator`): the
//! ones that need the application's projection handlers, which the `factum` binary does
//! not have — rebuild a projection with a progress bar, replay a parked event, check a live
//! model against its events — beside the status and parked list the `factum` binary shows
//! too. The application hands over its
//! projections as [`ProjectionControl`]s (the web console takes the same ones).
//!
//! ```no_run
//! use std::sync::Arc;
//! use clap::Parser;
//! use factum::projection::ProjectionControl;
//! use factum_codegen::operator::OperatorCommand;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(subcommand)]
//!     ops: OperatorCommand,
//! }
//!
//! # async fn app(projections: Vec<Arc<dyn ProjectionControl>>) {
//! let args = Args::parse();
//! let exit = factum_codegen::operator::run(args.ops, &projections).await;
//! # }
//! ```
//!
//! Destructive commands show what they would do with `--dry-run`, and ask on standard
//! input before doing it unless `--yes`.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use factum::projection::{ProjectionControl, ProjectionStatus, VersionState};

/// The operator commands on an application's projections.
#[derive(Debug, clap::Subcommand)]
pub enum OperatorCommand {
    /// Each projection's versions (state, checkpoint) and parked events.
    Projections {
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Resets projections and replays the whole log into them, with a progress bar.
    Rebuild {
        /// The projections to rebuild (all when none is named).
        names: Vec<String>,
        /// Show what would be rebuilt, and stop.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// A projection's parked events: list them, or replay one through its handler.
    #[command(subcommand)]
    Parked(ParkedOperation),
    /// The consistency checker: rebuilds each projection from the log into a shadow read
    /// model and compares it with the live one, row by row; exits 1 when one differs or
    /// cannot be checked. Run it when the live models caught up and nothing appends.
    Verify {
        /// The projections to check (all when none is named).
        names: Vec<String>,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// What to do with parked events.
#[derive(Debug, clap::Subcommand)]
pub enum ParkedOperation {
    /// The parked events of a projection's current version, oldest first.
    List {
        /// The projection.
        projection: String,
    },
    /// Replays the parked event at a position: applied, it leaves the dead letters.
    Replay {
        /// The projection.
        projection: String,
        /// The event's global position.
        position: u64,
        /// Show the event that would be replayed, and stop.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `command` on `projections`: exit 0 when done, 1 when refused or failed (the
/// reason on standard error), 2 for an unknown projection.
pub async fn run(command: OperatorCommand, projections: &[Arc<dyn ProjectionControl>]) -> ExitCode {
    match execute(command, projections).await {
        Ok(code) => code,
        Err(Failure { message, code }) => {
            eprintln!("error: {message}");
            code
        }
    }
}

struct Failure {
    message: String,
    code: ExitCode,
}

fn failed(message: impl std::fmt::Display) -> Failure {
    Failure {
        message: message.to_string(),
        code: ExitCode::FAILURE,
    }
}

fn named<'a>(
    projections: &'a [Arc<dyn ProjectionControl>],
    name: &str,
) -> Result<&'a Arc<dyn ProjectionControl>, Failure> {
    projections
        .iter()
        .find(|projection| projection.name() == name)
        .ok_or_else(|| Failure {
            message: format!(
                "no projection `{name}`; this application has: {}",
                projections
                    .iter()
                    .map(|projection| projection.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            code: ExitCode::from(2),
        })
}

/// The projections `names` names, or all of them when it is empty.
fn chosen<'a>(
    projections: &'a [Arc<dyn ProjectionControl>],
    names: &[String],
) -> Result<Vec<&'a Arc<dyn ProjectionControl>>, Failure> {
    if names.is_empty() {
        Ok(projections.iter().collect())
    } else {
        names.iter().map(|name| named(projections, name)).collect()
    }
}

/// Checks each projection, every one even after a failure; exit 1 unless all are
/// consistent.
async fn verify(chosen: &[&Arc<dyn ProjectionControl>], json: bool) -> Result<ExitCode, Failure> {
    let mut all_consistent = true;
    let mut rows = Vec::new();
    for projection in chosen {
        match projection.check().await {
            Ok(report) => {
                all_consistent &= report.is_consistent();
                if json {
                    rows.push(serde_json::json!({
                        "name": report.projection,
                        "version": report.version,
                        "checkpoint": report.checkpoint,
                        "tables": report.tables,
                        "rows": report.rows,
                        "consistent": report.is_consistent(),
                        "differences": report.differences.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    }));
                } else {
                    println!("{report}");
                    for difference in &report.differences {
                        println!("  {difference}");
                    }
                }
            }
            Err(error) => {
                all_consistent = false;
                let error = factum::error::Report(&*error).to_string();
                if json {
                    rows.push(serde_json::json!({ "name": projection.name(), "error": error }));
                } else {
                    println!("{}: not checked: {error}", projection.name());
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).map_err(failed)?);
    }
    Ok(if all_consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn status(projection: &Arc<dyn ProjectionControl>) -> Result<ProjectionStatus, Failure> {
    projection.status().await.map_err(|error| {
        failed(format!(
            "reading {}: {}",
            projection.name(),
            factum::error::Report(&*error)
        ))
    })
}

fn state(state: VersionState) -> &'static str {
    match state {
        VersionState::Building => "building",
        VersionState::Active => "active",
        VersionState::Retired => "retired",
    }
}

async fn execute(
    command: OperatorCommand,
    projections: &[Arc<dyn ProjectionControl>],
) -> Result<ExitCode, Failure> {
    match command {
        OperatorCommand::Verify { names, json } => {
            verify(&chosen(projections, &names)?, json).await
        }
        OperatorCommand::Projections { json } => {
            let mut rows = Vec::new();
            for projection in projections {
                let status = status(projection).await?;
                for version in &status.versions {
                    rows.push(serde_json::json!({
                        "name": projection.name(),
                        "version": version.version,
                        "current": version.version == status.current_version,
                        "state": state(version.state),
                        "checkpoint": version.checkpoint,
                        "parked": version.parked,
                    }));
                }
                if status.versions.is_empty() {
                    rows.push(serde_json::json!({
                        "name": projection.name(), "version": status.current_version,
                        "current": true, "state": "not built", "checkpoint": 0, "parked": 0,
                    }));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).map_err(failed)?);
            } else {
                println!(
                    "{:<28} {:>7} {:<9} {:>10} {:>6}",
                    "PROJECTION", "VERSION", "STATE", "CHECKPOINT", "PARKED"
                );
                for row in &rows {
                    println!(
                        "{:<28} {:>7} {:<9} {:>10} {:>6}",
                        row["name"].as_str().unwrap_or_default(),
                        format!(
                            "{}{}",
                            row["version"],
                            if row["current"] == true { "*" } else { "" }
                        ),
                        row["state"].as_str().unwrap_or_default(),
                        row["checkpoint"],
                        row["parked"],
                    );
                }
                println!("(* the version the code builds)");
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Rebuild {
            names,
            dry_run,
            yes,
        } => {
            let chosen = chosen(projections, &names)?;
            for projection in &chosen {
                let status = status(projection).await?;
                let checkpoint = status
                    .versions
                    .iter()
                    .find(|version| version.version == status.current_version)
                    .map_or(0, |version| version.checkpoint);
                println!(
                    "would rebuild {} v{}: its read model reset (checkpoint {checkpoint}, {} parked), the whole log replayed into it; readers get \"not active\" meanwhile",
                    projection.name(),
                    status.current_version,
                    status.parked.len()
                );
            }
            if dry_run {
                println!("dry run: nothing rebuilt");
                return Ok(ExitCode::SUCCESS);
            }
            if !yes && !confirmed("rebuild?").map_err(failed)? {
                println!("not confirmed: nothing rebuilt");
                return Ok(ExitCode::FAILURE);
            }
            for projection in chosen {
                let mut bar = factum::projection::progress_bar();
                let applied = projection.rebuild(&mut bar).await.map_err(|error| {
                    failed(format!(
                        "rebuilding {}: {}",
                        projection.name(),
                        factum::error::Report(&*error)
                    ))
                })?;
                println!("rebuilt {}: {applied} events applied", projection.name());
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Parked(ParkedOperation::List { projection }) => {
            let projection = named(projections, &projection)?;
            let status = status(projection).await?;
            println!(
                "{} v{}: {} parked",
                projection.name(),
                status.current_version,
                status.parked.len()
            );
            for parked in &status.parked {
                println!(
                    "{:>10} {} in {} v{} ({} attempts): {}",
                    parked.event.position,
                    parked.event.name,
                    parked.event.stream_id,
                    parked.event.stream_version,
                    parked.attempts,
                    parked.error
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::Parked(ParkedOperation::Replay {
            projection,
            position,
            dry_run,
            yes,
        }) => {
            let projection = named(projections, &projection)?;
            let status = status(projection).await?;
            let Some(parked) = status
                .parked
                .iter()
                .find(|parked| parked.event.position == position)
            else {
                return Err(failed(format!(
                    "{} has no parked event at position {position}",
                    projection.name()
                )));
            };
            println!(
                "would replay {} at position {position} ({} in {} v{}, parked after {} attempts: {}) into {}",
                parked.event.name,
                parked.event.name,
                parked.event.stream_id,
                parked.event.stream_version,
                parked.attempts,
                parked.error,
                projection.name()
            );
            if dry_run {
                println!("dry run: nothing replayed");
                return Ok(ExitCode::SUCCESS);
            }
            if !yes && !confirmed("replay it?").map_err(failed)? {
                println!("not confirmed: nothing replayed");
                return Ok(ExitCode::FAILURE);
            }
            projection.replay_parked(position).await.map_err(|error| {
                failed(format!(
                    "replaying position {position} into {}: {}",
                    projection.name(),
                    factum::error::Report(&*error)
                ))
            })?;
            println!("replayed position {position} into {}", projection.name());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Asks `question` on standard input; only `y` or `yes` confirms.
pub fn confirmed(question: &str) -> Result<bool, String> {
    print!("{question} [y/N] ");
    std::io::stdout()
        .flush()
        .map_err(|error| error.to_string())?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| error.to_string())?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
