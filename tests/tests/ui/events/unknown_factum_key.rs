// `rename_all` is not a key of #[factum] on #[derive(Events)].
use factum::{Events, event};

#[event(name = "Opened")]
pub struct Opened {}

#[event(name = "Closed")]
pub struct Closed {}

#[derive(Events)]
#[factum(rename_all = "snake_case")]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

fn main() {}
