// An #[on] handler takes an #[event] type; `Balance` is not one.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Balance {
    pub cents: u64,
}

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn balance(&mut self, _: &Recorded<Balance>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
