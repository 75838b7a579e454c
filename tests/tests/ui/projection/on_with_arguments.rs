// `#[on]` takes no arguments: the event comes from the parameter type.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on(Opened)]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
