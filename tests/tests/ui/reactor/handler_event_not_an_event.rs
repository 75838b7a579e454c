// A reactor handler takes an #[event] type; `String` is not one.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Recorded<String>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
