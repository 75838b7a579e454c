// Two types with one event name (two versions of one event) in a set.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[event(name = "Opened", version = 2, upcast_from = Opened)]
pub struct OpenedV2 {}

impl From<Opened> for OpenedV2 {
    fn from(_: Opened) -> Self {
        OpenedV2 {}
    }
}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
    OpenedV2(OpenedV2),
}

fn main() {}
