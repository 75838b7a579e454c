//! factum's main job: the order lifecycle of a web shop, a shift of care tasks with three
//! projections running side by side, eligibility checks from a domain crate that
//! depends on factum alone, a member profile whose personal data is sealed, exported and
//! forgotten, then course enrolment decided across entities.
//!
//! Each keeps its data in files under `--dir` (default: the working directory):
//! `orders.sqlite3`, `care-tasks.sqlite3`, `eligibility.sqlite3`, `member-profile.sqlite3`
//! (its keys beside it, `member-profile.sqlite3.master-key` and `.signing-key`),
//! `course-enrolment.sqlite3`, and the read models in
//! `care-tasks.read-models/` and `eligibility.read-models/`. Run it again to see the order history grow and the
//! projections resume from their checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use factum_example_care_tasks::demo as care_tasks;
use factum_example_course_enrolment::demo as course_enrolment;
use factum_example_eligibility::demo as eligibility;
use factum_example_member_profile::demo as member_profile;
use factum_example_orders::demo as orders;

/// Runs factum's example domains end to end: orders, care tasks with projections,
/// eligibility checks, then a member profile's personal data.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The directory of the SQLite files and read models; created if missing.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(error) = std::fs::create_dir_all(&args.dir) {
        eprintln!("error: cannot create {}: {error}", args.dir.display());
        return ExitCode::FAILURE;
    }

    banner("the order lifecycle (examples/orders)");
    let storage = orders::Storage::Sqlite(args.dir.join("orders.sqlite3"));
    if let Err(error) = orders::run(&storage).await {
        return failed("orders", error.as_ref());
    }

    banner("care tasks with three projections (examples/care-tasks)");
    let options = care_tasks::Options::new(args.dir.join("care-tasks.sqlite3"));
    if let Err(error) = care_tasks::run(&options).await {
        return failed("care tasks", &error);
    }

    banner("eligibility checks, a domain crate on factum alone (examples/eligibility)");
    if let Err(error) = eligibility::run(&args.dir.join("eligibility.sqlite3")).await {
        return failed("eligibility", &error);
    }

    banner("personal data: sealed, exported, forgotten, verified (examples/member-profile)");
    if let Err(error) = member_profile::run(&args.dir.join("member-profile.sqlite3")).await {
        return failed("member profile", &error);
    }

    banner("decisions across entities: course enrolment (examples/course-enrolment)");
    if let Err(error) = course_enrolment::run(&args.dir.join("course-enrolment.sqlite3")).await {
        return failed("course enrolment", &error);
    }
    ExitCode::SUCCESS
}

fn banner(title: &str) {
    println!("\n######## {title}\n");
}

fn failed(job: &str, error: &dyn std::error::Error) -> ExitCode {
    eprintln!("error in the {job} job: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    ExitCode::FAILURE
}
