// A name contains no whitespace.
use factum::event;

#[event(name = "Account Opened")]
pub struct Opened {}

fn main() {}
