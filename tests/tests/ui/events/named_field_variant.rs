// Each variant is a one-field tuple variant.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed { event: Closed },
}

fn main() {}
