//! Adds the serde and schemars derives an event or command needs, unless the user wrote
//! them.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Path};

/// Which of the derives the item already has.
struct Present {
    serialize: bool,
    deserialize: bool,
    json_schema: bool,
}

fn present(attrs: &[Attribute]) -> Present {
    let mut found = Present {
        serialize: false,
        deserialize: false,
        json_schema: false,
    };
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("derive")) {
        // A derive list that does not parse is the compiler's to report.
        let _ = attr.parse_nested_meta(|meta| {
            match meta
                .path
                .segments
                .last()
                .map(|segment| segment.ident.to_string())
            {
                Some(name) if name == "Serialize" => found.serialize = true,
                Some(name) if name == "Deserialize" => found.deserialize = true,
                Some(name) if name == "JsonSchema" => found.json_schema = true,
                _ => {}
            }
            Ok(())
        });
    }
    found
}

/// The attributes to put on the item: the missing derives, pointed at the runtime's
/// re-exports of serde and schemars.
pub fn missing_derives(attrs: &[Attribute], runtime: &Path) -> TokenStream {
    let found = present(attrs);
    let private = quote!(#runtime::__private);
    let mut derives = Vec::new();
    if !found.serialize {
        derives.push(quote!(#private::serde::Serialize));
    }
    if !found.deserialize {
        derives.push(quote!(#private::serde::Deserialize));
    }
    if !found.json_schema {
        derives.push(quote!(#private::schemars::JsonSchema));
    }
    let mut out = TokenStream::new();
    if !derives.is_empty() {
        out.extend(quote!(#[derive(#(#derives),*)]));
    }
    if !found.serialize || !found.deserialize {
        let serde_path = format!("{}::serde", path_string(&private));
        out.extend(quote!(#[serde(crate = #serde_path)]));
    }
    if !found.json_schema {
        let schemars_path = format!("{}::schemars", path_string(&private));
        out.extend(quote!(#[schemars(crate = #schemars_path)]));
    }
    out
}

fn path_string(tokens: &TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

/// A check per field naming `SchemaField::HAS_SCHEMA` of its type, spanned at the type:
/// a type without `JsonSchema` is reported at the field, with what to derive (schemars'
/// own error names only the trait). The type is the `Self` of the check, not a type
/// argument, so an unresolved type gets no second, different error.
///
/// One constant holds every field's check: a constant item per field cost the compiler
/// more than the checks themselves (issue 16).
pub fn field_schema_checks(input: &DeriveInput, runtime: &Path) -> TokenStream {
    let fields = fields(input);
    if fields.is_empty() {
        return TokenStream::new();
    }
    let checks = fields.into_iter().map(|field| {
        let ty = &field.ty;
        let private = crate::respan::respan(quote!(#runtime::__private), ty.span());
        quote_spanned!(ty.span()=> let _: () = <#ty as #private::SchemaField>::HAS_SCHEMA;)
    });
    quote!(const _: () = { #(#checks)* };)
}

/// The fields of a struct, or of every variant of an enum.
pub fn fields(input: &DeriveInput) -> Vec<&syn::Field> {
    match &input.data {
        Data::Struct(data) => data.fields.iter().collect(),
        Data::Enum(data) => data.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        Data::Union(_) => Vec::new(),
    }
}
