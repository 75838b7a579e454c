// `rename_all` is not a key of #[factum] on #[derive(Events)].
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
#[factum(rename_all = "snake_case")]
pub enum AccountEvent {
    Opened(Opened),
    Closed(Closed),
}

fn main() {}
