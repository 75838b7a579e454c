// Two #[on] handlers for two versions of `Opened`: one name, so one handler.
use factum::prelude::*;
use factum::projection::sqlite::SqliteTx;

include!("../../fixtures/account_events.rs");

#[event(name = "Opened", version = 2, upcast_from = Opened)]
pub struct OpenedV2 {
    pub owner: Option<String>,
}

impl From<Opened> for OpenedV2 {
    fn from(_: Opened) -> Self {
        OpenedV2 { owner: None }
    }
}

pub struct Accounts;

#[projection(name = "accounts")]
impl Accounts {
    #[on]
    async fn opened(&mut self, _: &Recorded<Opened>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }

    #[on]
    async fn opened_v2(&mut self, _: &Recorded<OpenedV2>, _: &mut SqliteTx) -> Result<(), ProjectionError> {
        Ok(())
    }
}

fn main() {}
