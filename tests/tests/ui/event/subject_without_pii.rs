// A `#[subject]` but no `#[pii]` field: nothing is declared personal.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    pub email: String,
    pub phone: Option<String>,
}

fn main() {}
