// #[aggregate] goes on an impl block, not on the struct.
use factum::prelude::*;

include!("../../fixtures/account_sets_and_error.rs");

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
#[derive(Default)]
pub struct Account {
    pub open: bool,
}

fn main() {}
