// A tag key holds letters, digits, `_`, `-` and `.`: the first `:` of a tag ends it.
use factum::event;

#[event(name = "UserNamed")]
pub struct UserNamed {
    #[tag(name = "user:name")]
    pub name: String,
    #[tag(name = "")]
    pub alias: String,
}

fn main() {}
