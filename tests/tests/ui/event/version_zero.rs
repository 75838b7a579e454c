// Versions start at 1.
use factum::event;

#[event(name = "Opened", version = 0)]
pub struct Opened {}

fn main() {}
