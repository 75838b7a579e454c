// #[aggregate] goes on an impl block, not on the struct.
use factum::prelude::*;

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

#[command]
pub struct Open {
    #[aggregate_id]
    pub id: String,
}

#[command]
pub struct Close {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
}

#[derive(Debug, thiserror::Error)]
#[error("the account refused the command")]
pub struct AccountError;

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
#[derive(Default)]
pub struct Account {
    pub open: bool,
}

fn main() {}
