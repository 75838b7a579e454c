// A reactor handler is an async fn.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
