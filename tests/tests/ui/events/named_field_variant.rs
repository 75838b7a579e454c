// Each variant is a one-field tuple variant.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed { event: Closed },
}

fn main() {}
