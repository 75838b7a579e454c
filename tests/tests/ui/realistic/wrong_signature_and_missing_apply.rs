// A handler with a wrong signature does not hide the missing #[apply]: both are reported
// in the same build.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[handle]
    fn close(&self, _: Close) {}

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }
}

fn main() {}
