// `#[factum(...)]` belongs on the set enum; on a variant or a field it means nothing and
// must be rejected, not silently ignored.
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[derive(Events)]
pub enum AccountEvent {
    #[factum(crate = "factum")]
    Opened(Opened),
}

fn main() {}
