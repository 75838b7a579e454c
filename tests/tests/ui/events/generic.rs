// A set names concrete event types.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent<T> {
    Opened(Opened),
    Closed(Closed),
    Other(T),
}

fn main() {}
