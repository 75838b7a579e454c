// Events cross threads: a field that is not `Send + Sync` is reported once, at the field,
// not at the event.
use factum::event;
use std::cell::RefCell;

#[event(name = "Opened")]
pub struct Opened {
    pub owner: String,
    pub notes: RefCell<Vec<String>>,
}

fn main() {}
