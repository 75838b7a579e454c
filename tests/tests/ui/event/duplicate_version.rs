// `version` is given twice.
use factum::event;

#[event(name = "Opened", version = 1, version = 1)]
pub struct Opened {}

fn main() {}
