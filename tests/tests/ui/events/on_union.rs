// #[derive(Events)] goes on an enum.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub union AccountEvent {
    pub opened: std::mem::ManuallyDrop<Opened>,
}

fn main() {}
