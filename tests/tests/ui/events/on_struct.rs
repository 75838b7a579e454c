// #[derive(Events)] goes on an enum.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub struct AccountEvent {
    pub opened: Opened,
}

fn main() {}
