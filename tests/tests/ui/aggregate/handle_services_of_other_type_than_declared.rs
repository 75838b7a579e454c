// The services argument names another type than `services = ...` declares: reported at the argument.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError, services = String)]
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
