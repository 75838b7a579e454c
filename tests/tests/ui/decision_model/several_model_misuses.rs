// Several misuses of `#[decision_model]` in one impl block, each reported at once, and
// the well-formed handler still makes a model.
use factum::prelude::*;

#[event(name = "CourseDefined", version = 1)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub capacity: u32,
}

#[event(name = "StudentSubscribed", version = 1)]
pub struct StudentSubscribed {
    #[tag]
    pub course: String,
    #[tag]
    pub student: String,
}

#[derive(Default)]
pub struct Course {
    capacity: u32,
    taken: u32,
}

#[decision_model(tags(course, course, "a b"), events = CourseEvents)]
impl Course {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.capacity = event.capacity;
    }

    #[apply]
    fn subscribed(&self, _: &StudentSubscribed) {}

    #[apply]
    fn subscribed_again(&mut self, _: StudentSubscribed) {
        self.taken += 1;
    }

    #[apply]
    fn defined_twice(&mut self, _: &CourseDefined) {}
}

fn main() {}
