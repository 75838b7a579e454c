// `redacted` is a string literal, not a number.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    #[pii(redacted = 5)]
    pub email: String,
}

fn main() {}
