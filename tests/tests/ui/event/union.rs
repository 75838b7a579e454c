// An event is a struct or an enum.
use factum::event;

#[event(name = "Opened")]
pub union Opened {
    pub value: u32,
}

fn main() {}
