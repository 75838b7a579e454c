// `crate` is given twice.
use factum::event;

#[event(name = "Opened", crate = "factum", crate = "factum")]
pub struct Opened {}

fn main() {}
