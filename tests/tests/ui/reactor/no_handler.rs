// A reactor without #[on] handlers reacts to nothing.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    pub fn new() -> Self {
        Welcome
    }
}

fn main() {}
