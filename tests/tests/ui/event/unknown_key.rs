// `colour` is not a key of #[event].
use factum::event;

#[event(name = "Opened", colour = "red")]
pub struct Opened {}

fn main() {}
