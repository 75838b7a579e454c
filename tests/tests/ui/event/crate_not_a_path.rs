// `crate` is a path.
use factum::event;

#[event(name = "Opened", crate = "not a path")]
pub struct Opened {}

fn main() {}
