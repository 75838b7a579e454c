// #[derive(Events)] goes on an enum.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub struct AccountEvent {
    pub opened: Opened,
}

fn main() {}
