//! The impl-block parsing that `#[aggregate]`, `#[projection]` and `#[reactor]` share:
//! the item's shape, which marker makes a method which handler, the checks of a
//! handler's signature (async or not, generics, receiver, arguments, return type), the
//! extra arguments of a command handler, one handler per subject type, and the removal of
//! the markers before the item is emitted again.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, PatType, ReturnType, Type};

use crate::ctxt::Errors;

/// One of the attribute macros on an impl block, for messages.
pub struct Macro {
    /// The attribute's name: `aggregate`.
    pub attribute: &'static str,
    /// A correct use: `#[aggregate(...)] impl Order { ... }`.
    pub example: &'static str,
    /// Why the type cannot be generic.
    pub why_not_generic: &'static str,
}

/// The impl block, or the tokens to emit instead: the item as written plus an error that
/// says where the attribute goes.
pub fn parse(mac: &Macro, item: TokenStream) -> Result<ItemImpl, TokenStream> {
    syn::parse2(item.clone()).map_err(|error| {
        let error = syn::Error::new(
            error.span(),
            format!(
                "#[{}] goes on an impl block: `{}`",
                mac.attribute, mac.example
            ),
        )
        .to_compile_error();
        quote!(#item #error)
    })
}

/// Gives the impl block's `impl` keyword the macro's hygiene, at the same place. The
/// handlers' event and command types are written again in the expansion; for one that
/// does not resolve, rustc suggests a type parameter (`impl<Typo>`) where the impl's
/// generics come from the user's tokens only, so the user's copy of the error would
/// differ from the expansion's and both would show. Without the suggestion they are the
/// same error, which rustc shows once.
pub fn mark_impl_token(item: &mut ItemImpl) {
    let span = item.impl_token.span;
    item.impl_token.span = proc_macro2::Span::call_site().located_at(span);
}

/// The macros implement a trait for one concrete type from an inherent impl: trait impls
/// are not where handlers live, and a name or checkpoint cannot vary with type parameters.
pub fn check_impl_shape(errors: &mut Errors, mac: &Macro, item: &ItemImpl) {
    if let Some((_, path, _)) = &item.trait_ {
        errors.error_spanned_by(
            path,
            format!(
                "#[{}] goes on an inherent impl block (`{}`), not a trait impl",
                mac.attribute,
                mac.example
                    .split_once("] ")
                    .map_or(mac.example, |(_, rest)| rest)
            ),
        );
    }
    if !item.generics.params.is_empty() {
        errors.error_spanned_by(
            &item.generics,
            format!(
                "{} {} cannot be generic: {}",
                article(mac.attribute),
                mac.attribute,
                mac.why_not_generic
            ),
        );
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The markers a macro knows, each giving methods one role.
pub struct Markers<R: 'static> {
    pub markers: &'static [(&'static str, R)],
    /// Why a method cannot have two roles: "a method is either a #[handle] or an #[apply]
    /// handler".
    pub one_role: &'static str,
}

impl<R: Copy + PartialEq> Markers<R> {
    fn role_of(&self, attribute: &syn::Attribute) -> Option<(&'static str, R)> {
        self.markers
            .iter()
            .find(|(name, _)| attribute.path().is_ident(name))
            .copied()
    }

    fn is_marker(&self, attribute: &syn::Attribute) -> bool {
        self.role_of(attribute).is_some()
    }

    /// A method has at most one role, given once, by a marker without arguments; `allowed`
    /// refuses a role with its reason (`#[setup]` on a reactor).
    pub fn method_role(
        &self,
        errors: &mut Errors,
        method: &ImplItemFn,
        allowed: impl Fn(R) -> Result<(), &'static str>,
    ) -> Option<R> {
        let mut role: Option<(&str, R)> = None;
        for attribute in &method.attrs {
            let Some((marker, this)) = self.role_of(attribute) else {
                continue;
            };
            if !matches!(attribute.meta, syn::Meta::Path(_)) {
                errors
                    .error_spanned_by(&attribute.meta, format!("`#[{marker}]` takes no arguments"));
            }
            if let Err(why) = allowed(this) {
                errors.error_spanned_by(attribute, why);
                continue;
            }
            match role {
                Some((_, first)) if first == this => errors.error_spanned_by(
                    attribute,
                    format!("duplicate `#[{marker}]` on method `{}`", method.sig.ident),
                ),
                Some((first, _)) => errors.error_spanned_by(
                    attribute,
                    format!(
                        "method `{}` is already `#[{first}]`: {}",
                        method.sig.ident, self.one_role
                    ),
                ),
                None => role = Some((marker, this)),
            }
        }
        role.map(|(_, role)| role)
    }

    /// Markers go on methods; on a constant, type or macro they would mean nothing.
    pub fn check_no_marker_on_non_method(&self, errors: &mut Errors, item: &ImplItem) {
        for attribute in non_method_attrs(item).into_iter().flatten() {
            if let Some((marker, _)) = self.role_of(attribute) {
                errors.error_spanned_by(
                    attribute,
                    format!("`#[{marker}]` marks a method, not a constant, type or macro"),
                );
            }
        }
    }

    /// Whether some method carries a marker of `role`, even a malformed one.
    pub fn has_marked_method(&self, item: &ItemImpl, role: R) -> bool {
        methods(item).any(|method| {
            method
                .attrs
                .iter()
                .any(|a| self.role_of(a).is_some_and(|(_, r)| r == role))
        })
    }

    /// The markers are this macro's; the compiler must not see them (it would report
    /// "cannot find attribute"), whether or not the macro reported an error.
    pub fn strip(&self, item: &mut ItemImpl) {
        for impl_item in &mut item.items {
            let attrs = match impl_item {
                ImplItem::Fn(method) => &mut method.attrs,
                ImplItem::Const(constant) => &mut constant.attrs,
                ImplItem::Type(ty) => &mut ty.attrs,
                ImplItem::Macro(mac) => &mut mac.attrs,
                _ => continue,
            };
            attrs.retain(|attribute| !self.is_marker(attribute));
        }
    }
}

fn non_method_attrs(item: &ImplItem) -> Option<&Vec<syn::Attribute>> {
    match item {
        ImplItem::Const(item) => Some(&item.attrs),
        ImplItem::Type(item) => Some(&item.attrs),
        ImplItem::Macro(item) => Some(&item.attrs),
        _ => None,
    }
}

/// The methods of the impl block.
pub fn methods(item: &ItemImpl) -> impl Iterator<Item = &ImplItemFn> {
    item.items.iter().filter_map(|item| match item {
        ImplItem::Fn(method) => Some(method),
        _ => None,
    })
}

/// Whether a handler is awaited by the runtime or called synchronously.
#[derive(Clone, Copy)]
pub enum Asyncness {
    /// `async fn`: the runner awaits it.
    Required,
    /// A plain `fn`, and why it cannot be async.
    Forbidden(&'static str),
}

/// What a check of a handler tells about it in messages: "a #[handle] method", and the
/// form it expects.
#[derive(Clone, Copy)]
pub struct Role<'a> {
    pub name: &'a str,
    pub form: &'a str,
}

/// A handler is called with one concrete type by generated code: it is not generic over
/// types (lifetimes are fine), and it is `async` exactly when the runtime awaits it.
/// Returns whether the method passed.
pub fn check_plain(
    errors: &mut Errors,
    method: &ImplItemFn,
    role: Role,
    asyncness: Asyncness,
) -> bool {
    let Role { name, form } = role;
    let mut passed = true;
    match (asyncness, &method.sig.asyncness) {
        (Asyncness::Required, None) => {
            errors.push(syn::Error::new(
                method.sig.fn_token.span,
                format!("{name} is an `async fn`: the runner awaits it; {form}"),
            ));
            passed = false;
        }
        (Asyncness::Forbidden(why), Some(asyncness)) => {
            errors.error_spanned_by(asyncness, why);
            passed = false;
        }
        _ => {}
    }
    if let Some(parameter) = method
        .sig
        .generics
        .params
        .iter()
        .find(|parameter| !matches!(parameter, syn::GenericParam::Lifetime(_)))
    {
        errors.error_spanned_by(
            parameter,
            format!("{name} cannot be generic: the dispatcher calls it with one concrete type"),
        );
        passed = false;
    }
    passed
}

/// The receiver a handler takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `&self`, and why not `&mut self`.
    Shared(&'static str),
    /// `&mut self`.
    Mut,
}

/// The handler takes the receiver its role gives it. Returns whether it does.
pub fn check_receiver(
    errors: &mut Errors,
    method: &ImplItemFn,
    role: Role,
    expected: Receiver,
) -> bool {
    let Role { name, form } = role;
    let written = match expected {
        Receiver::Shared(_) => "&self",
        Receiver::Mut => "&mut self",
    };
    let Some(receiver) = method.sig.receiver() else {
        errors.error_spanned_by(
            &method.sig.ident,
            format!("{name} needs the receiver `{written}`; {form}"),
        );
        return false;
    };
    let (reference, mutable) = match &*receiver.ty {
        Type::Reference(reference) => (true, reference.mutability.is_some()),
        _ => (false, false),
    };
    match expected {
        Receiver::Shared(_) if reference && !mutable => true,
        Receiver::Mut if reference && mutable => true,
        Receiver::Shared(why) if reference => {
            errors.error_spanned_by(
                receiver,
                format!("{name} takes `&self`, not `&mut self`: {why}; {form}"),
            );
            false
        }
        Receiver::Shared(_) => {
            errors.error_spanned_by(
                receiver,
                format!("{name} takes `&self`, not `self`; {form}"),
            );
            false
        }
        Receiver::Mut => {
            errors.error_spanned_by(receiver, format!("{name} takes `&mut self`; {form}"));
            false
        }
    }
}

/// The arguments after the receiver.
pub fn typed_arguments(method: &ImplItemFn) -> Vec<&PatType> {
    method
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(argument) => Some(argument),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// The written return type, or an error at the method's name saying what it returns.
pub fn check_output<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
    role: Role,
    returns: &str,
) -> Option<&'a Type> {
    let Role { name, form } = role;
    match &method.sig.output {
        ReturnType::Type(_, output) => Some(output),
        ReturnType::Default => {
            errors.error_spanned_by(
                &method.sig.ident,
                format!("{name} returns {returns}; {form}"),
            );
            None
        }
    }
}

/// An argument of a command handler after the command.
pub enum Extra<'a> {
    /// `&Services`, spanned at the user's type.
    Services(&'a Type),
    /// `&CommandContext`, spanned at the user's type.
    Context(&'a Type),
}

/// Whether `ty` is `&CommandContext` (by the last segment of its path, as the macro
/// cannot resolve types: `&factum::context::CommandContext` is one too).
fn is_context(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    matches!(&*reference.elem, Type::Path(path)
        if path.qself.is_none()
            && path.path.segments.last().is_some_and(|segment| segment.ident == "CommandContext"))
}

/// The arguments of a command handler after the command: at most one `&Services` and one
/// `&CommandContext`, in either order, both references. Services exist only when the
/// attribute declares their type (`services = S`): without it the handler would be
/// handed `&()`. Returns the extras, or `None` when one is malformed.
pub fn check_extras<'a>(
    errors: &mut Errors,
    extras: &[&'a PatType],
    services_declared: bool,
    form: &str,
) -> Option<Vec<Extra<'a>>> {
    let mut checked = Vec::new();
    let (mut services, mut contexts, mut valid) = (0, 0, true);
    for extra in extras {
        if is_context(&extra.ty) {
            contexts += 1;
            if contexts > 1 {
                errors.error_spanned_by(
                    extra,
                    format!("a #[handle] method takes the command context once; {form}"),
                );
                valid = false;
            }
            checked.push(Extra::Context(&extra.ty));
            continue;
        }
        services += 1;
        if services > 1 {
            errors.error_spanned_by(
                extra,
                format!("a #[handle] method takes at most the command, the services and the context; {form}"),
            );
            valid = false;
        } else if !matches!(*extra.ty, Type::Reference(_)) {
            errors.error_spanned_by(&extra.ty, "the services argument of a #[handle] method is a reference: `services: &Services` (or the context: `ctx: &CommandContext`)");
            valid = false;
        } else if let Type::Reference(reference) = &*extra.ty
            && !services_declared
            // `&()` is what a handler receives without declared services.
            && !matches!(&*reference.elem, Type::Tuple(unit) if unit.elems.is_empty())
        {
            errors.error_spanned_by(
                &extra.ty,
                format!(
                    "this #[handle] method takes services, but the #[aggregate] attribute has no `services` key: add `services = {}` to it",
                    type_text(&reference.elem)
                ),
            );
            valid = false;
        }
        checked.push(Extra::Services(&extra.ty));
    }
    valid.then_some(checked)
}

/// Each subject (event or command) has one handler: with two, which one runs would be
/// arbitrary. Types are compared as written; aliases of one type are caught by the
/// compiler as conflicting impls.
pub fn check_unique<'a>(
    errors: &mut Errors,
    handlers: impl Iterator<Item = (&'a Type, &'a Ident)>,
    role: &str,
    kind: &str,
) {
    let mut seen: Vec<(String, &Ident)> = Vec::new();
    for (ty, method) in handlers {
        let text = type_text(ty);
        match seen.iter().find(|(other, _)| *other == text) {
            Some((_, first)) => errors.error_spanned_by(
                ty,
                format!("two {role} handlers for {kind} `{text}`: `{first}` and `{method}`; each {kind} has exactly one"),
            ),
            None => seen.push((text, method)),
        }
    }
}

/// The last segment of a path type: `TaskList` in `read_models::TaskList`.
pub fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string()),
        _ => None,
    }
}

/// A type as written, without the spaces token printing puts around `::`, `<`, `>`, `,`
/// and `&`: `events::TaskDone`, not `events :: TaskDone`.
pub fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (spaced, tight) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// `#[apply] fn name(&mut self, event: &Event)`, as `#[aggregate]` and
/// `#[decision_model]` take it: not async, not generic, `&mut self`, the event by shared
/// reference and nothing else, no return value. Gives the event type when the signature
/// names one, and whether the handler is well-formed.
pub fn check_apply<'a>(errors: &mut Errors, method: &'a ImplItemFn) -> (Option<&'a Type>, bool) {
    const FORM: &str = "expected `#[apply] fn name(&mut self, event: &Event)`";
    let role = Role {
        name: "an #[apply] method",
        form: FORM,
    };
    let plain = check_plain(
        errors,
        method,
        role,
        Asyncness::Forbidden(
            "an #[apply] method cannot be async: applying an event only changes the state in memory",
        ),
    );
    let receiver_ok = check_receiver(errors, method, role, Receiver::Mut);
    let sig = &method.sig;
    let mut output_ok = true;
    if let ReturnType::Type(_, output) = &sig.output {
        let unit = matches!(&**output, Type::Tuple(tuple) if tuple.elems.is_empty());
        if !unit {
            errors.error_spanned_by(output, format!("an #[apply] method returns nothing: an event already happened, so applying it cannot fail; {FORM}"));
            output_ok = false;
        }
    }
    let arguments = typed_arguments(method);
    let (event, subject) = match arguments.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("an #[apply] method takes the event after `&mut self`; {FORM}"),
            ));
            (None, None)
        }
        [argument, rest @ ..] => {
            if let Some(extra) = rest.first() {
                errors.error_spanned_by(
                    extra,
                    format!("an #[apply] method takes only the event; {FORM}"),
                );
            }
            match &*argument.ty {
                Type::Reference(reference) if reference.mutability.is_none() => {
                    let event = &*reference.elem;
                    (rest.is_empty().then_some(event), Some(event))
                }
                other => {
                    errors.error_spanned_by(
                        other,
                        format!("an #[apply] method takes the event by shared reference; {FORM}"),
                    );
                    let event = match other {
                        Type::Reference(reference) => &*reference.elem,
                        other => other,
                    };
                    (None, Some(event))
                }
            }
        }
    };
    let valid = event.is_some() && plain && receiver_ok && output_ok;
    (subject, valid)
}
