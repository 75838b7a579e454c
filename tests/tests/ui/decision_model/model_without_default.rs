// A decision model starts from `Default`.
use factum::prelude::*;

#[event(name = "CourseDefined", version = 1)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
}

pub struct Course(bool);

#[decision_model(tags(course))]
impl Course {
    #[apply]
    fn defined(&mut self, _: &CourseDefined) {
        self.0 = true;
    }
}

fn main() {}
