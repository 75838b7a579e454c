// A reactor is one concrete type.
use factum::prelude::*;

include!("../../fixtures/account_events.rs");

pub struct Welcome<T>(std::marker::PhantomData<T>);

#[reactor(name = "welcome")]
impl<T: Send + 'static> Welcome<T> {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
