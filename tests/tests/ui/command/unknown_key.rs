// `version` is not a key of #[command].
use factum::command;

#[command(name = "Open", version = 2)]
pub struct Open {
    #[aggregate_id]
    pub id: String,
}

fn main() {}
