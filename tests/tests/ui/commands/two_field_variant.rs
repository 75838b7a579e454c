// Each variant holds exactly one command.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close, Open),
}

fn main() {}
