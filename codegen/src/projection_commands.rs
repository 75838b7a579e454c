//! `factum projections` and `factum parked list|drop`: the state of an application's
//! projections — in a SQLite read-model directory or a PostgreSQL database's read-model
//! catalog — each version's state, checkpoint, lag behind the store's head and dead
//! letters, and the dead letters themselves.
//!
//! Replaying a parked event needs the projection's handler, which only the application
//! has: it calls `Projector::replay_parked`. Dropping one needs nothing but the read
//! model, so the command line does it, after showing what it would do and asking.

use std::path::Path;
use std::process::ExitCode;

use factum::projection::postgres::PostgresReadModel;
use factum::projection::sqlite::SqliteReadModel;
use factum::projection::{ReadModel, ReadModelTx, Target, VersionState};
use factum::store::{EventStore, StoreError};
use serde_json::json;

use crate::inspect::{Db, Output, print_json, print_table};
use crate::store_commands::{block_on, failed};

/// The read models a command works on: a SQLite directory, or the read-model catalog of
/// a PostgreSQL database given by its URL.
pub(crate) enum Models {
    Sqlite(SqliteReadModel),
    Postgres(PostgresReadModel),
}

impl Models {
    pub(crate) async fn open(spec: &str) -> Result<Self, String> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return PostgresReadModel::connect(spec)
                .await
                .map(Models::Postgres)
                .map_err(failed);
        }
        let dir = Path::new(spec);
        if !dir.is_dir() {
            return Err(format!("{spec} is not a directory"));
        }
        SqliteReadModel::open(dir)
            .await
            .map(Models::Sqlite)
            .map_err(failed)
    }

    pub(crate) async fn names(&self) -> Result<Vec<String>, String> {
        match self {
            Self::Sqlite(models) => models.names().await,
            Self::Postgres(models) => models.names().await,
        }
        .map_err(failed)
    }
}

/// Runs `$body` with `$models` bound to the read models `$m` holds, whichever kind.
macro_rules! on_models {
    ($m:expr, $models:ident => $body:expr) => {
        match $m {
            crate::projection_commands::Models::Sqlite($models) => $body,
            crate::projection_commands::Models::Postgres($models) => $body,
        }
    };
}

/// Prints every version of every projection in `read_models`, with its lag behind the
/// head of the store in `db`. Exits 1 when a checkpoint is past the head: the log moved
/// back under the read models (a restore of an older backup, say), so they hold events
/// the log no longer has and must be rebuilt.
pub fn status(db: &str, read_models: &str, output: Output) -> Result<ExitCode, String> {
    block_on(async {
        let models = Models::open(read_models).await?;
        on_store!(Db::open_spec(db).await?, store => status_of(&store, &models, output).await)
    })
}

async fn status_of(
    store: &impl EventStore,
    models: &Models,
    output: Output,
) -> Result<ExitCode, String> {
    {
        let head = store.head().await.map_err(failed)?;
        let head_position = head.map_or(0, |head| head.position);
        let mut rows = Vec::new();
        for name in models.names().await? {
            let versions =
                on_models!(models, models => models.versions(named(&name)).await.map_err(failed)?);
            for version in versions {
                let behind = head_position.saturating_sub(version.checkpoint);
                // The age of the oldest event not applied: how late the model is (not
                // known when that event is archived).
                let late = if behind > 0 {
                    match store.read_all(version.checkpoint, 1).await {
                        Ok(next) => next
                            .first()
                            .map(|next| {
                                (factum::chrono::Utc::now() - next.timestamp)
                                    .num_milliseconds()
                                    .max(0) as f64
                                    / 1000.0
                            })
                            .unwrap_or(0.0),
                        Err(StoreError::Archived { .. }) => f64::NAN,
                        Err(error) => return Err(failed(error)),
                    }
                } else {
                    0.0
                };
                rows.push(json!({
                    "name": name,
                    "version": version.version,
                    "state": state(version.state),
                    "checkpoint": version.checkpoint,
                    "head": head_position,
                    "lag_events": behind,
                    "lag_seconds": late,
                    "parked": version.parked,
                }));
            }
        }
        let ahead: Vec<String> = rows
            .iter()
            .filter(|row| row["checkpoint"].as_u64() > row["head"].as_u64())
            .map(|row| {
                format!(
                    "{} v{}",
                    row["name"].as_str().unwrap_or_default(),
                    row["version"]
                )
            })
            .collect();
        match output {
            Output::Json => print_json(&json!({ "projections": rows, "ahead_of_the_log": ahead }))?,
            Output::Table => {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|row| {
                        [
                            "name",
                            "version",
                            "state",
                            "checkpoint",
                            "head",
                            "lag_events",
                        ]
                        .iter()
                        .map(|key| match &row[*key] {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .chain([
                            row["lag_seconds"]
                                .as_f64()
                                .map_or_else(|| "?".to_owned(), |late| format!("{late:.1}s")),
                            row["parked"].to_string(),
                        ])
                        .collect()
                    })
                    .collect();
                print_table(
                    &[
                        "PROJECTION",
                        "VERSION",
                        "STATE",
                        "CHECKPOINT",
                        "HEAD",
                        "LAG",
                        "LATE",
                        "PARKED",
                    ],
                    &cells,
                    true,
                );
                for projection in &ahead {
                    println!(
                        "{projection}: its checkpoint is past the head of the log ({head_position}): \
                         the log moved back under it; rebuild it"
                    );
                }
            }
        }
        Ok(if ahead.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Which projection version's dead letters.
pub struct Parked<'a> {
    /// The read models: a SQLite directory or a PostgreSQL URL.
    pub read_models: &'a str,
    /// The projection's name.
    pub projection: &'a str,
    /// Its version; the active one if not given.
    pub version: Option<u32>,
}

/// Prints the events parked for a projection version.
pub fn parked_list(parked: &Parked<'_>, output: Output) -> Result<ExitCode, String> {
    block_on(async {
        let models = Models::open(parked.read_models).await?;
        let events = on_models!(&models, models => {
            let target = target(models, parked).await?;
            models.parked(target).await.map_err(failed)?
        });
        match output {
            Output::Json => print_json(&events)?,
            Output::Table => {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|parked| {
                        vec![
                            parked.event.position.to_string(),
                            parked.event.stream_id.clone(),
                            format!("{} v{}", parked.event.name, parked.event.schema_version),
                            parked.attempts.to_string(),
                            parked.error.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &["POSITION", "STREAM", "EVENT", "ATTEMPTS", "ERROR"],
                    &rows,
                    true,
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Drops the event parked at `position`: it is never applied. Shows what it would do;
/// with `dry_run` stops there; otherwise asks on standard input unless `yes`.
pub fn parked_drop(
    parked: &Parked<'_>,
    position: u64,
    dry_run: bool,
    yes: bool,
) -> Result<ExitCode, String> {
    block_on(async {
        on_models!(Models::open(parked.read_models).await?, models => {
            drop_parked(&models, parked, position, dry_run, yes).await
        })
    })
}

async fn drop_parked(
    models: &impl ReadModel,
    parked: &Parked<'_>,
    position: u64,
    dry_run: bool,
    yes: bool,
) -> Result<ExitCode, String> {
    {
        let target = target(models, parked).await?;
        let events = models.parked(target).await.map_err(failed)?;
        let Some(event) = events
            .iter()
            .find(|parked| parked.event.position == position)
        else {
            return Err(format!(
                "{target} has no event parked at position {position}"
            ));
        };
        println!(
            "would drop from {target}'s dead letters: position {position}, {} v{} of {} ({} attempt(s): {})",
            event.event.name,
            event.event.schema_version,
            event.event.stream_id,
            event.attempts,
            event.error
        );
        if dry_run {
            println!("dry run: nothing dropped");
            return Ok(ExitCode::SUCCESS);
        }
        if !yes && !factum_codegen::operator::confirmed("drop it?")? {
            println!("not confirmed: nothing dropped");
            return Ok(ExitCode::FAILURE);
        }
        // In a transaction of the target, its checkpoint kept as it is.
        let mut tx = models.begin(target).await.map_err(failed)?;
        let checkpoint = tx.checkpoint().unwrap_or(0);
        let dropped = models.unpark(&mut tx, position).await.map_err(failed)?;
        models.commit(tx, checkpoint).await.map_err(failed)?;
        println!(
            "{}",
            if dropped {
                "dropped"
            } else {
                "already gone: nothing dropped"
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}

async fn target(models: &impl ReadModel, parked: &Parked<'_>) -> Result<Target, String> {
    let name = named(parked.projection);
    let versions = models.versions(name).await.map_err(failed)?;
    let version = match parked.version {
        Some(version) => versions
            .iter()
            .find(|status| status.version == version)
            .map(|status| status.version)
            .ok_or_else(|| format!("{} has no version {version}", parked.projection))?,
        None => versions
            .iter()
            .find(|status| status.state == VersionState::Active)
            .map(|status| status.version)
            .ok_or_else(|| {
                format!(
                    "{} has no active version: name one with --version",
                    parked.projection
                )
            })?,
    };
    Ok(Target { name, version })
}

/// `name` for the life of the process, as read models take projection names (projections
/// name themselves with constants): the command line makes one per name it is given,
/// once.
pub(crate) fn named(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

fn state(state: VersionState) -> &'static str {
    match state {
        VersionState::Building => "building",
        VersionState::Active => "active",
        VersionState::Retired => "retired",
    }
}
