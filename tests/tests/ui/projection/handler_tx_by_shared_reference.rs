// The transaction is taken by mutable reference.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
