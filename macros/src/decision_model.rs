//! `#[decision_model(tags(course, ..))]` on an inherent impl block of `#[apply]`
//! methods: a state built from the events a decision across entities reads.
//!
//! Parses the tag keys and the handlers (through `impl_block`, as `#[aggregate]`'s
//! `#[apply]` methods are checked) into a [`Model`], then expands to the
//! `DecisionModel` impl, a `keyed` function taking one value per tag key, and per
//! handler and key a constant that fails to evaluate, at the handler, when the applied
//! event declares no tag of that key: a query keyed by it could never find such an event.
//!
//! After an error the impl block is emitted as written (minus the markers) and the
//! `DecisionModel` impl with the well-formed handlers, so the mistake is the only error.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, LitStr, Path, Type};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::impl_block::{self, Macro, Markers};

const APPLY: &str = "apply";
const TAGS: &str = "tags";
const ACCEPTED: &[&str] = &[TAGS, keys::CRATE];

const MACRO: Macro = Macro {
    attribute: "decision_model",
    example: "#[decision_model(tags(course))] impl Seats { ... }",
    why_not_generic: "its events and tag keys denote one concrete state",
};

#[derive(Clone, Copy, PartialEq, Eq)]
struct Apply;

const MARKERS: Markers<Apply> = Markers {
    markers: &[(APPLY, Apply)],
    one_role: "a method is an #[apply] handler once",
};

/// A tag key the model is keyed by, and the name of its parameter in `keyed`.
struct Key {
    key: String,
    parameter: Ident,
    span: Span,
}

/// A well-formed `#[apply] fn name(&mut self, event: &Event)`.
struct Handler<'a> {
    method: &'a Ident,
    event: &'a Type,
}

struct Model<'a> {
    self_ty: &'a Type,
    name: String,
    /// Whether the impl block can have an impl for it (not generic, not a trait impl).
    implementable: bool,
    keys: Vec<Key>,
    handlers: Vec<Handler<'a>>,
    runtime: Path,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl = match impl_block::parse(&MACRO, item) {
        Ok(item_impl) => item_impl,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let (keys, runtime) = parse_args(&mut errors, args);
    let model = check(&mut errors, keys, runtime, &item_impl);
    let expanded = expand_model(&model);
    MARKERS.strip(&mut item_impl);
    impl_block::mark_impl_token(&mut item_impl);
    let errors = errors.into_compile_errors();
    quote! {
        #item_impl
        #expanded
        #errors
    }
}

/// `tags(course, student, "course-code")` and `crate = ".."`; the keys as far as they
/// parse, each checked.
fn parse_args(errors: &mut Errors, args: TokenStream) -> (Vec<Key>, Path) {
    let mut keys_setting: Setting<Vec<Key>> = Setting::new(TAGS);
    let mut runtime = Setting::new(keys::CRATE);
    let parser = syn::meta::parser(|meta| {
        let key_span = meta.path.span();
        if meta.path.is_ident(TAGS) {
            // tags(course, "course-code")
            let keys = attr::recover(errors, &meta, listed_keys(&meta))?;
            keys_setting.set_parsed(errors, key_span, keys);
        } else if meta.path.is_ident(keys::CRATE) {
            let path = attr::recover(errors, &meta, attr::parse_crate_path(&meta))?;
            runtime.set_parsed(errors, key_span, path);
        } else {
            attr::unknown_key(errors, &meta, "decision_model", ACCEPTED)?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    let keys = keys_setting
        .take()
        .map(|(keys, _)| keys)
        .unwrap_or_default();
    (check_keys(errors, keys), attr::runtime_path(runtime))
}

/// The keys of `tags(course, "course-code", ..)`: names, or strings for keys that are
/// no Rust names.
fn listed_keys(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Vec<Key>> {
    const FORM: &str = "tags(course, ..)";
    if !meta.input.peek(syn::token::Paren) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!("expected `{FORM}`: the tag keys the model is keyed by, in parentheses"),
        ));
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let mut keys = Vec::new();
    while !content.is_empty() {
        if content.peek(LitStr) {
            let literal: LitStr = content.parse()?;
            let key = literal.value();
            let parameter = format_ident!(
                "{}",
                key.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>(),
                span = literal.span()
            );
            keys.push(Key {
                key,
                parameter,
                span: literal.span(),
            });
        } else {
            let ident: Ident = content.parse().map_err(|error| {
                syn::Error::new(
                    error.span(),
                    "a tag key is a name (`course`) or a string (`\"course-code\"`), as the events' `#[tag]` fields declare it",
                )
            })?;
            let key = ident.to_string();
            keys.push(Key {
                key: key.strip_prefix("r#").unwrap_or(&key).to_owned(),
                parameter: ident.clone(),
                span: ident.span(),
            });
        }
        if !content.is_empty() {
            content.parse::<syn::Token![,]>()?;
        }
    }
    Ok(keys)
}

/// Each key is one a `#[tag]` field can declare, given once, with a parameter name of its
/// own in `keyed`. Returns the keys that are, so that a reported key causes no further
/// error in the expansion.
fn check_keys(errors: &mut Errors, keys: Vec<Key>) -> Vec<Key> {
    let mut kept: Vec<Key> = Vec::with_capacity(keys.len());
    for key in keys {
        if !crate::tags::is_valid_key(&key.key) {
            errors.push(syn::Error::new(
                key.span,
                format!(
                    "`{}` cannot be a tag key: a key is ASCII letters, digits, `_`, `-` and `.`, not empty",
                    key.key
                ),
            ));
        } else if kept.iter().any(|other| other.key == key.key) {
            errors.push(syn::Error::new(
                key.span,
                format!("the tag key `{}` is listed twice", key.key),
            ));
        } else if kept.iter().any(|other| other.parameter == key.parameter) {
            errors.push(syn::Error::new(
                key.span,
                format!(
                    "the tag key `{}` gives `keyed` the parameter `{}`, as another key does: rename one",
                    key.key, key.parameter
                ),
            ));
        } else {
            kept.push(key);
        }
    }
    kept
}

fn check<'a>(errors: &mut Errors, keys: Vec<Key>, runtime: Path, item: &'a ItemImpl) -> Model<'a> {
    impl_block::check_impl_shape(errors, &MACRO, item);
    let mut handlers = Vec::new();
    let mut seen = Vec::new();
    for impl_item in &item.items {
        let syn::ImplItem::Fn(method) = impl_item else {
            MARKERS.check_no_marker_on_non_method(errors, impl_item);
            continue;
        };
        if MARKERS.method_role(errors, method, |_| Ok(())).is_none() {
            continue;
        }
        let (event, valid) = impl_block::check_apply(errors, method);
        // A second handler of an event (reported below) is left out of the model.
        let repeated = event.is_some_and(|event| {
            let text = impl_block::type_text(event);
            seen.iter()
                .any(|(other, _): &(&Type, &Ident)| impl_block::type_text(other) == text)
        });
        if let Some(event) = event {
            seen.push((event, &method.sig.ident));
        }
        if let (Some(event), true, false) = (event, valid, repeated) {
            handlers.push(Handler {
                method: &method.sig.ident,
                event,
            });
        }
    }
    impl_block::check_unique(errors, seen.into_iter(), "#[apply]", "event");
    if !MARKERS.has_marked_method(item, Apply) {
        errors.push(syn::Error::new(
            Span::call_site(),
            "a decision model applies at least one event: add `#[apply] fn name(&mut self, event: &Event)`",
        ));
    }
    Model {
        self_ty: &item.self_ty,
        name: impl_block::type_name(&item.self_ty)
            .unwrap_or_else(|| impl_block::type_text(&item.self_ty)),
        implementable: item.generics.params.is_empty() && item.trait_.is_none(),
        keys,
        handlers,
        runtime,
    }
}

fn expand_model(model: &Model) -> TokenStream {
    if !model.implementable {
        return TokenStream::new();
    }
    let Model {
        self_ty,
        name,
        keys,
        handlers,
        runtime,
        ..
    } = model;
    let private = quote!(#runtime::__private);
    let key_texts: Vec<&str> = keys.iter().map(|key| key.key.as_str()).collect();
    let parameters: Vec<&Ident> = keys.iter().map(|key| &key.parameter).collect();
    let keyed_doc = if keys.is_empty() {
        format!("`{name}` over every event it applies (it is keyed by no tag).")
    } else {
        format!(
            "`{name}` keyed by the values of its tags ({}): built from the events it applies that carry them.",
            key_texts
                .iter()
                .map(|key| format!("`{key}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let events: Vec<&Type> = handlers.iter().map(|handler| handler.event).collect();
    let methods: Vec<&Ident> = handlers.iter().map(|handler| handler.method).collect();
    let private_ref = &private;
    let checks = handlers.iter().flat_map(|handler| {
        let private = private_ref;
        let event = handler.event;
        let event_text = impl_block::type_text(event);
        let method = handler.method;
        keys.iter().map(move |key| {
            let message = format!(
                "decision model `{name}` is keyed by the tag `{}`, but `{method}` applies `{event_text}`, which declares no `{}` tag: mark the field that holds it `#[tag]` (or `#[tag(name = \"{}\")]`), or key the model by tags the event carries",
                key.key, key.key, key.key
            );
            let key = &key.key;
            quote_spanned! {method.span()=>
                const _: () = ::core::assert!(
                    #private::declares_tag::<#event>(#key),
                    #message
                );
            }
        })
    });
    quote! {
        impl #self_ty {
            #[doc = #keyed_doc]
            #[allow(dead_code)]
            pub fn keyed(
                #(#parameters: impl #private::TagValue,)*
            ) -> #private::Keyed<Self> {
                #private::Keyed::__new(#private::std::vec![
                    #(#private::Tag::new(#key_texts, #private::TagValue::tag_value(&#parameters)),)*
                ])
            }
        }

        impl #private::DecisionModel for #self_ty {
            const MODEL_NAME: &'static str = #name;
            const TAG_KEYS: &'static [&'static str] = &[#(#key_texts),*];
            const EVENT_NAMES: &'static [&'static str] = &[
                #(<#events as #private::Event>::NAME),*
            ];

            fn apply_stored(
                &mut self,
                name: &str,
                schema_version: u32,
                payload: &str,
            ) -> ::core::result::Result<(), #private::DecodeErrorKind> {
                #(
                    if name == <#events as #private::Event>::NAME {
                        let event = <#events as #private::Event>::decode_version(schema_version, payload)?;
                        self.#methods(&event);
                        return ::core::result::Result::Ok(());
                    }
                )*
                ::core::result::Result::Err(#private::DecodeErrorKind::UnknownEvent { set: #name })
            }
        }

        #(#checks)*
    }
}
