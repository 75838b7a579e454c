// Version 1 has nothing to upcast from.
use factum::event;

#[event(name = "Opened")]
pub struct OpenedV0 {}

#[event(name = "Opened", version = 1, upcast_from = OpenedV0)]
pub struct Opened {}

fn main() {}
