// A projection name names a file or schema: letters, digits and underscores only.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts;

#[projection(name = "account-list")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
