//! Procedural macros of [factum](https://docs.rs/factum). Use them through the `factum`
//! crate, which re-exports them and provides the runtime their expansions call.
//!
//! Each macro parses its input into a model, checks the model (collecting every error
//! with the span of the offending tokens), then expands; see the module of each.
#![warn(missing_docs)]

mod aggregate;
mod attr;
mod command;
mod ctxt;
mod decision_model;
mod derives;
mod docs;
mod event;
mod field_attrs;
mod impl_block;
mod personal;
mod projection;
mod respan;
mod set;
mod tags;

use proc_macro::TokenStream;

/// Makes a struct or enum an event with a stable name and version; see `factum::event`.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    event::expand(args.into(), item.into()).into()
}

/// Makes a struct a command addressed by its `#[aggregate_id]` field; see `factum::command`.
#[proc_macro_attribute]
pub fn command(args: TokenStream, item: TokenStream) -> TokenStream {
    command::expand(args.into(), item.into()).into()
}

/// Implements an aggregate from an impl block of `#[handle]` and `#[apply]` methods; see
/// `factum::aggregate`.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, item: TokenStream) -> TokenStream {
    aggregate::expand(args.into(), item.into()).into()
}

/// Implements `DecisionModel` from an impl block of `#[apply]` methods, keyed by the tags
/// it names; see `factum::decision_model`.
#[proc_macro_attribute]
pub fn decision_model(args: TokenStream, item: TokenStream) -> TokenStream {
    decision_model::expand(args.into(), item.into()).into()
}

/// Implements `Projection` from an impl block of `#[on]` handlers and an optional
/// `#[setup]` method; see `factum::projection`.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::expand(projection::Kind::Projection, args.into(), item.into()).into()
}

/// Implements `Reactor` from an impl block of `#[on]` handlers; see `factum::reactor`.
#[proc_macro_attribute]
pub fn reactor(args: TokenStream, item: TokenStream) -> TokenStream {
    projection::expand(projection::Kind::Reactor, args.into(), item.into()).into()
}

/// Implements `EventSet` for an enum of events; see `factum::Events`.
#[proc_macro_derive(Events, attributes(factum))]
pub fn derive_events(input: TokenStream) -> TokenStream {
    set::expand(set::Kind::Events, input.into()).into()
}

/// Implements `CommandSet` for an enum of commands; see `factum::Commands`.
#[proc_macro_derive(Commands, attributes(factum))]
pub fn derive_commands(input: TokenStream) -> TokenStream {
    set::expand(set::Kind::Commands, input.into()).into()
}

#[cfg(test)]
mod expansion_tests;
