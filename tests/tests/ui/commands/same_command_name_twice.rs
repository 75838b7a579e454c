// Two command types with one name in a set.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[command(name = "Open")]
pub struct OpenNow {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
    OpenNow(OpenNow),
}

fn main() {}
