// A reactor handler takes no read-model transaction.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

use factum::projection::sqlite::SqliteTx;

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
