// Each variant holds a #[command] type.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Rename {}

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
    Rename(Rename),
}

fn main() {}
