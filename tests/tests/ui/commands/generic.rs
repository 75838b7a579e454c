// A set names concrete command types.
use factum::{Commands, command};

include!("../../fixtures/account_commands.rs");

#[derive(Commands)]
pub enum AccountCommand<T> {
    Open(Open),
    Close(Close),
    Other(T),
}

fn main() {}
