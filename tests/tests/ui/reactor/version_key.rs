// A reactor has no version: it keeps no read model.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome", version = 2)]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
