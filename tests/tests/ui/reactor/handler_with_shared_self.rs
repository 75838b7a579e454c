// A reactor handler takes `&mut self`.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    async fn opened(&self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
