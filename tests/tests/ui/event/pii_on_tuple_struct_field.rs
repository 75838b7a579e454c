// A tuple struct's fields have no names: a personal field needs its JSON key.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered(#[subject] pub String, #[pii] pub String);

fn main() {}
