// A `#[tag]` field whose type has no `TagValue` impl: a tag's value is text.
use factum::event;

#[derive(serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct Room {
    pub building: String,
    pub number: u32,
}

#[event(name = "CourseMoved")]
pub struct CourseMoved {
    #[tag(name = "course")]
    pub course_id: String,
    #[tag(name = "room")]
    pub room: Room,
}

fn main() {}
