//! `#[derive(Events)]` and `#[derive(Commands)]`: an enum whose variants each hold one
//! event (command) type. One module for both, parameterized by [`Kind`].
//!
//! Checks the variants into a [`SetModel`] and expands to the `EventSet` (`CommandSet`)
//! impl, conversions from each member, membership markers, and the `ApplyEvents`
//! (`DispatchCommands`) impl whose bounds check, at the aggregate, that every member has
//! a handler. After an error the per-member items are still emitted for every member
//! whose type is known (a malformed variant's first field counts), with a fallback set
//! impl, so that one bad variant is the only error: no false "not an event of the set".

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Path, Type};

use crate::attr;
use crate::ctxt::Errors;
use crate::impl_block::type_text;
use crate::respan::respan;

/// Which set the derive makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#[derive(Events)]`.
    Events,
    /// `#[derive(Commands)]`.
    Commands,
}

impl Kind {
    fn derive(self) -> &'static str {
        match self {
            Kind::Events => "Events",
            Kind::Commands => "Commands",
        }
    }

    /// What a member is, in messages.
    fn member(self) -> &'static str {
        match self {
            Kind::Events => "event",
            Kind::Commands => "command",
        }
    }

    fn example_enum(self) -> &'static str {
        match self {
            Kind::Events => "enum OrderEvent { Placed(OrderPlaced) }",
            Kind::Commands => "enum OrderCommand { Place(PlaceOrder) }",
        }
    }

    fn example_variant(self) -> &'static str {
        match self {
            Kind::Events => "Event",
            Kind::Commands => "Command",
        }
    }

    /// The runtime trait of a member.
    fn member_trait(self, private: &TokenStream) -> TokenStream {
        match self {
            Kind::Events => quote!(#private::Event),
            Kind::Commands => quote!(#private::Command),
        }
    }

    /// The advice added to a repeated-name error.
    fn repeated_name_advice(self) -> &'static str {
        match self {
            Kind::Events => " (an older version belongs in the newer one's `upcast_from`)",
            Kind::Commands => "",
        }
    }
}

/// One member: `Placed(OrderPlaced)`, or the type of a malformed variant (`Placed {
/// event: OrderPlaced }`), which keeps its markers so that its handlers raise no
/// follow-up error.
struct Member<'a> {
    /// `None` for a malformed variant: no value of the set holds the member.
    variant: Option<&'a Ident>,
    ty: &'a Type,
}

/// A checked enum of members.
struct SetModel<'a> {
    kind: Kind,
    ident: &'a Ident,
    members: Vec<Member<'a>>,
    /// Whether the enum is generic (reported): no impl can be written for it.
    generic: bool,
    runtime: Path,
}

pub fn expand(kind: Kind, input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let model = check(&mut errors, kind, &input);
    let expanded = match &model {
        Some(model) if errors.is_empty() => expand_model(model),
        Some(model) => expand_fallback(model),
        None => TokenStream::new(),
    };
    let errors = errors.into_compile_errors();
    quote!(#expanded #errors)
}

/// The variants of a set enum, each a one-field tuple variant with a distinct type.
fn check<'a>(errors: &mut Errors, kind: Kind, input: &'a DeriveInput) -> Option<SetModel<'a>> {
    let (derive, member) = (kind.derive(), kind.member());
    let runtime = parse_runtime(errors, input);
    if !input.generics.params.is_empty() {
        errors.error_spanned_by(
            &input.generics,
            format!(
                "#[derive({derive})] does not support generics: a set names concrete {member} types"
            ),
        );
    }
    let syn::Data::Enum(data) = &input.data else {
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "#[derive({derive})] goes on an enum with one variant per {member}, e.g. `{}`",
                kind.example_enum()
            ),
        ));
        return None;
    };
    if data.variants.is_empty() {
        errors.push(syn::Error::new(input.ident.span(), format!("#[derive({derive})] needs at least one variant: an empty set has no {member} to record")));
    }
    let mut members: Vec<Member> = Vec::new();
    for variant in &data.variants {
        let (ty, well_formed) = match &variant.fields {
            syn::Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                (&fields.unnamed[0].ty, true)
            }
            syn::Fields::Unnamed(fields) => {
                errors.error_spanned_by(&variant.fields, format!("each variant of #[derive({derive})] holds exactly one {member} type, found {}", fields.unnamed.len()));
                let Some(first) = fields.unnamed.first() else {
                    continue;
                };
                (&first.ty, false)
            }
            fields => {
                errors.error_spanned_by(variant, format!("each variant of #[derive({derive})] holds exactly one {member} type: `{}({})`", variant.ident, kind.example_variant()));
                let Some(first) = fields.iter().next() else {
                    continue;
                };
                (&first.ty, false)
            }
        };
        let text = type_text(ty);
        if let Some(first) = members.iter().find(|member| type_text(member.ty) == text) {
            if well_formed {
                let first = first
                    .variant
                    .map_or_else(String::new, |variant| format!(" as variant `{variant}`"));
                errors.error_spanned_by(ty, format!("{member} `{text}` is already in this set{first}: each {member} appears once"));
            }
            continue;
        }
        members.push(Member {
            variant: well_formed.then_some(&variant.ident),
            ty,
        });
    }
    Some(SetModel {
        kind,
        ident: &input.ident,
        members,
        generic: !input.generics.params.is_empty(),
        runtime,
    })
}

/// `#[factum(crate = "...")]` on the enum.
fn parse_runtime(errors: &mut Errors, input: &DeriveInput) -> Path {
    let mut runtime = attr::Setting::new(attr::keys::CRATE);
    for attribute in input.attrs.iter().filter(|a| a.path().is_ident("factum")) {
        let result = attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident(attr::keys::CRATE) {
                let path = attr::recover(errors, &meta, attr::parse_crate_path(&meta))?;
                runtime.set_parsed(errors, meta.path.span(), path);
                Ok(())
            } else {
                attr::unknown_key(errors, &meta, "factum", &[attr::keys::CRATE])
            }
        });
        errors.ok(result);
    }
    check_no_misplaced_factum_attribute(errors, input);
    attr::runtime_path(runtime)
}

/// `#[factum(...)]` configures the whole set; on a variant or field it would be ignored.
fn check_no_misplaced_factum_attribute(errors: &mut Errors, input: &DeriveInput) {
    let syn::Data::Enum(data) = &input.data else {
        return;
    };
    let misplaced = data.variants.iter().flat_map(|variant| {
        variant
            .attrs
            .iter()
            .chain(variant.fields.iter().flat_map(|field| &field.attrs))
    });
    for attribute in misplaced.filter(|a| a.path().is_ident("factum")) {
        errors.error_spanned_by(
            attribute,
            "`#[factum(...)]` goes on the enum itself, not on a variant or field",
        );
    }
}

/// The members' types and variants, for a set whose variants are all well-formed.
fn variants<'m>(model: &'m SetModel) -> (Vec<&'m Ident>, Vec<&'m Type>) {
    model
        .members
        .iter()
        .filter_map(|member| Some((member.variant?, member.ty)))
        .unzip()
}

fn expand_model(model: &SetModel) -> TokenStream {
    let private = private(model);
    let (set_impl, coverage_impl) = match model.kind {
        Kind::Events => (
            event_set_impl(model, &private),
            apply_events_impl(model, &private, None),
        ),
        Kind::Commands => (
            command_set_impl(model, &private),
            dispatch_commands_impl(model, &private, None),
        ),
    };
    let member_impls = member_impls(model, &private);
    let name_checks = repeated_name_checks(model, &private);
    quote! {
        const _: () = {
            #set_impl
            #member_impls
            #coverage_impl
            #name_checks
        };
    }
}

/// Beside a reported error: the set trait with bodies that never run, and every item of
/// the members whose type is known, so that their handlers compile as if the set were
/// right.
fn expand_fallback(model: &SetModel) -> TokenStream {
    if model.generic {
        return TokenStream::new();
    }
    let private = private(model);
    let ident = model.ident;
    let set_name = ident.to_string();
    let unreachable = crate::ctxt::unreachable();
    let (set_impl, coverage_impl) = match model.kind {
        Kind::Events => (
            quote! {
                #[automatically_derived]
                impl #private::EventSet for #ident {
                    const SET_NAME: &'static str = #set_name;
                    const EVENT_NAMES: &'static [&'static str] = &[];
                    fn event_name(&self) -> &'static str { #unreachable }
                    fn event_version(&self) -> u32 { #unreachable }
                    fn encode(&self) -> ::core::result::Result<#private::EncodedEvent, #private::EncodeError> { #unreachable }
                    fn tags(&self, _: &mut #private::std::vec::Vec<#private::Tag>) { #unreachable }
                    fn decode(_: &str, _: u32, _: &str) -> ::core::result::Result<Self, #private::DecodeError> { #unreachable }
                    fn register(_: &mut #private::RegistryBuilder, _: ::core::option::Option<&str>) {}
                }
            },
            apply_events_impl(model, &private, Some(&unreachable)),
        ),
        Kind::Commands => (
            quote! {
                #[automatically_derived]
                impl #private::CommandSet for #ident {
                    const SET_NAME: &'static str = #set_name;
                    const COMMAND_NAMES: &'static [&'static str] = &[];
                    fn command_name(&self) -> &'static str { #unreachable }
                    fn aggregate_id(&self) -> #private::std::string::String { #unreachable }
                    fn to_json(&self) -> ::core::result::Result<#private::std::string::String, #private::serde_json::Error> { #unreachable }
                    fn from_json(_: &str, _: &str) -> ::core::option::Option<::core::result::Result<Self, #private::CommandDecodeError>> { #unreachable }
                    fn member(&self) -> &dyn ::core::any::Any { #unreachable }
                    fn from_member(
                        _: #private::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>,
                    ) -> ::core::result::Result<Self, #private::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>> { #unreachable }
                    fn register(_: &mut #private::RegistryBuilder, _: ::core::option::Option<&str>) {}
                }
            },
            dispatch_commands_impl(model, &private, Some(&unreachable)),
        ),
    };
    let member_impls = member_impls(model, &private);
    quote! {
        #[allow(unreachable_code, reason = "beside an error: the items stand in and never run")]
        const _: () = {
            #set_impl
            #member_impls
            #coverage_impl
        };
    }
}

fn private(model: &SetModel) -> TokenStream {
    let runtime = &model.runtime;
    quote!(#runtime::__private)
}

fn event_set_impl(model: &SetModel, private: &TokenStream) -> TokenStream {
    let ident = model.ident;
    let set_name = ident.to_string();
    let (variants, types) = variants(model);
    let events: Vec<_> = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #private::Event>))
        .collect();
    // Spanned at each variant's type, so a member that is not an event is reported there.
    let encode_calls = types.iter().map(|ty| {
        let private = respan(private.clone(), ty.span());
        quote_spanned!(ty.span()=> #private::encode::<#ty>)
    });
    let decode_calls = types.iter().map(|ty| {
        let private = respan(private.clone(), ty.span());
        quote_spanned!(ty.span()=> #private::decode_member::<#ty, Self>)
    });
    quote! {
        #[automatically_derived]
        impl #private::EventSet for #ident {
            const SET_NAME: &'static str = #set_name;
            const EVENT_NAMES: &'static [&'static str] = &[#(#events::NAME),*];

            fn event_name(&self) -> &'static str {
                match self { #(Self::#variants(_) => #events::NAME,)* }
            }

            fn event_version(&self) -> u32 {
                match self { #(Self::#variants(_) => #events::VERSION,)* }
            }

            fn encode(&self) -> ::core::result::Result<#private::EncodedEvent, #private::EncodeError> {
                match self { #(Self::#variants(event) => #encode_calls(event),)* }
            }

            fn tags(&self, tags: &mut #private::std::vec::Vec<#private::Tag>) {
                match self { #(Self::#variants(event) => #events::tags(event, tags),)* }
            }

            fn decode(
                name: &str,
                version: u32,
                payload: &str,
            ) -> ::core::result::Result<Self, #private::DecodeError> {
                #(
                    if name == #events::NAME {
                        return #decode_calls(version, payload, Self::#variants);
                    }
                )*
                ::core::result::Result::Err(#private::unknown_event(#set_name, name, version))
            }

            fn register(registry: &mut #private::RegistryBuilder, aggregate: ::core::option::Option<&str>) {
                #(#events::register(registry, aggregate);)*
            }
        }
    }
}

fn command_set_impl(model: &SetModel, private: &TokenStream) -> TokenStream {
    let ident = model.ident;
    let set_name = ident.to_string();
    let (variants, types) = variants(model);
    let commands: Vec<_> = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #private::Command>))
        .collect();
    quote! {
        #[automatically_derived]
        impl #private::CommandSet for #ident {
            const SET_NAME: &'static str = #set_name;
            const COMMAND_NAMES: &'static [&'static str] = &[#(#commands::NAME),*];

            fn command_name(&self) -> &'static str {
                match self { #(Self::#variants(_) => #commands::NAME,)* }
            }

            fn aggregate_id(&self) -> #private::std::string::String {
                match self { #(Self::#variants(command) => #private::Command::aggregate_id(command),)* }
            }

            fn to_json(&self) -> ::core::result::Result<#private::std::string::String, #private::serde_json::Error> {
                match self { #(Self::#variants(command) => #private::serde_json::to_string(command),)* }
            }

            fn from_json(name: &str, json: &str) -> ::core::option::Option<::core::result::Result<Self, #private::CommandDecodeError>> {
                #(
                    if name == #commands::NAME {
                        return ::core::option::Option::Some(#private::decode_command::<#types>(json).map(Self::#variants));
                    }
                )*
                ::core::option::Option::None
            }

            fn member(&self) -> &dyn ::core::any::Any {
                match self { #(Self::#variants(command) => command,)* }
            }

            fn from_member(
                command: #private::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>,
            ) -> ::core::result::Result<Self, #private::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>> {
                #(
                    let command = match command.downcast::<#types>() {
                        ::core::result::Result::Ok(command) => return ::core::result::Result::Ok(Self::#variants(*command)),
                        ::core::result::Result::Err(command) => command,
                    };
                )*
                ::core::result::Result::Err(command)
            }

            fn register(registry: &mut #private::RegistryBuilder, aggregate: ::core::option::Option<&str>) {
                #(registry.add_command::<#types>(aggregate);)*
            }
        }
    }
}

/// The items of each member: `From`, the membership marker, and for events the
/// `IntoEvents` conversions of what a `#[handle]` method returns. A malformed variant's
/// member gets them with bodies that never run.
fn member_impls(model: &SetModel, private: &TokenStream) -> TokenStream {
    let ident = model.ident;
    let unreachable = crate::ctxt::unreachable();
    let items = model.members.iter().map(|member| {
        let ty = member.ty;
        let variant = |value: TokenStream| match member.variant {
            Some(variant) => quote!(#ident::#variant(#value)),
            None => quote!({ let _ = #value; #unreachable }),
        };
        let wrap = match member.variant {
            Some(variant) => quote!(#ident::#variant),
            None => quote!(|_: #ty| -> #ident { #unreachable }),
        };
        let from = variant(quote!(member));
        match model.kind {
            Kind::Events => {
                let single = variant(quote!(self));
                quote! {
                    // `#[inline]` here and below: compiled where a conversion is used, not
                    // for every member of every set (most handlers return one event).
                    #[automatically_derived]
                    impl ::core::convert::From<#ty> for #ident {
                        #[inline]
                        fn from(member: #ty) -> Self {
                            #from
                        }
                    }

                    #[automatically_derived]
                    impl #private::EventOf<#ident> for #ty {}

                    #[automatically_derived]
                    impl #private::IntoEvents<#ident> for #ty {
                        #[inline]
                        fn into_events(self) -> #private::std::vec::Vec<#ident> {
                            #private::std::vec![#single]
                        }
                    }

                    #[automatically_derived]
                    impl #private::IntoEvents<#ident> for ::core::option::Option<#ty> {
                        #[inline]
                        fn into_events(self) -> #private::std::vec::Vec<#ident> {
                            #private::collect_events(self, #wrap)
                        }
                    }

                    #[automatically_derived]
                    impl #private::IntoEvents<#ident> for #private::std::vec::Vec<#ty> {
                        #[inline]
                        fn into_events(self) -> #private::std::vec::Vec<#ident> {
                            #private::collect_events(self, #wrap)
                        }
                    }
                }
            }
            Kind::Commands => quote! {
                #[automatically_derived]
                impl ::core::convert::From<#ty> for #ident {
                    #[inline]
                    fn from(member: #ty) -> Self {
                        #from
                    }
                }

                #[automatically_derived]
                impl #private::CommandOf<#ident> for #ty {}
            },
        }
    });
    quote!(#(#items)*)
}

/// `ApplyEvents`: one `Apply` bound per event, the check that the aggregate applies every
/// event of the set. With `fallback`, the body never runs (the set has an error).
fn apply_events_impl(
    model: &SetModel,
    private: &TokenStream,
    fallback: Option<&TokenStream>,
) -> TokenStream {
    let ident = model.ident;
    let aggregate = format_ident!("__FactumAggregate");
    let bounds = model.members.iter().map(|member| member.ty);
    let body = match fallback {
        Some(unreachable) => quote!(let _ = aggregate; #unreachable),
        None => {
            let (variants, types) = variants(model);
            quote! {
                match self {
                    #(Self::#variants(event) => #private::Apply::<#types>::apply(aggregate, event),)*
                }
            }
        }
    };
    // Spanned at the enum's name, not at the derive, and not `#[automatically_derived]`:
    // rustc would then advise users to write this impl by hand "to avoid undesired
    // bounds", and the bounds are the point.
    let tokens = quote! {
        impl<#aggregate: ?::core::marker::Sized> #private::ApplyEvents<#aggregate> for #ident
        where
            #(#aggregate: #private::Apply<#bounds>,)*
        {
            #[inline]
            fn apply_to(&self, aggregate: &mut #aggregate) {
                #body
            }
        }
    };
    respan(tokens, ident.span())
}

/// `DispatchCommands`: one `Handle` bound per command, the check that the aggregate
/// handles every command of the set. With `fallback`, the body never runs.
fn dispatch_commands_impl(
    model: &SetModel,
    private: &TokenStream,
    fallback: Option<&TokenStream>,
) -> TokenStream {
    let ident = model.ident;
    let aggregate = format_ident!("__FactumAggregate");
    let bounds = model.members.iter().map(|member| member.ty);
    let body = match fallback {
        Some(unreachable) => quote!(let _ = (aggregate, services, ctx); #unreachable),
        None => {
            let (variants, types) = variants(model);
            quote! {
                match self {
                    #(Self::#variants(command) => #private::Handle::<#types>::handle(aggregate, command, services, ctx),)*
                }
            }
        }
    };
    // Spanned at the enum's name, not at the derive, and not `#[automatically_derived]`:
    // rustc would then advise users to write this impl by hand "to avoid undesired
    // bounds", and the bounds are the point.
    let tokens = quote! {
        impl<#aggregate> #private::DispatchCommands<#aggregate> for #ident
        where
            #aggregate: #private::Aggregate #(+ #private::Handle<#bounds>)*,
        {
            #[inline]
            fn dispatch(
                self,
                aggregate: &#aggregate,
                services: &<#aggregate as #private::Aggregate>::Services,
                ctx: &#private::CommandContext,
            ) -> ::core::result::Result<
                #private::std::vec::Vec<<#aggregate as #private::Aggregate>::Events>,
                <#aggregate as #private::Aggregate>::Error,
            > {
                #body
            }
        }
    };
    respan(tokens, ident.span())
}

/// Constant checks that no two members carry the same stable name: decoding and
/// dispatch go by name, so a repeated name would make one member unreachable.
fn repeated_name_checks(model: &SetModel, private: &TokenStream) -> TokenStream {
    let set = model.ident;
    let member = model.kind.member();
    let member_trait = model.kind.member_trait(private);
    let (variants, types) = variants(model);
    let checks = variants.iter().zip(&types).enumerate().skip(1).map(|(index, (variant, ty))| {
        let message = format!(
            "{member} set `{set}`: variant `{variant}` has the same {member} name as an earlier variant; each name may appear once{}",
            model.kind.repeated_name_advice()
        );
        quote_spanned! {ty.span()=>
            ::core::assert!(__FACTUM_FIRST_REPEAT != #index, #message);
        }
    });
    let count = types.len();
    quote! {
        const _: () = {
            const __FACTUM_NAMES: [&str; #count] = [#(<#types as #member_trait>::NAME),*];
            const __FACTUM_FIRST_REPEAT: usize = #private::first_repeat(&__FACTUM_NAMES);
            #(#checks)*
        };
    }
}
