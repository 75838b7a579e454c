// `#[subject]` written twice on the same field.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    #[subject]
    pub member_id: String,
    #[pii]
    pub email: String,
}

fn main() {}
