// A tag names the field its value comes from: a tuple struct's fields have no names.
use factum::event;

#[event(name = "CourseOpened")]
pub struct CourseOpened(#[tag] pub String, pub u32);

fn main() {}
