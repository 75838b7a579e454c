// `name` is given twice.
use factum::event;

#[event(name = "Opened", name = "AccountOpened")]
pub struct Opened {}

fn main() {}
