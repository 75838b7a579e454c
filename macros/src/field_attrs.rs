//! What the attributes the `#[event]` macro reads on fields (`#[subject]`, `#[pii]`,
//! `#[tag]`) share: they go on the named fields of a struct, and are stripped from the
//! emitted item, which the compiler would otherwise refuse.

use syn::{Attribute, Data, DeriveInput, Fields};

/// Removes the attributes `is_ours` picks from every field of the item (reported or not).
pub fn strip(input: &mut DeriveInput, is_ours: fn(&Attribute) -> bool) {
    let strip_fields = |fields: &mut Fields| {
        for field in fields.iter_mut() {
            field.attrs.retain(|attr| !is_ours(attr));
        }
    };
    match &mut input.data {
        Data::Struct(data) => strip_fields(&mut data.fields),
        Data::Enum(data) => {
            for variant in &mut data.variants {
                strip_fields(&mut variant.fields);
            }
        }
        Data::Union(data) => {
            for field in &mut data.fields.named {
                field.attrs.retain(|attr| !is_ours(attr));
            }
        }
    }
}

/// The named fields of a struct, which such attributes go on; elsewhere (a tuple struct's
/// fields, an enum's cases) each of the attributes `is_ours` picks is reported with
/// `on_unnamed` or `on_enum`, and there are none. A union is the item check's to report.
pub fn named_fields<'a>(
    errors: &mut crate::ctxt::Errors,
    input: &'a DeriveInput,
    is_ours: fn(&Attribute) -> bool,
    on_unnamed: &str,
    on_enum: &str,
) -> Vec<&'a syn::Field> {
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named.named.iter().collect(),
            other => {
                for attr in other.iter().flat_map(|field| &field.attrs) {
                    if is_ours(attr) {
                        errors.error_spanned_by(attr, on_unnamed);
                    }
                }
                Vec::new()
            }
        },
        Data::Enum(data) => {
            for attr in data
                .variants
                .iter()
                .flat_map(|variant| &variant.fields)
                .flat_map(|field| &field.attrs)
            {
                if is_ours(attr) {
                    errors.error_spanned_by(attr, on_enum);
                }
            }
            Vec::new()
        }
        Data::Union(_) => Vec::new(),
    }
}
