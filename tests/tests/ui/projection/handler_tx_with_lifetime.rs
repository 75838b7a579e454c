// The transaction type is `'static`: `Tx<'_>` is not accepted.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Tx<'a>(&'a SqliteTx);

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut Tx<'_>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
