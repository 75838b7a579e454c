// Values that do not parse stop nothing: a quoted events type, a number where the
// services type belongs and a misspelt key are three errors in one build, and neither `events` nor
// `services` is then reported missing; the program running commands compiles against the
// fallback.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[aggregate(events = "AccountEvent", commands = AccountCommand, error = AccountError, services = 42, snapshott = 1)]
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

fn main() {
    let repository: Repository<Account, MemoryStore> = Repository::new(MemoryStore::new());
    let _ = repository.execute(Open { id: "a".to_owned() });
}
