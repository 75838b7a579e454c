// #[reactor] goes on an impl block.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");


#[reactor(name = "welcome")]
pub struct Welcome {
    pub sent: u64,
}

fn main() {}
