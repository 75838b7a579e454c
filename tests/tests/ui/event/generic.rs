// An event is one concrete type.
use factum::event;

#[event(name = "Opened")]
pub struct Opened<T> {
    pub value: T,
}

fn main() {}
