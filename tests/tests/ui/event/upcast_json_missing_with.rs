// `upcast_json` needs `with`.
use factum::event;

#[event(name = "Opened", version = 2, upcast_json(from = 1))]
pub struct Opened {}

fn main() {}
