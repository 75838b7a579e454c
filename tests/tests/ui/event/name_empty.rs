// A name is non-empty.
use factum::event;

#[event(name = "")]
pub struct Opened {}

fn main() {}
