// #[event] goes on a type.
use factum::event;

#[event(name = "Opened")]
pub fn opened() {}

fn main() {}
