// `redacted = "..."` on a number: the replacement text only fits a text field.
use factum::event;

#[event(name = "MemberBirthYearGiven")]
pub struct MemberBirthYearGiven {
    #[subject]
    pub member_id: String,
    #[pii(redacted = "[forgotten]")]
    pub birth_year: u32,
}

fn main() {}
