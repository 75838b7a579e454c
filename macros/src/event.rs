//! `#[event(name = "...", version = N, upcast_from = T, upcast_json(from = K, with = f))]`
//!
//! Parses the arguments into [`EventArgs`], checks them into an [`EventModel`], and
//! expands to the serde/schemars derives plus an `Event` impl whose decoder runs the
//! upcast chain.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Ident, Path, Type};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::derives;
use crate::personal::{self, PersonalModel};
use crate::respan::respan;
use crate::tags::{self, TagsModel};

const ACCEPTED: &[&str] = &[
    keys::NAME,
    keys::VERSION,
    keys::UPCAST_FROM,
    keys::UPCAST_JSON,
    keys::SIGNED,
    keys::CRATE,
];

/// `upcast_json(from = K, with = f)`: a function upcasting the JSON of retired version K
/// to version K + 1.
struct JsonUpcast {
    from: u32,
    from_span: Span,
    with: Path,
}

struct EventArgs {
    name: Setting<String>,
    version: Setting<u32>,
    upcast_from: Setting<Type>,
    upcast_json: Vec<JsonUpcast>,
    upcast_json_span: Option<Span>,
    runtime: Setting<Path>,
    /// `signed`: the event is critical, each one signed by the service's key.
    signed: Setting<bool>,
    /// Whether a version was given but is no valid number (reported): the upcast path
    /// cannot be checked without it, and any complaint about it would be a follow-up.
    invalid_version: bool,
}

/// How older stored versions reach this one.
enum UpcastPath {
    /// This is version 1.
    None,
    /// Through the type of the previous version and `TryFrom`.
    Typed(Type),
    /// Through JSON functions for retired versions, oldest first.
    Json(Vec<JsonUpcast>),
}

struct EventModel<'a> {
    ident: &'a Ident,
    name: String,
    version: u32,
    upcast: UpcastPath,
    runtime: Path,
    personal: PersonalModel,
    tags: TagsModel,
    signed: bool,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let input: DeriveInput = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(error) => {
            let error = syn::Error::new(error.span(), "#[event] goes on a struct or an enum")
                .to_compile_error();
            return quote!(#item #error);
        }
    };
    let args = parse_args(&mut errors, args);
    let personal = personal::parse(&mut errors, &input);
    let tags = tags::parse(&mut errors, &input);
    // The field attributes are the macro's: the item is emitted without them.
    let mut input = input;
    personal::strip(&mut input);
    tags::strip(&mut input);
    // The fallback keeps the tags that are well declared: a decision model's check of
    // them raises no follow-up error.
    let fallback = Fallback::new(args.as_ref(), &input, tags.clone());
    let model = args.and_then(|args| check(&mut errors, args, &input, personal, tags));
    match model {
        Some(model) if errors.is_empty() => expand_model(&model, &input),
        _ => {
            let fallback = fallback.expand(&input);
            let errors = errors.into_compile_errors();
            quote!(#fallback #errors)
        }
    }
}

/// What is known of an event whose input has an error: its name and version as given (or
/// their defaults). Beside the error, the item keeps its derives and gets an `Event` impl,
/// so that the sets and handlers naming it raise no follow-up error.
struct Fallback {
    name: String,
    version: u32,
    runtime: Path,
    tags: TagsModel,
}

impl Fallback {
    fn new(args: Option<&EventArgs>, input: &DeriveInput, tags: TagsModel) -> Self {
        Self {
            name: args
                .and_then(|args| args.name.get().cloned())
                .unwrap_or_else(|| input.ident.to_string()),
            version: args
                .and_then(|args| args.version.get().copied())
                .unwrap_or(1),
            runtime: args
                .and_then(|args| args.runtime.get().cloned())
                .unwrap_or_else(|| syn::parse_quote!(::factum)),
            tags,
        }
    }

    /// The expansion of the event as if it were its first version (a decoder of its own
    /// version only): it compiles whatever the error, which is reported beside it.
    fn expand(self, input: &DeriveInput) -> TokenStream {
        // A generic event or a union gets no impl: its error says why it cannot be one.
        if !input.generics.params.is_empty() || matches!(input.data, Data::Union(_)) {
            return quote!(#input);
        }
        let model = EventModel {
            ident: &input.ident,
            name: self.name,
            version: self.version,
            upcast: UpcastPath::None,
            runtime: self.runtime,
            personal: PersonalModel::default(),
            tags: self.tags,
            signed: false,
        };
        expand_model(&model, input)
    }
}

/// `where Field: Send + Sync, ...` for the `Event` impl, each bound spanned at its field's
/// type: an event crosses threads, and a field that cannot is reported there, once (the
/// bounds stand for the impl's own `Send + Sync` requirement, which would otherwise be
/// reported again at the type).
fn field_bounds(input: &DeriveInput) -> TokenStream {
    let fields = derives::fields(input);
    if fields.is_empty() {
        return TokenStream::new();
    }
    let bounds = fields.iter().map(|field| {
        let ty = &field.ty;
        // The bound is spanned at the type's last token, so that the predicate, which
        // rustc points at, spans the whole type.
        let last = ty
            .to_token_stream()
            .into_iter()
            .last()
            .map_or_else(|| ty.span(), |token| token.span());
        quote_spanned!(last=> #ty: ::core::marker::Send + ::core::marker::Sync)
    });
    quote!(where #(#bounds,)*)
}

/// The arguments, or `None` when they do not parse (checks of half-parsed arguments
/// would only report follow-up errors).
fn parse_args(errors: &mut Errors, args: TokenStream) -> Option<EventArgs> {
    let mut parsed = EventArgs {
        name: Setting::new(keys::NAME),
        version: Setting::new(keys::VERSION),
        upcast_from: Setting::new(keys::UPCAST_FROM),
        upcast_json: Vec::new(),
        upcast_json_span: None,
        invalid_version: false,
        runtime: Setting::new(keys::CRATE),
        signed: Setting::new(keys::SIGNED),
    };
    let parser = syn::meta::parser(|meta| {
        let key_span = meta.path.span();
        if meta.path.is_ident(keys::NAME) {
            // name = "OrderPlaced"
            let name = attr::parse_name(&meta, "name = \"OrderPlaced\"");
            let name = attr::recover(errors, &meta, name)?.map(|(name, _)| name);
            parsed.name.set_parsed(errors, key_span, name);
        } else if meta.path.is_ident(keys::VERSION) {
            // version = 2
            match attr::parse_version(errors, &meta, "version = 2")? {
                Some((version, _)) => parsed.version.set(errors, key_span, version),
                None => parsed.invalid_version = true,
            }
        } else if meta.path.is_ident(keys::UPCAST_FROM) {
            // upcast_from = OrderPlacedV1
            let ty = attr::parse_type(&meta, "upcast_from = <the type of the previous version>");
            match attr::recover(errors, &meta, ty)? {
                Some(ty) => parsed.upcast_from.set(errors, key_span, ty),
                // Without the previous type there is no upcast path to check.
                None => parsed.invalid_version = true,
            }
        } else if meta.path.is_ident(keys::UPCAST_JSON) {
            // upcast_json(from = 1, with = path::to::function)
            parsed.upcast_json_span.get_or_insert(key_span);
            if let Some(upcast) = parse_json_upcast(errors, &meta, &mut parsed.invalid_version)? {
                parsed.upcast_json.push(upcast);
            }
        } else if meta.path.is_ident(keys::SIGNED) {
            // signed (a flag: no value)
            if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                errors.push(meta.error(
                    "`signed` is a flag: write `signed` alone to have each such event signed by the service's key",
                ));
                attr::skip_value(&meta)?;
            } else {
                parsed.signed.set(errors, key_span, true);
            }
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::recover(errors, &meta, attr::parse_crate_path(&meta))?;
            parsed.runtime.set_parsed(errors, key_span, path);
        } else {
            attr::unknown_key(errors, &meta, "event", ACCEPTED)?;
        }
        Ok(())
    });
    match parser.parse2(args) {
        Ok(()) => Some(parsed),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

fn parse_json_upcast(
    errors: &mut Errors,
    meta: &syn::meta::ParseNestedMeta,
    invalid_version: &mut bool,
) -> syn::Result<Option<JsonUpcast>> {
    let mut from = Setting::new(keys::FROM);
    let mut with = Setting::new(keys::WITH);
    let mut invalid_from = false;
    meta.parse_nested_meta(|nested| {
        let key_span = nested.path.span();
        if nested.path.is_ident(keys::FROM) {
            match attr::parse_version(errors, &nested, "from = <the retired version>")? {
                Some((version, _)) => from.set(errors, key_span, version),
                None => invalid_from = true,
            }
        } else if nested.path.is_ident(keys::WITH) {
            let path = nested.value().and_then(|value| value.parse::<Path>());
            let path = path.map_err(|error| {
                syn::Error::new(error.span(), "expected `with = path::to::function`")
            });
            match attr::recover(errors, &nested, path)? {
                Some(path) => with.set(errors, key_span, path),
                // Reported; without the function there is no upcast to check.
                None => invalid_from = true,
            }
        } else {
            attr::unknown_key(
                errors,
                &nested,
                "event(upcast_json(..))",
                &[keys::FROM, keys::WITH],
            )?;
        }
        Ok(())
    })?;
    if invalid_from {
        *invalid_version = true;
        return Ok(None);
    }
    match (from.take(), with.take()) {
        (Some((from, from_span)), Some((with, _))) => Ok(Some(JsonUpcast {
            from,
            from_span,
            with,
        })),
        _ => {
            errors.error_spanned_by(
                &meta.path,
                "`upcast_json` needs both keys: `upcast_json(from = <retired version>, with = <fn(serde_json::Value) -> Result<serde_json::Value, E>>)`",
            );
            Ok(None)
        }
    }
}

fn check<'a>(
    errors: &mut Errors,
    args: EventArgs,
    input: &'a DeriveInput,
    personal: PersonalModel,
    tags: TagsModel,
) -> Option<EventModel<'a>> {
    check_item_shape(errors, input);
    let name = args
        .name
        .get()
        .cloned()
        .unwrap_or_else(|| input.ident.to_string());
    let version = args.version.get().copied().unwrap_or(1);
    let version_span = args.version.span().unwrap_or_else(Span::call_site);
    check_not_upcasting_from_itself(errors, input, args.upcast_from.get());
    if args.invalid_version {
        return None;
    }
    let upcast = check_upcast_path(
        errors,
        &name,
        version,
        version_span,
        args.upcast_from,
        args.upcast_json,
        args.upcast_json_span,
    );
    Some(EventModel {
        ident: &input.ident,
        name,
        version,
        upcast: upcast?,
        runtime: attr::runtime_path(args.runtime),
        personal,
        tags,
        signed: args.signed.get().copied().unwrap_or(false),
    })
}

/// An event is one concrete type: its name and version cannot vary with type parameters,
/// and a union has no serde representation.
fn check_item_shape(errors: &mut Errors, input: &DeriveInput) {
    if !input.generics.params.is_empty() {
        errors.error_spanned_by(
            &input.generics,
            "an event cannot be generic: a stored event name and version must denote one payload shape",
        );
    }
    if let Data::Union(union) = &input.data {
        errors.push(syn::Error::new(
            union.union_token.span,
            "#[event] goes on a struct or an enum, not a union",
        ));
    }
}

/// An event's previous version is another type: upcasting from itself would make its
/// oldest version depend on itself.
fn check_not_upcasting_from_itself(
    errors: &mut Errors,
    input: &DeriveInput,
    previous: Option<&Type>,
) {
    let Some(Type::Path(path)) = previous else {
        return;
    };
    if path.qself.is_none() && (path.path.is_ident(&input.ident) || path.path.is_ident("Self")) {
        errors.error_spanned_by(
            path,
            format!("an event cannot upcast from itself: `upcast_from` names the type of the previous version of `{}`", input.ident),
        );
    }
}

/// Versions of an event are consecutive: version N > 1 must name how version N - 1 is
/// read (its type, or JSON functions for retired versions), so no stored version is
/// unreadable; version 1 has nothing before it.
fn check_upcast_path(
    errors: &mut Errors,
    name: &str,
    version: u32,
    version_span: Span,
    upcast_from: Setting<Type>,
    mut upcast_json: Vec<JsonUpcast>,
    upcast_json_span: Option<Span>,
) -> Option<UpcastPath> {
    let upcast_from = upcast_from.take();
    if version == 1 {
        if let Some((_, span)) = &upcast_from {
            errors.push(syn::Error::new(*span, format!("version 1 is the first version of event `{name}`: there is nothing to upcast from")));
        }
        if let Some(span) = upcast_json_span {
            errors.push(syn::Error::new(span, format!("version 1 is the first version of event `{name}`: there is nothing to upcast from")));
        }
        return Some(UpcastPath::None);
    }
    match (upcast_from, upcast_json_span) {
        (Some(_), Some(span)) => {
            errors.push(syn::Error::new(
                span,
                "give either `upcast_from` (the type of the previous version) or `upcast_json` (functions for retired versions), not both: the previous version's type upcasts the versions before it itself",
            ));
            None
        }
        (Some((ty, _)), None) => Some(UpcastPath::Typed(ty)),
        (None, Some(_)) => {
            upcast_json.sort_by_key(|upcast| upcast.from);
            let mut consistent = true;
            for pair in upcast_json.windows(2) {
                if pair[0].from == pair[1].from {
                    errors.push(syn::Error::new(
                        pair[1].from_span,
                        format!(
                            "duplicate `upcast_json` for version {} of event `{name}`",
                            pair[1].from
                        ),
                    ));
                    consistent = false;
                } else if pair[0].from + 1 != pair[1].from {
                    errors.push(syn::Error::new(pair[1].from_span, format!("versions of event `{name}` must be consecutive: `upcast_json` skips from version {} to {}", pair[0].from, pair[1].from)));
                    consistent = false;
                }
            }
            for upcast in &upcast_json {
                if upcast.from >= version {
                    errors.push(syn::Error::new(upcast.from_span, format!("`upcast_json(from = {})` must name a version older than this one ({version})", upcast.from)));
                    consistent = false;
                }
            }
            match upcast_json.last() {
                Some(last) if consistent && last.from + 1 != version => {
                    errors.push(syn::Error::new(last.from_span, format!("versions of event `{name}` must be consecutive: no upcast reads version {} into version {version}", version - 1)));
                    None
                }
                Some(_) if consistent => Some(UpcastPath::Json(upcast_json)),
                _ => None,
            }
        }
        (None, None) => {
            errors.push(syn::Error::new(
                version_span,
                format!(
                    "event `{name}` version {version} needs an upcast path from version {}: add `upcast_from = <type of version {}>`, or `upcast_json(from = {}, with = <fn>)` if that version's type was removed",
                    version - 1,
                    version - 1,
                    version - 1
                ),
            ));
            None
        }
    }
}

fn expand_model(model: &EventModel, input: &DeriveInput) -> TokenStream {
    let EventModel {
        ident,
        name,
        version,
        upcast,
        runtime,
        personal,
        tags,
        signed,
    } = model;
    let signed = signed.then(|| {
        quote!(
            const SIGNED: bool = true;
        )
    });
    let personal_constant = personal.constant(runtime);
    let personal_checks = personal.type_checks(runtime);
    let tag_items = tags.items(runtime);
    let private = quote!(#runtime::__private);
    let derives = derives::missing_derives(&input.attrs, runtime);
    let doc = crate::docs::doc_comment(&input.attrs);
    let field_bounds = field_bounds(input);
    let schema_checks = derives::field_schema_checks(input, runtime);
    let (upcast_path, register) = match upcast {
        UpcastPath::None => (quote!(#private::UpcastPath::None), quote!()),
        UpcastPath::Typed(previous) => {
            let from = version - 1;
            (
                quote!(#private::UpcastPath::Typed { from: #from }),
                quote! {
                    fn register(registry: &mut #private::RegistryBuilder, aggregate: ::core::option::Option<&str>) {
                        registry.add_event::<Self>(aggregate);
                        <#previous as #private::Event>::register(registry, aggregate);
                    }
                },
            )
        }
        UpcastPath::Json(upcasts) => {
            let oldest = upcasts[0].from;
            (
                quote!(#private::UpcastPath::Json { oldest: #oldest }),
                quote!(),
            )
        }
    };
    let (oldest, older_versions, chain_checks) = match upcast {
        UpcastPath::None => (
            quote!(#version),
            quote!(::core::result::Result::Err(#private::DecodeErrorKind::NoUpcastPath { oldest: #version })),
            quote!(),
        ),
        UpcastPath::Typed(previous) => {
            let span = previous.span();
            let expected = version - 1;
            let version_message = format!(
                "`upcast_from` of event `{name}` version {version} must name version {expected} of `{name}`: versions of an event are consecutive and unique"
            );
            let name_message = format!(
                "`upcast_from` of event `{name}` must name an older version of the same event name `{name}`"
            );
            (
                quote_spanned!(span=> <#previous as #private::Event>::OLDEST_VERSION),
                {
                    // Spanned at the user's type, so a missing `From` impl is reported there.
                    let private = respan(private.clone(), span);
                    quote_spanned!(span=> #private::upcast_typed::<#previous, Self>(__factum_version, __factum_payload))
                },
                quote_spanned! {span=>
                    const _: () = {
                        ::core::assert!(<#previous as #private::Event>::VERSION == #expected, #version_message);
                        ::core::assert!(#private::str_eq(<#previous as #private::Event>::NAME, #name), #name_message);
                    };
                },
            )
        }
        UpcastPath::Json(upcasts) => {
            let oldest = upcasts[0].from;
            let steps = upcasts.iter().map(|upcast| {
                let from = upcast.from;
                let with = &upcast.with;
                let step = format_ident!("__factum_upcast_json_{}", from);
                quote_spanned! {with.span()=>
                    (#from, {
                        fn #step(__factum_payload: #private::serde_json::Value) -> ::core::result::Result<#private::serde_json::Value, #private::BoxError> {
                            #private::json_step(#with, __factum_payload)
                        }
                        #step as #private::JsonStep
                    })
                }
            });
            (
                quote!(#oldest),
                quote!(#private::upcast_json::<Self>(__factum_version, __factum_payload, #version, &[#(#steps),*])),
                quote!(),
            )
        }
    };
    quote! {
        #derives
        #input

        const _: () = {
            #[automatically_derived]
            impl #private::Event for #ident #field_bounds {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const OLDEST_VERSION: u32 = #oldest;
                const DOC: &'static str = #doc;
                const UPCAST: #private::UpcastPath = #upcast_path;
                #personal_constant
                #signed
                #tag_items

                fn decode_version(
                    __factum_version: u32,
                    __factum_payload: &str,
                ) -> ::core::result::Result<Self, #private::DecodeErrorKind> {
                    if __factum_version == #version {
                        return #private::decode_payload::<Self>(__factum_version, __factum_payload);
                    }
                    if __factum_version > #version {
                        return ::core::result::Result::Err(#private::DecodeErrorKind::VersionTooNew { newest: #version });
                    }
                    #older_versions
                }

                #register
            }
            #chain_checks
            #schema_checks
            #personal_checks
        };
    }
}
