// Events cross threads: a field that is neither `Send` nor `Sync` is reported at the
// field, not at the event or at every set and handler naming it.
use factum::prelude::*;
use std::cell::RefCell;

#[event(name = "Opened")]
pub struct Opened {
    pub owner: String,
    pub notes: RefCell<Vec<String>>,
}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
}

fn main() {}
