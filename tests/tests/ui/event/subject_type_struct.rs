// A struct without a `Subject` impl cannot name a data subject.
use factum::event;

#[derive(serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct Member {
    pub id: String,
    pub since: u32,
}

#[event(name = "MemberRegistered")]
pub struct MemberRegistered {
    #[subject]
    pub member: Member,
    #[pii]
    pub email: String,
}

fn main() {}
