// #[projection] goes on an impl block, not on the struct.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");


#[projection(name = "accounts")]
pub struct Accounts {
    pub count: u64,
}

fn main() {}
