// `crate` is given twice.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
#[factum(crate = "factum", crate = "factum")]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

fn main() {}
