//! `#[subject]`, `#[pii]` and `#[pii(redacted = "...")]` on the fields of an `#[event]`
//! struct: parsed into [`PersonalModel`], checked, stripped from the item (they are the
//! macro's, not attributes of their own), and expanded into `Event::PERSONAL` with a
//! compile-time check of each field's type.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, DeriveInput, LitStr, Path, Type};

use crate::ctxt::Errors;
use crate::field_attrs;

const SUBJECT: &str = "subject";
const PII: &str = "pii";
const REDACTED: &str = "redacted";

/// The data subject's field.
struct SubjectField {
    key: String,
    ty: Type,
    /// The `#[subject]` attribute, for errors about it.
    attr: Attribute,
}

/// A personal field.
struct PiiField {
    key: String,
    ty: Type,
    redacted: Option<LitStr>,
}

/// What the item declares.
#[derive(Default)]
pub struct PersonalModel {
    subject: Option<SubjectField>,
    fields: Vec<PiiField>,
}

fn is_personal_attr(attr: &Attribute) -> bool {
    attr.path().is_ident(SUBJECT) || attr.path().is_ident(PII)
}

/// Removes the personal attributes from every field of the item (reported or not), so
/// that the emitted item carries no attribute the compiler does not know.
pub fn strip(input: &mut DeriveInput) {
    field_attrs::strip(input, is_personal_attr);
}

/// Reads the personal attributes, reporting each misuse where it is written.
pub fn parse(errors: &mut Errors, input: &DeriveInput) -> PersonalModel {
    let mut model = PersonalModel::default();
    let fields = field_attrs::named_fields(
        errors,
        input,
        is_personal_attr,
        "personal data is declared on named fields: `#[subject]` and `#[pii]` need the field's name as its JSON key",
        "personal data is declared on the fields of a struct event: make each case an event of its own",
    );
    let rename_all = container_rename_all(&input.attrs);
    // Whether any field says `#[subject]` / `#[pii]`, reported or not: a misused attribute
    // still counts as declared, so that its error is not followed by "missing" ones.
    let mut subject_declared = false;
    let mut pii_attrs = Vec::new();
    for field in fields {
        let mut subject_attr = None;
        let mut pii_attr = None;
        for attr in field.attrs.iter().filter(|attr| is_personal_attr(attr)) {
            if attr.path().is_ident(SUBJECT) {
                // `#[subject]`
                if let Some(arguments) = arguments(attr) {
                    errors.push(syn::Error::new_spanned(
                        arguments,
                        "`#[subject]` takes no arguments: write `#[subject]` on the field that names the data subject",
                    ));
                }
                if subject_attr.replace(attr).is_some() {
                    errors.error_spanned_by(attr, "`#[subject]` is already on this field");
                }
            } else {
                // `#[pii]` or `#[pii(redacted = "...")]`
                if pii_attr.is_some() {
                    errors.error_spanned_by(attr, "`#[pii]` is already on this field");
                }
                pii_attr = Some(attr);
                pii_attrs.push(attr);
            }
        }
        if subject_attr.is_none() && pii_attr.is_none() {
            continue;
        }
        subject_declared |= subject_attr.is_some();
        let Some(key) = serde_key(errors, field, rename_all.as_deref(), |serde| {
            format!(
                "a personal field is stored as a value of its own: `#[serde({serde})]` cannot go with `#[subject]` or `#[pii]`"
            )
        }) else {
            continue;
        };
        if let Some(attr) = subject_attr {
            if let Some(pii) = pii_attr {
                // The field stays the subject: the other fields' `#[pii]` still have one.
                errors.error_spanned_by(
                    pii,
                    "the subject's id is stored in the clear, to find their key: a `#[subject]` field cannot also be `#[pii]`",
                );
            }
            match &model.subject {
                Some(first) => errors.error_spanned_by(
                    attr,
                    format!(
                        "an event has one data subject, and `{}` is it already: one `#[subject]` per event",
                        first.key
                    ),
                ),
                None => {
                    model.subject = Some(SubjectField {
                        key,
                        ty: field.ty.clone(),
                        attr: attr.clone(),
                    })
                }
            }
        } else if let Some(attr) = pii_attr {
            let redacted = parse_pii_args(errors, attr);
            model.fields.push(PiiField {
                key,
                ty: field.ty.clone(),
                redacted,
            });
        }
    }
    if !subject_declared {
        for attr in pii_attrs {
            errors.error_spanned_by(
                attr,
                "`#[pii]` needs the event's data subject: mark the field that says whose data this is with `#[subject]`",
            );
        }
    } else if pii_attrs.is_empty()
        && let Some(subject) = &model.subject
    {
        errors.error_spanned_by(
            &subject.attr,
            "`#[subject]` without a `#[pii]` field declares nothing to protect: mark the personal fields with `#[pii]`, or remove `#[subject]`",
        );
    }
    model
}

/// The arguments of an attribute that takes none: `(...)` or `= ...`.
fn arguments(attr: &Attribute) -> Option<TokenStream> {
    match &attr.meta {
        syn::Meta::Path(_) => None,
        syn::Meta::List(list) => {
            let mut group =
                proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, list.tokens.clone());
            group.set_span(list.delimiter.span().join());
            Some(group.into_token_stream())
        }
        syn::Meta::NameValue(name_value) => {
            let (eq, value) = (&name_value.eq_token, &name_value.value);
            Some(quote!(#eq #value))
        }
    }
}

/// `#[pii]` or `#[pii(redacted = "...")]`.
fn parse_pii_args(errors: &mut Errors, attr: &Attribute) -> Option<LitStr> {
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return None;
    }
    let mut redacted = None;
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(REDACTED) {
            let value = meta.value()?;
            match value.parse::<syn::Lit>()? {
                syn::Lit::Str(text) => {
                    if redacted.replace(text).is_some() {
                        return Err(meta.error("`redacted` is given twice"));
                    }
                    Ok(())
                }
                other => Err(syn::Error::new(
                    other.span(),
                    "`redacted` is the text a forgotten field reads as: a string literal, e.g. `redacted = \"[forgotten]\"`",
                )),
            }
        } else {
            Err(meta.error(format!(
                "unknown key `{}` in `#[pii(...)]`: the only key is `redacted = \"...\"`",
                meta.path.to_token_stream()
            )))
        }
    });
    errors.ok(parsed);
    redacted
}

/// The field's JSON key: its `#[serde(rename = "...")]`, or its name under the
/// container's `rename_all`. A field that serde flattens or skips has no key of its own:
/// it is reported with `refusal`'s message for the serde attribute.
pub fn serde_key(
    errors: &mut Errors,
    field: &syn::Field,
    rename_all: Option<&str>,
    refusal: impl Fn(&str) -> String,
) -> Option<String> {
    let ident = field.ident.as_ref()?;
    let mut renamed = None;
    for attr in field
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde"))
    {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if let Ok(value) = meta.value()
                    && let Ok(text) = value.parse::<LitStr>()
                {
                    renamed = Some(text.value());
                }
            } else if meta.path.is_ident("flatten")
                || meta.path.is_ident("skip")
                || meta.path.is_ident("skip_serializing")
            {
                errors.error_spanned_by(
                    &meta.path,
                    refusal(&meta.path.to_token_stream().to_string()),
                );
            } else if meta.input.peek(syn::Token![=]) {
                let _ = meta.value().and_then(|value| value.parse::<syn::Expr>());
            } else if meta.input.peek(syn::token::Paren) {
                let _ = meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        let _ = inner.value().and_then(|value| value.parse::<syn::Expr>());
                    }
                    Ok(())
                });
            }
            Ok(())
        });
    }
    let name = ident.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
    Some(renamed.unwrap_or_else(|| apply_rename_all(&name, rename_all)))
}

/// The container's `#[serde(rename_all = "...")]`, if any.
pub fn container_rename_all(attrs: &[Attribute]) -> Option<String> {
    let mut rule = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                if let Ok(value) = meta.value()
                    && let Ok(text) = value.parse::<LitStr>()
                {
                    rule = Some(text.value());
                }
            } else if meta.input.peek(syn::Token![=]) {
                let _ = meta.value().and_then(|value| value.parse::<syn::Expr>());
            } else if meta.input.peek(syn::token::Paren) {
                let _ = meta.parse_nested_meta(|inner| {
                    if inner.input.peek(syn::Token![=]) {
                        let _ = inner.value().and_then(|value| value.parse::<syn::Expr>());
                    }
                    Ok(())
                });
            }
            Ok(())
        });
    }
    rule
}

/// serde's `rename_all` rules, applied to a snake_case field name.
fn apply_rename_all(name: &str, rule: Option<&str>) -> String {
    let words = || name.split('_').filter(|word| !word.is_empty());
    let capitalised = |word: &str| {
        let mut chars = word.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().collect::<String>() + chars.as_str()
        })
    };
    match rule {
        Some("lowercase") => name.to_lowercase(),
        Some("UPPERCASE") => name.to_uppercase(),
        Some("PascalCase") => words().map(capitalised).collect(),
        Some("camelCase") => {
            let pascal: String = words().map(capitalised).collect();
            let mut chars = pascal.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().collect::<String>() + chars.as_str()
            })
        }
        Some("SCREAMING_SNAKE_CASE") => name.to_uppercase(),
        Some("kebab-case") => name.replace('_', "-"),
        Some("SCREAMING-KEBAB-CASE") => name.replace('_', "-").to_uppercase(),
        _ => name.to_owned(),
    }
}

/// A JSON pointer to a top-level key (RFC 6901 escapes).
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

impl PersonalModel {
    /// `const PERSONAL: PersonalFields = ...;` for the `Event` impl (nothing for an event
    /// without personal data).
    pub fn constant(&self, runtime: &Path) -> TokenStream {
        let Some(subject) = &self.subject else {
            return TokenStream::new();
        };
        let private = quote!(#runtime::__private);
        let subject = pointer(&subject.key);
        let fields = self.fields.iter().map(|field| {
            let pointer = pointer(&field.key);
            let ty = &field.ty;
            // The field's type check: spanned at its type, so that a type that is not
            // `Personal` (or, with `redacted = "..."`, not `RedactedText`) is reported
            // there, once, with the trait's message.
            let redacted = match &field.redacted {
                Some(text) => {
                    quote_spanned!(ty.span()=> || #private::redacted_text::<#ty>(#text))
                }
                None => quote_spanned!(ty.span()=> || #private::redacted_value::<#ty>()),
            };
            quote! {
                #private::PersonalField { pointer: #pointer, redacted: #redacted }
            }
        });
        quote! {
            const PERSONAL: #private::PersonalFields = #private::PersonalFields {
                subject: ::core::option::Option::Some(#subject),
                fields: &[#(#fields),*],
            };
        }
    }

    /// The compile-time check of the subject's type, spanned at it (the personal fields'
    /// types are checked where [`Self::constant`] names them).
    pub fn type_checks(&self, runtime: &Path) -> TokenStream {
        let Some(subject) = &self.subject else {
            return TokenStream::new();
        };
        let private = quote!(#runtime::__private);
        let ty = &subject.ty;
        let check = quote_spanned!(ty.span()=> #private::assert_subject::<#ty>(););
        quote! {
            const _: () = {
                #check
            };
        }
    }
}
