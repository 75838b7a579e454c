// A name that is no string, an upcast function that is no path and an unknown key: three
// errors in one build, and no follow-up about the upcast path.
use factum::prelude::*;

#[event(name = Opened, version = 2, upcast_json(from = 1, with = "upcast"), colour = "red")]
pub struct Opened {}

#[derive(Events)]
pub enum AccountEvent {
    Opened(Opened),
}

fn main() {}
