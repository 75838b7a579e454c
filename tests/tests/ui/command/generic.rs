// A command is one concrete type.
use factum::command;

#[command]
pub struct Open<T> {
    #[aggregate_id]
    pub id: String,
    pub value: T,
}

fn main() {}
