// Each variant holds a #[event] type.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Renamed {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
    Renamed(Renamed),
}

fn main() {}
