// The aggregate id is turned into a string.
use factum::command;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AccountId(pub u64);

#[command]
pub struct Open {
    #[aggregate_id]
    pub id: AccountId,
}

fn main() {}
