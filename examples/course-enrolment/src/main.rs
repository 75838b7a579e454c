//! `course-enrolment [--db FILE]`: the course-enrolment job on a SQLite store file
//! (default `course-enrolment.sqlite3`).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: course-enrolment [--db FILE]";

#[factum::tokio::main(flavor = "current_thread", crate = "factum::tokio")]
async fn main() -> ExitCode {
    let mut db = PathBuf::from("course-enrolment.sqlite3");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--db", Some(path)) => db = PathBuf::from(path),
            ("--help" | "-h", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match factum_example_course_enrolment::demo::run(&db).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", factum::error::Report(&error));
            ExitCode::FAILURE
        }
    }
}
