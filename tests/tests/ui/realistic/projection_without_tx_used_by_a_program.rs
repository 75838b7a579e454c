// A projection's only handler forgets the transaction: that is the one error, and the
// program registering the projection raises no follow-up error.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

#[derive(Default)]
pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn registers<P: Projection>(_: P) {}

fn main() {
    registers(Accounts);
}
