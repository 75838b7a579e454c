// `name` is a string literal.
use factum::command;

#[command(name = 3)]
pub struct Open {
    #[aggregate_id]
    pub id: String,
}

fn main() {}
