// Each event appears once in a set.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
    OpenedAgain(Opened),
}

fn main() {}
