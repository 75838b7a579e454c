// #[setup] is for projections: a reactor has no read model.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[setup]
    async fn tables(&mut self) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
