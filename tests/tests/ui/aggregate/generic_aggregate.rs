// An aggregate is one concrete type.
use factum::prelude::*;

include!("../../fixtures/account_sets_and_error.rs");

#[derive(Default)]
pub struct Account<T> {
    pub open: bool,
    pub marker: std::marker::PhantomData<T>,
}

#[aggregate(events = AccountEvent, commands = AccountCommand, error = AccountError)]
impl<T> Account<T> {
    #[handle]
    fn open(&self, _: Open) -> Result<Opened, AccountError> {
        Ok(Opened {})
    }

    #[handle]
    fn close(&self, _: Close) -> Result<Closed, AccountError> {
        Ok(Closed {})
    }

    #[apply]
    fn opened(&mut self, _: &Opened) {
        self.open = true;
    }

    #[apply]
    fn closed(&mut self, _: &Closed) {
        self.open = false;
    }
}

fn main() {}
