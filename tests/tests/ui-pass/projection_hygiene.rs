//! `#[projection]` and `#[reactor]` expand to code that never depends on the caller's
//! scope: the consumers are written in a module that shadows the prelude's names with
//! unrelated items, and reach the runtime through a renamed path given with
//! `crate = "..."`. The handlers use every accepted spelling of the event parameter.

extern crate factum as renamed;

/// The events, outside the shadowing module (the serde and schemars derives that
/// `#[event]` adds are not themselves free of the prelude).
pub mod events {
    use renamed::event;

    #[event(name = "TaskCreated", crate = "renamed")]
    pub struct Created {
        pub title: String,
    }

    #[event(name = "TaskDone", crate = "renamed")]
    pub struct Done {}

    #[event(name = "TaskArchived", crate = "renamed")]
    pub struct Archived {}
}

#[allow(dead_code, reason = "each shadowing item only has to exist")]
mod shadows {
    pub struct Result;
    pub struct Option;
    pub struct Ok;
    pub struct Err;
    pub struct Some;
    pub struct None;
    pub struct Box;
    pub struct Vec;
    pub struct String;
    pub struct Send;
    pub struct Sync;
    pub struct Future;
    pub struct Event;
    pub struct RecordedEvent;
    pub struct Projection;
    pub struct Reactor;
}

mod consumers {
    #![allow(unused_imports, reason = "the shadows only have to be in scope")]

    use super::events::{self, Archived, Created};
    use super::shadows::*;
    // Glob imports do not shadow the prelude; explicit ones do.
    use super::shadows::{
        Box, Err, Event, Future, None, Ok, Option, Projection, Reactor, RecordedEvent, Result,
        Send, Some, String, Sync, Vec,
    };

    use renamed::projection::sqlite::SqliteTx;
    use renamed::projection::{ProjectionError, Recorded};
    use renamed::{projection, reactor};

    type Outcome = ::core::result::Result<(), ProjectionError>;

    pub struct TaskList {
        pub seen: u64,
    }

    #[projection(name = "task_list", version = 3, crate = "renamed")]
    impl TaskList {
        #[setup]
        async fn tables(&mut self, tx: &mut SqliteTx) -> Outcome {
            tx.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, title TEXT)", ())?;
            ::core::result::Result::Ok(())
        }

        #[on]
        async fn created(&mut self, event: &Recorded<Created>, tx: &mut SqliteTx) -> Outcome {
            self.seen += 1;
            tx.execute(
                "INSERT INTO tasks VALUES (?1, ?2)",
                (event.stream_id(), &event.title),
            )?;
            ::core::result::Result::Ok(())
        }

        #[on]
        async fn done(&mut self, _: &Recorded<'_, events::Done>, _: &mut SqliteTx) -> Outcome {
            self.seen += 1;
            ::core::result::Result::Ok(())
        }

        #[on]
        async fn archived<'r>(&mut self, _: &'r Recorded<'r, Archived>, _: &mut SqliteTx) -> Outcome {
            self.seen += 1;
            ::core::result::Result::Ok(())
        }

        /// Not a handler: left alone.
        pub fn seen(&self) -> u64 {
            self.seen
        }
    }

    pub struct Mailer;

    #[reactor(crate = "renamed")]
    impl Mailer {
        #[on]
        async fn done(&mut self, _: &Recorded<events::Done>) -> Outcome {
            ::core::result::Result::Ok(())
        }
    }
}

fn assert_projection<P: renamed::projection::Projection>() {}
fn assert_reactor<R: renamed::projection::Reactor>() {}

fn main() {
    use renamed::projection::{Projection, Reactor};

    assert_projection::<consumers::TaskList>();
    assert_reactor::<consumers::Mailer>();
    assert_eq!(consumers::TaskList::NAME, "task_list");
    assert_eq!(consumers::TaskList::VERSION, 3);
    assert_eq!(
        consumers::TaskList::EVENTS,
        ["TaskCreated", "TaskDone", "TaskArchived"]
    );
    assert_eq!(consumers::Mailer::NAME, "Mailer");
    assert_eq!(consumers::Mailer::EVENTS, ["TaskDone"]);
    assert_eq!(consumers::TaskList { seen: 0 }.seen(), 0);
}
