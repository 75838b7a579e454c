//! Parsing pieces shared by the macros' attributes.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseBuffer, ParseStream};
use syn::{LitInt, LitStr, Path, Token};

use crate::ctxt::Errors;

/// Attribute keys, as written by users.
pub mod keys {
    pub const NAME: &str = "name";
    pub const VERSION: &str = "version";
    pub const UPCAST_FROM: &str = "upcast_from";
    pub const UPCAST_JSON: &str = "upcast_json";
    pub const FROM: &str = "from";
    pub const WITH: &str = "with";
    pub const CRATE: &str = "crate";
    pub const SIGNED: &str = "signed";
    pub const EVENTS: &str = "events";
    pub const COMMANDS: &str = "commands";
    pub const ERROR: &str = "error";
    pub const SERVICES: &str = "services";
    pub const IGNORE_EVENTS: &str = "ignore_events";
    pub const SNAPSHOT: &str = "snapshot";
}

/// One attribute value with the span of its key, set at most once.
pub struct Setting<T> {
    key: &'static str,
    value: Option<(T, Span)>,
    /// The key was given with a value that did not parse (already reported).
    invalid: bool,
}

impl<T> Setting<T> {
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            value: None,
            invalid: false,
        }
    }

    /// Stores the value `recover` gave; `None` (a value already reported) marks the key as
    /// given, so that no "missing key" follows.
    pub fn set_parsed(&mut self, errors: &mut Errors, span: Span, value: Option<T>) {
        match value {
            Some(value) => self.set(errors, span, value),
            None => self.invalid = true,
        }
    }

    /// Whether the key was written at all, with a valid value or not.
    pub fn given(&self) -> bool {
        self.value.is_some() || self.invalid
    }

    /// Stores the value; a second occurrence of the key is an error at that occurrence.
    pub fn set(&mut self, errors: &mut Errors, span: Span, value: T) {
        if self.value.is_some() {
            errors.push(syn::Error::new(
                span,
                format!("duplicate `{}` key: it was already given", self.key),
            ));
        } else {
            self.value = Some((value, span));
        }
    }

    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(value, _)| value)
    }

    pub fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(_, span)| *span)
    }

    pub fn take(self) -> Option<(T, Span)> {
        self.value
    }
}

/// The path of the runtime crate: `crate = "..."`, or `::factum`.
pub fn runtime_path(setting: Setting<Path>) -> Path {
    setting
        .take()
        .map(|(path, _)| path)
        .unwrap_or_else(|| syn::parse_quote!(::factum))
}

/// A key's value that did not parse is reported, and the rest of it skipped up to the next
/// `,`, so that the attribute's other keys are still read and their mistakes reported in
/// the same build; gives `None` for it. syn stops at the first error otherwise.
pub fn recover<T>(
    errors: &mut Errors,
    meta: &ParseNestedMeta,
    parsed: syn::Result<T>,
) -> syn::Result<Option<T>> {
    match parsed {
        Ok(value) => Ok(Some(value)),
        Err(error) => {
            errors.push(error);
            while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                meta.input.parse::<proc_macro2::TokenTree>()?;
            }
            Ok(None)
        }
    }
}

/// The value after `key =`, or an error at the key showing the expected `form`.
fn value_of<'a>(meta: &'a ParseNestedMeta, form: &str) -> syn::Result<ParseStream<'a>> {
    meta.value()
        .map_err(|_| syn::Error::new_spanned(&meta.path, format!("expected `{form}`")))
}

/// Parses a value, replacing syn's generic message with one showing the expected `form`.
fn parse_value<T: Parse>(meta: &ParseNestedMeta, form: &str) -> syn::Result<T> {
    let value = value_of(meta, form)?;
    value
        .parse()
        .map_err(|error| syn::Error::new(error.span(), format!("expected `{form}`")))
}

/// Parses `crate = "path"` (a string, as serde takes it) or `crate = path`.
pub fn parse_crate_path(meta: &ParseNestedMeta) -> syn::Result<Path> {
    const FORM: &str = "crate = \"::factum\"";
    let value = value_of(meta, FORM)?;
    let parsed = if value.peek(LitStr) {
        value.parse::<LitStr>()?.parse()
    } else {
        value.parse()
    };
    parsed.map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("expected `{FORM}`: the path of the factum crate"),
        )
    })
}

/// Parses `key = Type`; `form` shows an example.
pub fn parse_type(meta: &ParseNestedMeta, form: &str) -> syn::Result<syn::Type> {
    parse_value(meta, form)
}

/// Parses `key = [Type, ...]`; `form` shows an example.
pub fn parse_type_list(meta: &ParseNestedMeta, form: &str) -> syn::Result<Vec<syn::Type>> {
    let value = value_of(meta, form)?;
    let expected = |error: syn::Error| syn::Error::new(error.span(), format!("expected `{form}`"));
    let content = (|| -> syn::Result<ParseBuffer<'_>> {
        let content;
        syn::bracketed!(content in value);
        Ok(content)
    })()
    .map_err(expected)?;
    let types =
        syn::punctuated::Punctuated::<syn::Type, syn::Token![,]>::parse_terminated(&content)
            .map_err(expected)?;
    Ok(types.into_iter().collect())
}

/// Parses `key = "string"` into a non-empty name without whitespace.
pub fn parse_name(meta: &ParseNestedMeta, form: &str) -> syn::Result<(String, Span)> {
    let literal: LitStr = parse_value(meta, form)?;
    let name = literal.value();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            literal.span(),
            format!("a name must be non-empty and contain no whitespace: `{form}`"),
        ));
    }
    Ok((name, literal.span()))
}

/// Parses an integer `key = N` with 1 ≤ N ≤ u32::MAX. A literal that is not such a
/// number (`"2"`, `0`) is reported and gives `None`, and parsing goes on, so the other
/// mistakes of the attribute are reported too; only a value that is no literal stops it.
pub fn parse_version(
    errors: &mut Errors,
    meta: &ParseNestedMeta,
    form: &str,
) -> syn::Result<Option<(u32, Span)>> {
    let value = value_of(meta, form)?;
    // `version = "2"`: the most likely slip, so the message says exactly what to change.
    if value.peek(LitStr) {
        let literal: LitStr = value.parse()?;
        let key = meta
            .path
            .get_ident()
            .map_or_else(String::new, ToString::to_string);
        let fix = match literal.value().trim().parse::<u32>() {
            Ok(number) => format!("`{key} = {number}`"),
            Err(_) => format!("`{form}`"),
        };
        errors.push(syn::Error::new(
            literal.span(),
            format!("`{key}` is an integer, not a string: drop the quotes, e.g. {fix}"),
        ));
        return Ok(None);
    }
    let literal: LitInt = value
        .parse()
        .map_err(|error| syn::Error::new(error.span(), format!("expected `{form}`")))?;
    match literal.base10_parse::<u32>() {
        Ok(0) => errors.error_spanned_by(&literal, "versions start at 1: the first version is 1"),
        Ok(version) => return Ok(Some((version, literal.span()))),
        Err(_) => {
            errors.error_spanned_by(&literal, "a version is a whole number from 1 to 4294967295")
        }
    }
    Ok(None)
}

/// Reports an unknown key, naming the accepted ones, and skips its value so parsing
/// goes on and later mistakes are reported too.
pub fn unknown_key(
    errors: &mut Errors,
    meta: &ParseNestedMeta,
    attribute: &str,
    accepted: &[&str],
) -> syn::Result<()> {
    let key = meta
        .path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    errors.push(syn::Error::new_spanned(
        &meta.path,
        format!(
            "unknown key `{key}` in #[{attribute}]; expected one of: {}",
            accepted
                .iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    skip_value(meta)
}

/// Consumes `= value` or `(...)` after a key.
pub fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|nested| skip_value(&nested))?;
    }
    Ok(())
}
