// Two fields marked `#[subject]`: an event's personal data belongs to one data subject.
use factum::event;

#[event(name = "MemberReferred")]
pub struct MemberReferred {
    #[subject]
    pub member_id: String,
    #[subject]
    pub referrer_id: String,
    #[pii]
    pub email: String,
}

fn main() {}
