// `rename_all` is not a key of #[factum] on #[derive(Commands)].
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
#[factum(rename_all = "snake_case")]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
}

fn main() {}
