// Each variant is a one-field tuple variant.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close { command: Close },
}

fn main() {}
