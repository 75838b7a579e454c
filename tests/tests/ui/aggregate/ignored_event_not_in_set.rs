// `ignore_events` names only events of the set.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[event(name = "Renamed")]
pub struct Renamed {}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError, ignore_events = [Renamed])]
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
}

fn main() {}
