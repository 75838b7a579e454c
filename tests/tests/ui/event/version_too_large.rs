// A version is a `u32`.
use factum::event;

#[event(name = "Opened", version = 5000000000)]
pub struct Opened {}

fn main() {}
