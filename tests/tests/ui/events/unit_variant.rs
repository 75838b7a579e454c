// Each variant holds one event.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed,
}

fn main() {}
