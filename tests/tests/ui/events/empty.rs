// A set has at least one event.
use factum::{Events, event};

include!("../../fixtures/account_events.rs");

#[derive(Events)]
pub enum AccountEvent {}

fn main() {}
