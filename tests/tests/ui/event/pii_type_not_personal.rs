// A `#[pii]` field whose type has no `Personal` impl: it has no value to read as once
// its subject is forgotten.
use factum::event;

#[derive(serde::Serialize, serde::Deserialize, factum::schemars::JsonSchema)]
#[schemars(crate = "factum::schemars")]
pub struct PostalAddress {
    pub street: String,
    pub city: String,
    pub postcode: String,
}

#[event(name = "MemberMoved")]
pub struct MemberMoved {
    #[subject]
    pub member_id: String,
    #[pii]
    pub address: PostalAddress,
}

fn main() {}
