// An #[on] handler takes the event.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
