// One malformed variant in a command set is one error: the aggregate handling the
// command of that variant, and the program sending it, raise no follow-up error.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close, u8),
}

#[derive(Debug, thiserror::Error)]
#[error("the account refused the command")]
pub struct AccountError;

#[derive(Default)]
pub struct Account {
    open: bool,
}

include!("../../fixtures/account_aggregate.rs");

fn main() {
    let repository: Repository<Account, MemoryStore> = Repository::new(MemoryStore::new());
    let _ = repository.execute(Close { id: "a".to_owned() });
}
