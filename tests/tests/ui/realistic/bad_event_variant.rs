// One malformed variant in a set is one error: the aggregate applying and returning the
// event of that variant raises no false "not an event of the set".
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed { event: Closed },
}

include!("../../fixtures/account_commands.rs");

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
}

include!("../../fixtures/account_aggregate.rs");

fn main() {
    let repository: Repository<Account, MemoryStore> = Repository::new(MemoryStore::new());
    let _ = repository.execute(Close { id: "a".to_owned() });
}
