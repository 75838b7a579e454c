// A handler takes services, but the attribute declares no `services = ...`.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

pub struct Clock;

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&self, _: Open, _: &Clock) -> Result<Opened, AccountError> {
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
