// A command marks the field that names its aggregate.
use factum::command;

#[command]
pub struct Open {
    pub id: String,
}

fn main() {}
