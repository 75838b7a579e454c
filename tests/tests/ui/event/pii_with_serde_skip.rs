// A skipped field is never stored: there is nothing to encrypt.
use factum::event;

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member_id: String,
    #[pii]
    pub email: String,
    #[pii]
    #[serde(skip)]
    pub phone: String,
}

fn main() {}
