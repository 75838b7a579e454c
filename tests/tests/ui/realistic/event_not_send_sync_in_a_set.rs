// An event with a field that is not `Sync`, in a set: the event's error is at the field;
// the set, which holds the event, is not `Sync` either and reports that where it needs
// it (its `EventSet` impl and the members' `Event` bounds). Kept to show that this is
// where such an event's errors stop: nothing beyond the set.
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
