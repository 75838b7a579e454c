// #[derive(Commands)] goes on an enum.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub struct AccountCommand {
    pub open: Open,
}

fn main() {}
