// `upcast_from` names an older version of the same event name.
use factum::event;

#[event(name = "Closed", version = 1)]
pub struct Closed {}

#[event(name = "Opened", version = 2, upcast_from = Closed)]
pub struct Opened {}

impl From<Closed> for Opened {
    fn from(_: Closed) -> Self {
        Opened {}
    }
}

fn main() {}
