// #[command] goes on a struct.
use factum::command;

#[command]
pub fn open() {}

fn main() {}
