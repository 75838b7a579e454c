// `#[pii]` written twice on the same field.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    #[pii]
    #[pii(redacted = "[forgotten]")]
    pub email: String,
}

fn main() {}
