// The transaction type must be a read-model transaction.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut String) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
