// A misspelt command type in a #[handle] handler is one error, at the misspelling: no
// "missing #[handle]" for the command it meant.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[handle]
    fn close(&self, _: Clsoe) -> Result<Closed, AccountError> {
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
