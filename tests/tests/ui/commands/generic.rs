// A set names concrete command types.
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
pub enum AccountCommand<T> {
    Open(Open),
    Close(Close),
    Other(T),
}

fn main() {}
