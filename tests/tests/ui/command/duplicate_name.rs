// `name` is given twice.
use factum::command;

#[command(name = "Open", name = "OpenAccount")]
pub struct Open {
    #[aggregate_id]
    pub id: String,
}

fn main() {}
