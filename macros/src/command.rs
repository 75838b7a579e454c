//! `#[command(name = "...")]` on a struct with one `#[aggregate_id]` field.
//!
//! Expands to the serde/schemars derives and a `Command` impl whose aggregate id is the
//! marked field.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{DeriveInput, Path};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::derives;

const AGGREGATE_ID: &str = "aggregate_id";

struct CommandModel {
    name: String,
    /// `self.order_id` or `self.0`, spanned at the field.
    id_access: TokenStream,
    id_span: proc_macro2::Span,
    runtime: Path,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut input: DeriveInput = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(error) => {
            let error =
                syn::Error::new(error.span(), "#[command] goes on a struct").to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let mut name = Setting::new(keys::NAME);
    let mut runtime = Setting::new(keys::CRATE);
    let parser = syn::meta::parser(|meta| {
        let key_span = meta.path.span();
        if meta.path.is_ident(keys::NAME) {
            // name = "ConfirmOrder"
            let value = attr::parse_name(&meta, "name = \"ConfirmOrder\"");
            let value = attr::recover(&mut errors, &meta, value)?.map(|(value, _)| value);
            name.set_parsed(&mut errors, key_span, value);
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::recover(&mut errors, &meta, attr::parse_crate_path(&meta))?;
            runtime.set_parsed(&mut errors, key_span, path);
        } else {
            attr::unknown_key(&mut errors, &meta, "command", &[keys::NAME, keys::CRATE])?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    let name = name
        .take()
        .map(|(name, _)| name)
        .unwrap_or_else(|| input.ident.to_string());
    let runtime = attr::runtime_path(runtime);
    let model = check(&mut errors, &input, name.clone(), runtime.clone());
    strip_aggregate_id(&mut input);
    match model {
        Some(model) if errors.is_empty() => expand_model(&model, &input),
        _ => {
            let fallback = expand_fallback(&name, &runtime, &input);
            let errors = errors.into_compile_errors();
            quote!(#fallback #errors)
        }
    }
}

/// Beside an error, a struct keeps its derives and gets a `Command` impl that never runs,
/// so that the sets and handlers naming it raise no follow-up error; a generic struct or
/// an enum gets none (its error says why it cannot be a command).
fn expand_fallback(name: &str, runtime: &Path, input: &DeriveInput) -> TokenStream {
    if !input.generics.params.is_empty() || !matches!(input.data, syn::Data::Struct(_)) {
        return quote!(#input);
    }
    let unreachable = crate::ctxt::unreachable();
    expand_command(name, runtime, input, unreachable)
}

/// A command addresses exactly one aggregate instance, so exactly one field is marked
/// `#[aggregate_id]`; a command is one concrete struct, so no generics.
fn check(
    errors: &mut Errors,
    input: &DeriveInput,
    name: String,
    runtime: Path,
) -> Option<CommandModel> {
    if !input.generics.params.is_empty() {
        errors.error_spanned_by(
            &input.generics,
            "a command cannot be generic: its name must denote one payload shape",
        );
    }
    let syn::Data::Struct(data) = &input.data else {
        errors.push(syn::Error::new(
            input.ident.span(),
            "#[command] goes on a struct with one `#[aggregate_id]` field",
        ));
        return None;
    };
    let mut marked = Vec::new();
    for (index, field) in data.fields.iter().enumerate() {
        for attribute in field
            .attrs
            .iter()
            .filter(|a| a.path().is_ident(AGGREGATE_ID))
        {
            if !matches!(attribute.meta, syn::Meta::Path(_)) {
                errors.error_spanned_by(&attribute.meta, "`#[aggregate_id]` takes no arguments");
            }
            marked.push((index, field, attribute));
        }
    }
    match marked.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                input.ident.span(),
                format!("command `{}` has no `#[aggregate_id]` field: mark the field that names the aggregate instance the command is for", input.ident),
            ));
            None
        }
        [(index, field, _)] => {
            let member = match &field.ident {
                Some(ident) => ident.to_token_stream(),
                None => syn::Index::from(*index).to_token_stream(),
            };
            let span = field.ty.span();
            Some(CommandModel {
                name,
                id_access: quote_spanned!(span=> self.#member),
                id_span: span,
                runtime,
            })
        }
        [_, rest @ ..] => {
            for (_, _, attribute) in rest {
                errors.error_spanned_by(attribute, format!("command `{}` has more than one `#[aggregate_id]` field: a command addresses exactly one aggregate instance", input.ident));
            }
            None
        }
    }
}

/// `#[aggregate_id]` is only a marker for this macro; the compiler must not see it.
fn strip_aggregate_id(input: &mut DeriveInput) {
    if let syn::Data::Struct(data) = &mut input.data {
        for field in data.fields.iter_mut() {
            field
                .attrs
                .retain(|attribute| !attribute.path().is_ident(AGGREGATE_ID));
        }
    }
}

fn expand_model(model: &CommandModel, input: &DeriveInput) -> TokenStream {
    let CommandModel {
        name,
        id_access,
        id_span,
        runtime,
    } = model;
    let private = quote!(#runtime::__private);
    let to_string =
        quote_spanned!(*id_span=> #private::std::string::ToString::to_string(&#id_access));
    expand_command(name, runtime, input, to_string)
}

/// The derives, the item, and the `Command` impl whose `aggregate_id` is `aggregate_id`.
fn expand_command(
    name: &str,
    runtime: &Path,
    input: &DeriveInput,
    aggregate_id: TokenStream,
) -> TokenStream {
    let private = quote!(#runtime::__private);
    let ident = &input.ident;
    let derives = derives::missing_derives(&input.attrs, runtime);
    let schema_checks = derives::field_schema_checks(input, runtime);
    let doc = crate::docs::doc_comment(&input.attrs);
    quote! {
        #derives
        #input

        const _: () = {
            #schema_checks
            #[automatically_derived]
            impl #private::Command for #ident {
                const NAME: &'static str = #name;
                const DOC: &'static str = #doc;

                fn aggregate_id(&self) -> #private::std::string::String {
                    #aggregate_id
                }
            }
        };
    }
}
