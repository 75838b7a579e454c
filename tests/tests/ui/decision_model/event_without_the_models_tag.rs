// A decision model keyed by `course` cannot apply an event that declares no `course`
// tag: no query keyed by it would ever find that event. The error lands on the handler.
use factum::prelude::*;

#[event(name = "CourseDefined", version = 1)]
pub struct CourseDefined {
    #[tag]
    pub course: String,
    pub capacity: u32,
}

#[event(name = "CourseRenamed", version = 1)]
pub struct CourseRenamed {
    pub course: String,
    pub title: String,
}

#[derive(Default)]
pub struct Course {
    capacity: u32,
    title: String,
}

#[decision_model(tags(course))]
impl Course {
    #[apply]
    fn defined(&mut self, event: &CourseDefined) {
        self.capacity = event.capacity;
    }

    #[apply]
    fn renamed(&mut self, event: &CourseRenamed) {
        self.title = event.title.clone();
    }
}

fn main() {}
