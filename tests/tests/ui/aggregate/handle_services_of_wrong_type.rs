// The services argument must be `&` the aggregate's `services` type (`()` here).
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

#[derive(Default)]
pub struct Account {
    pub open: bool,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&self, _: Open, _: &u32) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[handle]
    fn close(&self, _: Close) -> Result<Closed, AccountError> {
        Ok(Closed {})
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    #[apply]
    fn closed(&mut self, _: &Closed) {
        self.open = false;
    }
}

fn main() {}
