// The event type is a plain path, without generic arguments.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Vec<Opened>>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
