// `rename_all` is not a key of #[factum] on #[derive(Commands)].
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
#[factum(rename_all = "snake_case")]
pub enum AccountCommand {
    Open(Open),
    Close(Close),
}

fn main() {}
