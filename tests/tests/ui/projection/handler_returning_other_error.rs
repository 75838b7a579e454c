// An #[on] handler returns `Result<(), ProjectionError>`, not another error type.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
