//! The order job: the order lifecycle end to end, printed as it happens.
//!
//! It keeps its events in a SQLite file (`orders.sqlite3` in the working directory, or
//! `--db PATH`; `--in-memory` for a throwaway store), so every run adds to the same
//! history. See [`factum_example_orders::demo`] for what it shows.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use factum_example_orders::demo::{self, Failure, Storage};

/// Runs the order lifecycle of the example shop against a factum event store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The SQLite file holding the events; created if missing.
    #[arg(long, default_value = "orders.sqlite3")]
    db: PathBuf,
    /// Keep the events in memory instead, for this run only.
    #[arg(long, conflicts_with = "db")]
    in_memory: bool,
    /// Print the domain's schema registry (JSON, for `factum schema ...`) and exit.
    #[arg(long)]
    registry: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.registry {
        demo::registry_json().map(|json| println!("{json}"))
    } else if args.in_memory {
        demo::run(&Storage::InMemory).await
    } else {
        demo::run(&Storage::Sqlite(args.db)).await
    };
    report(result)
}

fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
