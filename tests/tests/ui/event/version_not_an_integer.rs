// `version` is an integer, not a string.
use factum::event;

#[event(name = "Opened", version = "two")]
pub struct Opened {}

fn main() {}
