// Tags are declared on the named fields of a struct event, not in an enum's cases.
use factum::event;

#[event(name = "SeatChanged")]
pub enum SeatChanged {
    Taken {
        #[tag(name = "course")]
        course_id: String,
    },
    Freed {
        course_id: String,
    },
}

fn main() {}
