// Each variant holds a #[event] type.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Renamed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
    Renamed(Renamed),
}

fn main() {}
