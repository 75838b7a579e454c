// Each command appears once in a set.
use factum::{Commands, command};

#[command]
pub struct Open {
    #[aggregate_id]
    pub id: String,
}

#[command]
pub struct Close {
    #[aggregate_id]
    pub id: String,
}

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
    OpenAgain(Open),
}

fn main() {}
