//! `member-profile [--db FILE]`: the member-profile job on a SQLite store file (default
//! `member-profile.sqlite3`; its keys go beside it in `member-profile.sqlite3.master-key`
//! and `member-profile.sqlite3.signing-key`). `member-profile --registry` prints the
//! registry document instead, which `factum subject export` reads to know which fields
//! are personal.

use std::path::PathBuf;
use std::process::ExitCode;

use factum_example_member_profile::registry;

const USAGE: &str = "usage: member-profile [--db FILE] | --registry";

#[factum::tokio::main(flavor = "current_thread", crate = "factum::tokio")]
async fn main() -> ExitCode {
    let mut db = PathBuf::from("member-profile.sqlite3");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--registry" {
            return match factum::serde_json::to_string_pretty(&registry()) {
                Ok(document) => {
                    println!("{document}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
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
    match factum_example_member_profile::demo::run(&db).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", factum::error::Report(&error));
            ExitCode::FAILURE
        }
    }
}
