// All handlers write through one transaction type.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

type OtherTx = String;

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn closed(&mut self, _: &Recorded<Closed>, _: &mut OtherTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
