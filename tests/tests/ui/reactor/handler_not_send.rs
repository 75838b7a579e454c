// A handler's future is sent between threads: no `Rc` across an await.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome;

#[reactor(name = "welcome")]
impl Welcome {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        let counter = std::rc::Rc::new(1);
        std::future::ready(()).await;
        drop(counter);
        Ok(())
    }
}

fn main() {}
