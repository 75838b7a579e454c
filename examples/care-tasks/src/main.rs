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
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        db: args.db,
        read_models: args.read_models,
        member: args.member,
    };
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
