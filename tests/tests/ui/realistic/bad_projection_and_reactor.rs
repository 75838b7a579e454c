// A projection and a reactor with a mistake each, used by a program: each mistake is
// reported once, and the program raises no follow-up error.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

#[derive(Default)]
pub struct Accounts;

#[projection(name = "accounts", version = "2")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn closed(&self, _: &Recorded<Closed>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

pub struct Mailer;

#[reactor(name = "mailer")]
impl Mailer {
    #[on]
    fn opened(&mut self, _: &Recorded<Opened>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn uses<P: Projection, R: Reactor>(_: P, _: R) {}

fn main() {
    uses(Accounts, Mailer);
}
