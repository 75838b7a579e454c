//! Collects every error of one macro invocation, so all are reported at once.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

/// Errors found so far, merged with `syn::Error::combine`.
#[derive(Default)]
pub struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records an error spanning `tokens`.
    pub fn error_spanned_by(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records the error of a result and turns it into an option.
    pub fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Whether nothing went wrong so far.
    pub fn is_empty(&self) -> bool {
        self.combined.is_none()
    }

    /// `compile_error!` invocations for every error (empty when there are none).
    pub fn into_compile_errors(self) -> TokenStream {
        self.combined
            .map(|error| error.to_compile_error())
            .unwrap_or_default()
    }
}

/// The body of an item of a fallback expansion: such items are emitted only beside a
/// reported error, so that the error is the only one, and never run.
pub fn unreachable() -> TokenStream {
    quote!(::core::unreachable!(
        "factum: this item stands in for one with a reported error"
    ))
}
