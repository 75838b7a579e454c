// #[derive(Events)] goes on an enum.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
pub union AccountEvent {
    pub opened: std::mem::ManuallyDrop<Opened>,
}

fn main() {}
