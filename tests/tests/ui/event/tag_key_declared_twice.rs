// Two fields may not give the same tag key: a key names one field's value.
use factum::event;

#[event(name = "StudentMoved")]
pub struct StudentMoved {
    #[tag(name = "course")]
    pub from_course: String,
    #[tag(name = "course")]
    pub to_course: String,
}

fn main() {}
