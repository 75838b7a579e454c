// Each variant is a one-field tuple variant.
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
    Close { command: Close },
}

fn main() {}
