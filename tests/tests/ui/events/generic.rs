// A set names concrete event types.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub enum AccountEvent<T> {
    Opened(Opened),
    Closed(Closed),
    Other(T),
}

fn main() {}
