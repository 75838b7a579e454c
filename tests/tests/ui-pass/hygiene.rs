//! Generated code never depends on the caller's scope: this domain is defined in a module
//! that shadows the prelude's names with unrelated items, and reaches the runtime through
//! a renamed path given with `crate = "..."`.

extern crate factum as renamed;

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
    pub struct From;
    pub struct Into;
    pub struct Default;
    pub struct TryFrom;
    pub struct ToString;
    pub struct Send;
    pub struct Sync;
    pub struct Sized;
    pub struct Iterator;
    pub struct IntoIterator;
    pub struct Clone;
    pub struct Fn;
    pub fn drop() {}
}

/// The domain, written against a scope where every prelude name means something else.
mod domain {
    #![allow(unused_imports, reason = "the shadows only have to be in scope")]

    use super::shadows::*;
    // Glob imports do not shadow the prelude; explicit ones do.
    use super::shadows::{
        Box, Clone, Default, Err, Fn, From, Into, IntoIterator, Iterator, None, Ok, Option, Result,
        Send, Sized, Some, String, Sync, ToString, TryFrom, Vec, drop,
    };

    use renamed::{Commands, Events, aggregate, command, event};

    type Text = ::std::string::String;
    type BankResult<T> = ::core::result::Result<T, BankError>;

    #[event(name = "AccountOpened", version = 1, crate = "renamed")]
    pub struct OpenedV1 {
        pub owner: Text,
    }

    #[event(name = "AccountOpened", version = 2, upcast_from = OpenedV1, crate = "renamed")]
    pub struct Opened {
        pub owner: Text,
        pub currency: Text,
    }

    impl ::core::convert::From<OpenedV1> for Opened {
        fn from(old: OpenedV1) -> Self {
            Opened {
                owner: old.owner,
                currency: ::std::borrow::ToOwned::to_owned("EUR"),
            }
        }
    }

    fn deposited_v1(
        payload: renamed::__private::serde_json::Value,
    ) -> ::core::result::Result<renamed::__private::serde_json::Value, ::core::convert::Infallible>
    {
        ::core::result::Result::Ok(payload)
    }

    #[event(
        name = "Deposited",
        version = 2,
        upcast_json(from = 1, with = deposited_v1),
        crate = "renamed"
    )]
    pub enum Deposited {
        Cash { cents: u64 },
        Transfer(u64),
    }

    #[event(crate = "renamed")]
    pub struct Closed;

    #[derive(Events)]
    #[factum(crate = "renamed")]
    pub enum BankEvent {
        Opened(Opened),
        Deposited(Deposited),
        Closed(Closed),
    }

    #[command(name = "OpenAccount", crate = "renamed")]
    pub struct Open {
        #[aggregate_id]
        pub id: Text,
        pub owner: Text,
    }

    #[command(crate = "renamed")]
    pub struct Deposit(#[aggregate_id] pub u64, pub u64);

    #[command(crate = "renamed")]
    pub struct Close {
        #[aggregate_id]
        pub id: Text,
    }

    #[derive(Commands)]
    #[factum(crate = "renamed")]
    pub enum BankCommand {
        Open(Open),
        Deposit(Deposit),
        Close(Close),
    }

    #[derive(Debug)]
    pub struct BankError;

    impl ::core::fmt::Display for BankError {
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
            f.write_str("refused")
        }
    }

    impl ::std::error::Error for BankError {}

    pub struct Rates;

    #[derive(::core::default::Default)]
    pub struct Account {
        pub balance: u64,
        pub open: bool,
    }

    #[aggregate(
        name = "BankAccount",
        events = BankEvent,
        commands = BankCommand,
        error = BankError,
        services = Rates,
        ignore_events = [Closed],
        crate = "renamed"
    )]
    impl Account {
        #[handle]
        fn open(&self, command: Open) -> BankResult<Opened> {
            ::core::result::Result::Ok(Opened {
                owner: command.owner,
                currency: ::std::borrow::ToOwned::to_owned("EUR"),
            })
        }

        #[handle]
        fn deposit(
            &self,
            command: Deposit,
            _: &Rates,
        ) -> BankResult<::core::option::Option<Deposited>> {
            ::core::result::Result::Ok(::core::option::Option::Some(Deposited::Transfer(command.1)))
        }

        #[handle]
        fn close(&self, _: Close) -> ::core::result::Result<::std::vec::Vec<BankEvent>, BankError> {
            ::core::result::Result::Ok(::std::vec![BankEvent::Closed(Closed)])
        }

        #[apply]
        fn opened(&mut self, _: &Opened) {
            self.open = true;
        }

        #[apply]
        // An explicit unit return type is accepted.
        fn deposited(&mut self, event: &Deposited) -> () {
            self.balance += match event {
                Deposited::Cash { cents } => *cents,
                Deposited::Transfer(cents) => *cents,
            };
        }
    }
}

fn assert_aggregate<A: renamed::Aggregate>() {}

fn main() {
    assert_aggregate::<domain::Account>();
    assert!(<domain::Account as renamed::Aggregate>::NAME == "BankAccount");
}
