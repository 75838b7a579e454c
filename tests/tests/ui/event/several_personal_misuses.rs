// Several misuses of the personal field attributes in one event, each reported at once,
// with no follow-up error in the set that names the event.
use factum::{Events, event};

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject(primary)]
    pub member_id: String,
    #[subject]
    pub household_id: String,
    #[pii(redacted = 5)]
    pub email: String,
    #[pii(unknown = "x")]
    pub phone: Option<String>,
    #[pii]
    #[serde(skip)]
    pub notes: String,
}

#[event(name = "MemberLeft")]
pub struct MemberLeft {
    pub member_id: String,
}

#[derive(Events)]
pub enum MemberEvent {
    Registered(MemberRegistered),
    Left(MemberLeft),
}

fn main() {}
