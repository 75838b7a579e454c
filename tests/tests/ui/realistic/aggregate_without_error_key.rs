// `error = ...` is missing: that is the one error, and the program running commands on
// the aggregate raises no follow-up error.
use factum::prelude::*;

include!("../../fixtures/account_domain.rs");

#[aggregate(events = AccountEvent, commands = AccountCommand)]
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
