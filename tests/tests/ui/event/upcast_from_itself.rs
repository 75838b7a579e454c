// An event cannot upcast from its own type.
use factum::event;

#[event(name = "Opened", version = 2, upcast_from = Opened)]
pub struct Opened {}

fn main() {}
