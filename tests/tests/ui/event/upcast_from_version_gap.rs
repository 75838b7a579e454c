// Version 3 must upcast from version 2, not version 1.
use factum::event;

#[event(name = "Opened", version = 1)]
pub struct OpenedV1 {}

#[event(name = "Opened", version = 3, upcast_from = OpenedV1)]
pub struct Opened {}

impl From<OpenedV1> for Opened {
    fn from(_: OpenedV1) -> Self {
        Opened {}
    }
}

fn main() {}
