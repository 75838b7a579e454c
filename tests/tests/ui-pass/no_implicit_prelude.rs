//! The set derives and `#[aggregate]` expand to code that needs nothing from the caller's
//! prelude. The events and commands are defined outside the `#[no_implicit_prelude]`
//! module, because the serde and schemars derives that `#[event]`/`#[command]` add are
//! not themselves prelude-free (schemars' `json_internal` calls `.into()`).

use factum::{command, event};

#[event]
pub struct Pinged {
    pub count: u32,
}

#[command]
pub struct Ping {
    #[aggregate_id]
    pub id: String,
}

#[derive(Debug)]
pub struct PingError;

impl std::fmt::Display for PingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for PingError {}

#[no_implicit_prelude]
mod no_prelude {
    use super::{Ping, PingError, Pinged};
    use ::factum::{Commands, Events, aggregate};

    #[derive(Events)]
    pub enum PingEvent {
        Pinged(Pinged),
    }

    #[derive(Commands)]
    pub enum PingCommand {
        Ping(Ping),
    }

    #[derive(::core::default::Default)]
    pub struct Pinger {
        pub count: u32,
    }

    #[aggregate(events = PingEvent, commands = PingCommand, error = PingError)]
    impl Pinger {
        #[handle]
        fn ping(&self, _: Ping) -> ::core::result::Result<Pinged, PingError> {
            ::core::result::Result::Ok(Pinged {
                count: self.count + 1,
            })
        }

        #[apply]
        fn pinged(&mut self, event: &Pinged) {
            self.count = event.count;
        }
    }
}

fn assert_aggregate<A: factum::Aggregate>() {}

fn main() {
    assert_aggregate::<no_prelude::Pinger>();
}
