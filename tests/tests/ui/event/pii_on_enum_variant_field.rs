// Personal data is declared on the named fields of a struct event, not in an enum's cases.
use factum::event;

#[event(name = "ContactChanged")]
pub enum ContactChanged {
    Email {
        #[subject]
        member_id: String,
        #[pii]
        email: String,
    },
    Phone {
        member_id: String,
        phone: String,
    },
}

fn main() {}
