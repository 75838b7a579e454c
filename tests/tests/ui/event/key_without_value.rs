// `name` needs a value.
use factum::event;

#[event(name)]
pub struct Opened {}

fn main() {}
