// #[derive(Commands)] goes on an enum.
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
pub struct AccountCommand {
    pub open: Open,
}

fn main() {}
