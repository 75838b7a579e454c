// Each event appears once in a set.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
    OpenedAgain(Opened),
}

fn main() {}
