// `#[subject]` takes no arguments.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject(x)]
    pub member_id: String,
    #[pii]
    pub email: String,
}

fn main() {}
