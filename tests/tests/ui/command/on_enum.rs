// #[command] goes on a struct.
use factum::command;

#[command]
pub enum Open {
    Now { id: String },
}

fn main() {}
