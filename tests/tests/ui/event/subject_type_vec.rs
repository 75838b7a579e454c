// A list of ids cannot name one data subject.
use factum::event;

#[event(name = "HouseholdRegistered")]
pub struct HouseholdRegistered {
    #[subject]
    pub member_ids: Vec<String>,
    #[pii]
    pub address: String,
}

fn main() {}
