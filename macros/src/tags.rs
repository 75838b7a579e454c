//! `#[tag]` and `#[tag(name = "...")]` on the fields of an `#[event]` struct: parsed into
//! [`TagsModel`], checked, stripped from the item (they are the macro's), and expanded
//! into `Event::TAGS` and `Event::tags`, each field's type checked where it is written.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, DeriveInput, Ident, LitStr, Path, Type};

use crate::ctxt::Errors;
use crate::field_attrs;
use crate::personal;

const TAG: &str = "tag";
const NAME: &str = "name";

/// One tagged field.
#[derive(Clone)]
struct TagField {
    /// The tag's key.
    key: String,
    /// The field's JSON key.
    json_key: String,
    ident: Ident,
    ty: Type,
}

/// The tags an event declares, in field order.
#[derive(Clone, Default)]
pub struct TagsModel {
    fields: Vec<TagField>,
}

fn is_tag_attr(attr: &Attribute) -> bool {
    attr.path().is_ident(TAG)
}

/// Removes the `#[tag]` attributes from every field of the item (reported or not).
pub fn strip(input: &mut DeriveInput) {
    field_attrs::strip(input, is_tag_attr);
}

/// Whether `key` can be a tag's key: what `factum::Tag::is_valid_key` accepts.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
}

/// Reads the `#[tag]` attributes, reporting each misuse where it is written.
pub fn parse(errors: &mut Errors, input: &DeriveInput) -> TagsModel {
    let mut model = TagsModel::default();
    let fields = field_attrs::named_fields(
        errors,
        input,
        is_tag_attr,
        "tags are declared on named fields: write `#[tag]` on a field of a struct with named fields",
        "tags are declared on the fields of a struct event: make each case an event of its own",
    );
    let rename_all = personal::container_rename_all(&input.attrs);
    for field in fields {
        let mut tag_attrs = field.attrs.iter().filter(|attr| is_tag_attr(attr));
        let Some(attr) = tag_attrs.next() else {
            continue;
        };
        for again in tag_attrs {
            errors.error_spanned_by(
                again,
                "`#[tag]` is already on this field: a field gives one tag key",
            );
        }
        if let Some(pii) = field.attrs.iter().find(|attr| attr.path().is_ident("pii")) {
            errors.error_spanned_by(
                pii,
                "tags are stored in the clear, to find events by: a `#[pii]` field cannot be a `#[tag]` (the data subject's `#[subject]` field can)",
            );
        }
        let Some(ident) = field.ident.clone() else {
            continue;
        };
        let Some((key, key_tokens)) = parse_key(errors, attr, &ident) else {
            continue;
        };
        if !is_valid_key(&key) {
            errors.error_spanned_by(
                key_tokens,
                format!(
                    "`{key}` is no tag key: a key is not empty and holds letters, digits, `_`, `-` and `.` only (the first `:` of a tag ends its key)"
                ),
            );
            continue;
        }
        let Some(json_key) = personal::serde_key(errors, field, rename_all.as_deref(), |serde| {
            format!(
                "a tag's value is stored in the event's payload, at a key of its own: `#[serde({serde})]` cannot go with `#[tag]`"
            )
        }) else {
            continue;
        };
        if let Some(first) = model.fields.iter().find(|first| first.key == key) {
            errors.error_spanned_by(
                key_tokens,
                format!(
                    "the tag `{key}` is declared already, on `{}`: each tag key names one field",
                    first.ident
                ),
            );
            continue;
        }
        model.fields.push(TagField {
            key,
            json_key,
            ident,
            ty: field.ty.clone(),
        });
    }
    model
}

/// The key of `#[tag]` (the field's name) or `#[tag(name = "...")]`, with the tokens to
/// report a bad key at.
fn parse_key(
    errors: &mut Errors,
    attr: &Attribute,
    ident: &Ident,
) -> Option<(String, TokenStream)> {
    match &attr.meta {
        syn::Meta::Path(_) => {
            let name = ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
            Some((name, ident.to_token_stream()))
        }
        syn::Meta::NameValue(name_value) => {
            errors.error_spanned_by(
                name_value,
                "the tag's key is given as `#[tag(name = \"course\")]`, or left out: `#[tag]` uses the field's name",
            );
            None
        }
        syn::Meta::List(_) => {
            let mut name: Option<LitStr> = None;
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(NAME) {
                    let value = meta.value()?;
                    match value.parse::<syn::Lit>()? {
                        syn::Lit::Str(text) => {
                            if name.replace(text).is_some() {
                                return Err(meta.error("`name` is given twice"));
                            }
                            Ok(())
                        }
                        other => Err(syn::Error::new(
                            other.span(),
                            "`name` is the tag's key: a string literal, e.g. `name = \"course\"`",
                        )),
                    }
                } else {
                    Err(meta.error(format!(
                        "unknown key `{}` in `#[tag(...)]`: the only key is `name = \"...\"`",
                        meta.path.to_token_stream()
                    )))
                }
            });
            errors.ok(parsed)?;
            match name {
                Some(name) => Some((name.value(), name.to_token_stream())),
                None => {
                    errors.error_spanned_by(
                        attr,
                        "`#[tag()]` names no key: write `#[tag(name = \"course\")]`, or `#[tag]` for the field's name",
                    );
                    None
                }
            }
        }
    }
}

impl TagsModel {
    /// `const TAGS` and `fn tags` for the `Event` impl (nothing for an event without tags).
    pub fn items(&self, runtime: &Path) -> TokenStream {
        if self.fields.is_empty() {
            return TokenStream::new();
        }
        let private = quote!(#runtime::__private);
        let declared = self.fields.iter().map(|field| {
            let (key, json_key) = (&field.key, &field.json_key);
            quote!(#private::TagField { key: #key, field: #json_key })
        });
        let pushes = self.fields.iter().map(|field| {
            let (ident, ty, key) = (&field.ident, &field.ty, &field.key);
            // Spanned at the field's type: a type that is no tag value is reported there,
            // with the trait's message.
            quote_spanned!(ty.span()=> <#ty as #private::TagValues>::push_tags(&self.#ident, #key, tags);)
        });
        quote! {
            const TAGS: &'static [#private::TagField] = &[#(#declared),*];

            fn tags(&self, tags: &mut #private::std::vec::Vec<#private::Tag>) {
                #(#pushes)*
            }
        }
    }
}
