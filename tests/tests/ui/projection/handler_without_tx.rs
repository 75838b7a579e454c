// A projection's #[on] handler takes the read-model transaction.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
