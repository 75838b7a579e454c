// A command addresses exactly one aggregate.
use factum::command;

#[command]
pub struct Transfer {
    #[aggregate_id]
    pub from: String,
    #[aggregate_id]
    pub to: String,
}

fn main() {}
