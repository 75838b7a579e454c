//! The care-task job: a shift on a care ward recorded on the embedded SQLite store, with
//! three projections running side by side and answering queries; run it twice and they
//! resume from their checkpoints. See [`factum_example_care_tasks::demo`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use factum_example_care_tasks::demo::{self, Options};

/// Runs care tasks (created, assigned, completed) with three projections of them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The SQLite file holding the events; created if missing.
    #[arg(long, default_value = "care-tasks.sqlite3")]
    db: PathBuf,
    /// The directory of the read models; by default beside the events file, named
    /// `<db stem>.read-models`.
    #[arg(long)]
    read_models: Option<PathBuf>,
    /// The member whose task history is shown.
    #[arg(long, default_value = "amira")]
    member: String,
    /// Rebuild the three projections from the start of the log (with a progress bar)
    /// instead of running a shift.
    #[arg(long)]
    rebuild: bool,
    /// Serve the care-task service over HTTP on this address (e.g. 127.0.0.1:8080) until
    /// Ctrl-C, instead of running a shift.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "rebuild")]
    serve: Option<std::net::SocketAddr>,
    /// An archive of the store (written by `factum archive`) to read its archived events
    /// from: a rebuild replays them (repeatable).
    #[arg(long = "archive", value_name = "FILE")]
    archives: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Operator commands on the service's projections (on the files of `--db`):
    /// status, rebuild with a progress bar, parked events listed and replayed.
    #[command(subcommand)]
    Ops(factum_codegen::operator::OperatorCommand),
}

/// The projections of the files `options` name, for the operator commands.
async fn operate(
    options: &Options,
) -> Result<Vec<std::sync::Arc<dyn factum::projection::ProjectionControl>>, String> {
    if !options.db.exists() {
        return Err(format!("{} does not exist", options.db.display()));
    }
    let store = options
        .open_store()
        .await
        .map_err(|error| factum::error::Report(&error).to_string())?;
    let dir = options
        .read_models
        .clone()
        .unwrap_or_else(|| demo::read_models_beside(&options.db));
    let read_models = factum::projection::sqlite::SqliteReadModel::open(&dir)
        .await
        .map_err(|error| error.to_string())?;
    Ok(factum_example_care_tasks::serve::projections(
        &store,
        &read_models,
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        db: args.db,
        read_models: args.read_models,
        member: args.member,
        archives: args.archives,
    };
    if let Some(Command::Ops(command)) = args.command {
        return match operate(&options).await {
            Ok(projections) => factum_codegen::operator::run(command, &projections).await,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = match (args.serve, args.rebuild) {
        (Some(address), _) => {
            factum_example_care_tasks::serve::until_stopped(&options, address).await
        }
        (None, true) => demo::rebuild(&options).await,
        (None, false) => demo::run(&options).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
