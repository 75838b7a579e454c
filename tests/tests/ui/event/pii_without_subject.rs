// `#[pii]` fields, but no field says whose data they are: the event needs a `#[subject]`.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    pub member_id: String,
    #[pii]
    pub email: String,
    #[pii(redacted = "[forgotten]")]
    pub phone: Option<String>,
}

fn main() {}
