// A set has at least one command.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand {}

fn main() {}
