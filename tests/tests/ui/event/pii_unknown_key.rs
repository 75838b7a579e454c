// `unknown` is not a key of `#[pii(...)]`.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    #[pii(unknown = "x")]
    pub email: String,
}

fn main() {}
