// `retries` is not a key of #[reactor].
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(retries = 3)]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
