// `name` is a string literal.
use factum::event;

#[event(name = 3)]
pub struct Opened {}

fn main() {}
