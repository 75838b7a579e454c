// Tags are stored in the clear, to find events by: a personal field cannot be one.
use factum::event;

#[event(name = "UserRegistered")]
pub struct UserRegistered {
    #[subject]
    #[tag(name = "user")]
    pub user_id: String,
    #[pii]
    #[tag(name = "email")]
    pub email: String,
}

fn main() {}
