// Two reactor handlers for `Closed`, spelled `Closed` and `crate::Closed`.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    async fn closed(&mut self, _: &Recorded<Closed>) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn closed_again(&mut self, _: &Recorded<crate::Closed>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
