// A flattened field has no JSON key of its own to encrypt.
use factum::event;
use std::collections::BTreeMap;

#[event(name = "MemberProfileUpdated")]
pub struct MemberProfileUpdated {
    #[subject]
    pub member_id: String,
    #[pii]
    #[serde(flatten)]
    pub details: BTreeMap<String, String>,
}

fn main() {}
