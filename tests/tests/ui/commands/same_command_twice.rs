// Each command appears once in a set.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
    OpenAgain(Open),
}

fn main() {}
