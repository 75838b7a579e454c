//! `#[derive(Events)]` on an enum whose variants each hold one event type.
//!
//! Expands to the `EventSet` impl (encode; decode through every event's upcast chain),
//! conversions from each event, membership markers, and the hidden apply dispatcher
//! whose bounds check, at the aggregate, that every event has an `#[apply]` handler.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Path, Type};

use crate::ctxt::Errors;
use crate::respan::respan;
use crate::{attr, command_set};

/// One variant: `Placed(OrderPlaced)`.
pub struct Member<'a> {
    pub variant: &'a Ident,
    pub ty: &'a Type,
}

/// A checked enum of members, for `Events` and `Commands` alike.
pub struct SetModel<'a> {
    pub ident: &'a Ident,
    pub members: Vec<Member<'a>>,
    pub runtime: Path,
}

pub fn expand(input: TokenStream) -> TokenStream {
    command_set::expand_with(input, "Events", "event", expand_model)
}

/// The variants of a set enum, each a one-field tuple variant with a distinct type.
pub fn check_set<'a>(
    errors: &mut Errors,
    input: &'a DeriveInput,
    derive: &str,
    member_kind: &str,
) -> Option<SetModel<'a>> {
    let runtime = parse_runtime(errors, input);
    if !input.generics.params.is_empty() {
        errors.error_spanned_by(&input.generics, format!("#[derive({derive})] does not support generics: a set names concrete {member_kind} types"));
    }
    let syn::Data::Enum(data) = &input.data else {
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "#[derive({derive})] goes on an enum with one variant per {member_kind}, e.g. `{}`",
                example_enum(member_kind)
            ),
        ));
        return None;
    };
    if data.variants.is_empty() {
        errors.push(syn::Error::new(input.ident.span(), format!("#[derive({derive})] needs at least one variant: an empty set has no {member_kind} to record")));
    }
    let mut members: Vec<Member> = Vec::new();
    for variant in &data.variants {
        let syn::Fields::Unnamed(fields) = &variant.fields else {
            errors.error_spanned_by(variant, format!("each variant of #[derive({derive})] holds exactly one {member_kind} type: `{}({})`", variant.ident, upper_first(member_kind)));
            continue;
        };
        if fields.unnamed.len() != 1 {
            errors.error_spanned_by(&variant.fields, format!("each variant of #[derive({derive})] holds exactly one {member_kind} type, found {}", fields.unnamed.len()));
            continue;
        }
        let ty = &fields.unnamed[0].ty;
        let ty_text = quote!(#ty).to_string();
        if let Some(first) = members.iter().find(|member| {
            let other = member.ty;
            quote!(#other).to_string() == ty_text
        }) {
            errors.error_spanned_by(ty, format!("{member_kind} `{ty_text}` is already in this set as variant `{}`: each {member_kind} appears once", first.variant));
            continue;
        }
        members.push(Member {
            variant: &variant.ident,
            ty,
        });
    }
    Some(SetModel {
        ident: &input.ident,
        members,
        runtime,
    })
}

fn example_enum(member_kind: &str) -> &'static str {
    if member_kind == "event" {
        "enum OrderEvent { Placed(OrderPlaced) }"
    } else {
        "enum OrderCommand { Place(PlaceOrder) }"
    }
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `#[factum(crate = "...")]` on the enum.
fn parse_runtime(errors: &mut Errors, input: &DeriveInput) -> Path {
    let mut runtime = attr::Setting::new(attr::keys::CRATE);
    for attribute in input.attrs.iter().filter(|a| a.path().is_ident("factum")) {
        let result = attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident(attr::keys::CRATE) {
                let path = attr::parse_crate_path(&meta)?;
                runtime.set(errors, syn::spanned::Spanned::span(&meta.path), path);
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

fn expand_model(model: &SetModel) -> TokenStream {
    let SetModel {
        ident,
        members,
        runtime,
    } = model;
    let private = quote!(#runtime::__private);
    let set_name = ident.to_string();
    let variants: Vec<_> = members.iter().map(|member| member.variant).collect();
    let types: Vec<_> = members.iter().map(|member| member.ty).collect();
    let event = |ty: &Type| quote_spanned!(ty.span()=> <#ty as #private::Event>);
    let events: Vec<_> = types.iter().map(|ty| event(ty)).collect();
    let name_checks = command_set::repeated_name_checks(model, &quote!(#private::Event), "event");
    // Spanned at each variant's type, so a member that is not an event is reported there.
    let encode_calls: Vec<_> = types
        .iter()
        .map(|ty| {
            let private = respan(private.clone(), ty.span());
            quote_spanned!(ty.span()=> #private::encode::<#ty>)
        })
        .collect();
    let decode_calls: Vec<_> = types
        .iter()
        .map(|ty| {
            let private = respan(private.clone(), ty.span());
            quote_spanned!(ty.span()=> #private::decode_member::<#ty, Self>)
        })
        .collect();

    quote! {
        const _: () = {
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

                fn decode(
                    name: &str,
                    version: u32,
                    payload: &#private::serde_json::value::RawValue,
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

            #(
                #[automatically_derived]
                impl ::core::convert::From<#types> for #ident {
                    fn from(event: #types) -> Self {
                        Self::#variants(event)
                    }
                }

                #[automatically_derived]
                impl #private::EventOf<#ident> for #types {}

                #[automatically_derived]
                impl #private::IntoEvents<#ident> for #types {
                    fn into_events(self) -> #private::std::vec::Vec<#ident> {
                        #private::std::vec![#ident::#variants(self)]
                    }
                }

                #[automatically_derived]
                impl #private::IntoEvents<#ident> for ::core::option::Option<#types> {
                    fn into_events(self) -> #private::std::vec::Vec<#ident> {
                        #private::collect_events(self, #ident::#variants)
                    }
                }

                #[automatically_derived]
                impl #private::IntoEvents<#ident> for #private::std::vec::Vec<#types> {
                    fn into_events(self) -> #private::std::vec::Vec<#ident> {
                        #private::collect_events(self, #ident::#variants)
                    }
                }
            )*

            #[automatically_derived]
            impl #ident {
                /// Applies the event to an aggregate. The bounds are the compile-time check
                /// that the aggregate has an `#[apply]` handler for every event of the set.
                #[doc(hidden)]
                #[inline]
                pub fn __factum_apply<__FactumAggregate>(&self, aggregate: &mut __FactumAggregate)
                where
                    #(__FactumAggregate: #private::Apply<#types>,)*
                {
                    match self {
                        #(Self::#variants(event) => #private::Apply::<#types>::apply(aggregate, event),)*
                    }
                }
            }

            #name_checks
        };
    }
}
