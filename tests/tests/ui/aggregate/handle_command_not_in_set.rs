// `Rename` is a command, but not one of `AccountCommand`.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[command]
pub struct Rename {
    #[aggregate_id]
    pub id: String,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
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

    #[handle]
    fn rename(&self, _: Rename) -> Result<(), AccountError> {
        Ok(())
    }
}

fn main() {}
