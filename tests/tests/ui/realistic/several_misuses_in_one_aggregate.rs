// A new user's first aggregate, with three independent mistakes: `open` takes `&mut self`,
// `renamed` is async, and no method applies `Closed`. All three are reported in one
// build, and the program using the aggregate raises no follow-up error.
use factum::prelude::*;

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Renamed")]
pub struct Renamed {
    pub name: String,
}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Renamed(Renamed),
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
    open: bool,
    name: String,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Account {
    #[handle]
    fn open(&mut self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[handle]
    fn close(&self, _: Close) -> Result<Closed, AccountError> {
        if self.open { Ok(Closed {}) } else { Err(AccountError) }
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    #[apply]
    async fn renamed(&mut self, event: &Renamed) {
        self.name = event.name.clone();
    }
}

fn main() {
    let repository: Repository<Account, MemoryStore> = Repository::new(MemoryStore::new());
    let _ = repository.execute(Open { id: "a".to_owned() });
}
