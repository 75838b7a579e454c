// `crate` is given twice.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
#[factum(crate = "factum", crate = "factum")]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

fn main() {}
