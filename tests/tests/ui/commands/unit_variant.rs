// Each variant holds one command.
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
    Close,
}

fn main() {}
