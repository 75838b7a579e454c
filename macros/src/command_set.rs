//! `#[derive(Commands)]` on an enum whose variants each hold one command type.
//!
//! Expands to the `CommandSet` impl, conversions from each command, membership markers,
//! and the hidden dispatcher whose bounds check, at the aggregate, that every command
//! has a `#[handle]` handler.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::spanned::Spanned;

use crate::ctxt::Errors;
use crate::event_set::{SetModel, check_set};

pub fn expand(input: TokenStream) -> TokenStream {
    expand_with(input, "Commands", "command", expand_model)
}

/// The shared driver of the two set derives: parse, check, expand or report.
pub fn expand_with(
    input: TokenStream,
    derive: &str,
    member_kind: &str,
    expand_model: fn(&SetModel) -> TokenStream,
) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    match check_set(&mut errors, &input, derive, member_kind) {
        Some(model) if errors.is_empty() => expand_model(&model),
        _ => errors.into_compile_errors(),
    }
}

/// Constant checks that no two members carry the same stable name: decoding and
/// dispatch go by name, so a repeated name would make one member unreachable.
pub fn repeated_name_checks(
    model: &SetModel,
    member_trait: &TokenStream,
    member_kind: &str,
) -> TokenStream {
    let set = model.ident;
    let types = model.members.iter().map(|member| member.ty);
    let checks = model.members.iter().enumerate().skip(1).map(|(index, member)| {
        let message = format!(
            "{member_kind} set `{set}`: variant `{}` has the same {member_kind} name as an earlier variant; each name may appear once{}",
            member.variant,
            if member_kind == "event" { " (an older version belongs in the newer one's `upcast_from`)" } else { "" }
        );
        let private = {
            let runtime = &model.runtime;
            quote!(#runtime::__private)
        };
        quote_spanned! {member.ty.span()=>
            ::core::assert!(!#private::repeats_earlier(__FACTUM_NAMES, #index), #message);
        }
    });
    quote! {
        const _: () = {
            const __FACTUM_NAMES: &[&str] = &[#(<#types as #member_trait>::NAME),*];
            #(#checks)*
        };
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
    let commands: Vec<_> = types
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as #private::Command>))
        .collect();
    let name_checks = repeated_name_checks(model, &quote!(#private::Command), "command");
    let aggregate = format_ident!("__FactumAggregate");

    quote! {
        const _: () = {
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

            #(
                #[automatically_derived]
                impl ::core::convert::From<#types> for #ident {
                    fn from(command: #types) -> Self {
                        Self::#variants(command)
                    }
                }

                #[automatically_derived]
                impl #private::CommandOf<#ident> for #types {}
            )*

            #[automatically_derived]
            impl #ident {
                /// Hands the command to its handler. The bounds are the compile-time check
                /// that the aggregate has a `#[handle]` handler for every command of the set.
                #[doc(hidden)]
                #[inline]
                pub fn __factum_dispatch<#aggregate>(
                    self,
                    aggregate: &#aggregate,
                    services: &<#aggregate as #private::Aggregate>::Services,
                    ctx: &#private::CommandContext,
                ) -> ::core::result::Result<
                    #private::std::vec::Vec<<#aggregate as #private::Aggregate>::Events>,
                    <#aggregate as #private::Aggregate>::Error,
                >
                where
                    #aggregate: #private::Aggregate #(+ #private::Handle<#types>)*,
                {
                    match self {
                        #(Self::#variants(command) => #private::Handle::<#types>::handle(aggregate, command, services, ctx),)*
                    }
                }
            }

            #name_checks
        };
    }
}
