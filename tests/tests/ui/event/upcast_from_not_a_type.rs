// `upcast_from` is a type.
use factum::event;

#[event(name = "Opened", version = 2, upcast_from = "OpenedV1")]
pub struct Opened {}

fn main() {}
