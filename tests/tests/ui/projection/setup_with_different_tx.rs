// #[setup] writes through the handlers' transaction type.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[setup]
    async fn tables(&mut self, _: &mut String) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
