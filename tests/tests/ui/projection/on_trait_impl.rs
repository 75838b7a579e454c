// #[projection] goes on an inherent impl block, not a trait impl.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Default for Accounts {
    fn default() -> Self {
        Accounts
    }
}

fn main() {}
