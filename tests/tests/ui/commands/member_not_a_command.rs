// Each variant holds a #[command] type.
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

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Rename {}

#[derive(Commands)]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
    Rename(Rename),
}

fn main() {}
