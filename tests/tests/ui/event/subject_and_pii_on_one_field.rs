// The subject's id is also marked `#[pii]`: it must stay in the clear, to find the key.
// The other `#[pii]` field still has its subject: no error about a missing `#[subject]`.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    #[pii]
    pub member_id: String,
    #[pii]
    pub email: String,
}

fn main() {}
