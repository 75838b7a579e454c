// The tag keys go in parentheses.
use factum::prelude::*;

#[event(name = "CourseDefined", version = 1)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
}

#[derive(Default)]
pub struct Course(bool);

#[decision_model(tags = "course")]
impl Course {
    #[apply]
    fn defined(&mut self, _: &CourseDefined) {
        self.0 = true;
    }
}

fn main() {}
