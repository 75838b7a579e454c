// #[aggregate] goes on an inherent impl block.
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

pub struct Account {
    pub open: bool,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Default for Account {
    fn default() -> Self {
        Account { open: false }
    }
}

fn main() {}
