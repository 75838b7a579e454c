// `upcast_from` needs `From<OpenedV1> for Opened` (or `TryFrom`).
use factum::event;

#[event(name = "Opened", version = 1)]
pub struct OpenedV1 {}

#[event(name = "Opened", version = 2, upcast_from = OpenedV1)]
pub struct Opened {}

fn main() {}
