// Each variant holds exactly one event.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed, Opened),
}

fn main() {}
