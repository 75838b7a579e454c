// `#[aggregate_id]` takes no arguments.
use factum::command;

#[command]
pub struct Open {
    #[aggregate_id(account)]
    pub id: String,
}

fn main() {}
