// An #[on] handler takes only the event and the transaction.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx, _: u32) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
