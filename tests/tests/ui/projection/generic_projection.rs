// A projection is one concrete type.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

pub struct Accounts<T>(std::marker::PhantomData<T>);

#[projection(name = "accounts")]
impl<T: Send + 'static> Accounts<T> {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn closed(&mut self, _: &Recorded<Closed>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
