// A decision model applies at least one event.
use factum::prelude::*;

#[derive(Default)]
pub struct Nothing;

#[decision_model(tags(course))]
impl Nothing {
    fn helper(&self) {}
}

fn main() {}
