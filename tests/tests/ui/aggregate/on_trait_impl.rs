// #[aggregate] goes on an inherent impl block.
use factum::prelude::*;

include!("../../fixtures/account_sets_and_error.rs");

pub struct Account {
    pub open: bool,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl Default for Account {
    fn default() -> Self {
        Account { open: false }
    }
}

fn main() {}
