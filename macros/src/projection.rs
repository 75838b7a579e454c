//! `#[projection(name = "...", version = N)]` and `#[reactor(name = "...")]` on an
//! inherent impl block of `#[on]` handlers (plus, for a projection, one optional
//! `#[setup]` method).
//!
//! Parses the arguments and the methods' signatures into a [`ConsumerModel`], checks every
//! handler's form, that one transaction type runs through a projection, and that no event
//! type has two handlers, and expands to the `Projection` or `Reactor` impl: the names of
//! the handled events, and a `handle`/`react` that decodes a recorded event of a handled
//! name into the handler's type (through its upcasts) and awaits the handler. Two handler
//! types that carry one event name (two versions of an event) are caught by a constant
//! check in the expansion, because names are only known to the compiler.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, PathArguments,
    ReturnType, Type,
};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::respan::respan;

/// The marker of an event handler.
const ON: &str = "on";
/// The marker of a projection's setup method.
const SETUP: &str = "setup";

/// Which trait the impl block implements.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#[projection]`: handlers write a read model through a transaction.
    Projection,
    /// `#[reactor]`: handlers have side effects and no transaction.
    Reactor,
}

impl Kind {
    /// The attribute's name, as written by users.
    fn attribute(self) -> &'static str {
        match self {
            Kind::Projection => "projection",
            Kind::Reactor => "reactor",
        }
    }

    fn accepted_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Projection => &[keys::NAME, keys::VERSION, keys::CRATE],
            Kind::Reactor => &[keys::NAME, keys::CRATE],
        }
    }

    /// The expected form of an `#[on]` handler, for messages.
    fn handler_form(self) -> &'static str {
        match self {
            Kind::Projection => {
                "expected `#[on] async fn name(&mut self, event: &Recorded<Event>, tx: &mut Tx) -> Result<(), ProjectionError>`"
            }
            Kind::Reactor => {
                "expected `#[on] async fn name(&mut self, event: &Recorded<Event>) -> Result<(), ProjectionError>`"
            }
        }
    }
}

const SETUP_FORM: &str =
    "expected `#[setup] async fn name(&mut self, tx: &mut Tx) -> Result<(), ProjectionError>`";

struct ConsumerArgs {
    /// The name and the span of its string literal.
    name: Setting<(String, Span)>,
    version: Setting<u32>,
    runtime: Setting<Path>,
}

/// An `#[on]` method: `async fn created(&mut self, event: &Recorded<TaskCreated>[, tx: &mut Tx])`.
struct EventHandler<'a> {
    method: &'a Ident,
    /// `TaskCreated` in `&Recorded<TaskCreated>`.
    event: &'a Type,
    output: &'a Type,
}

/// The `#[setup]` method: `async fn tables(&mut self, tx: &mut Tx)`.
struct SetupMethod<'a> {
    method: &'a Ident,
    output: &'a Type,
}

/// A method's transaction parameter: `Tx` in `tx: &mut Tx`, and the method taking it.
struct TxParameter<'a> {
    method: &'a Ident,
    ty: &'a Type,
}

struct ConsumerModel<'a> {
    kind: Kind,
    self_ty: &'a Type,
    name: String,
    version: u32,
    handlers: Vec<EventHandler<'a>>,
    setup: Option<SetupMethod<'a>>,
    /// The transaction type of a projection (the first one written).
    tx: Option<&'a Type>,
    runtime: Path,
}

/// The role a helper attribute gives a method.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    On,
    Setup,
}

impl Role {
    fn marker(self) -> &'static str {
        match self {
            Role::On => ON,
            Role::Setup => SETUP,
        }
    }
}

pub fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(error) => {
            let example = match kind {
                Kind::Projection => "#[projection(name = \"task_list\")] impl TaskList { ... }",
                Kind::Reactor => "#[reactor(name = \"reminders\")] impl Reminders { ... }",
            };
            let error = syn::Error::new(
                error.span(),
                format!("#[{}] goes on an impl block: `{example}`", kind.attribute()),
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let args = parse_args(&mut errors, kind, args);
    let expanded = check(&mut errors, kind, args, &item_impl)
        .filter(|_| errors.is_empty())
        .map(|model| expand_model(&model));
    elide_recorded_lifetimes(&mut item_impl);
    strip_markers(&mut item_impl);
    let errors = errors.into_compile_errors();
    quote! {
        #item_impl
        #expanded
        #errors
    }
}

/// The arguments, or `None` when they do not parse (checks of half-parsed arguments
/// would only report follow-up errors; the methods are checked all the same).
fn parse_args(errors: &mut Errors, kind: Kind, args: TokenStream) -> Option<ConsumerArgs> {
    let mut parsed = ConsumerArgs {
        name: Setting::new(keys::NAME),
        version: Setting::new(keys::VERSION),
        runtime: Setting::new(keys::CRATE),
    };
    let attribute = kind.attribute();
    let parser = syn::meta::parser(|meta| {
        let key_span = meta.path.span();
        if meta.path.is_ident(keys::NAME) {
            // name = "task_list"
            let form = match kind {
                Kind::Projection => "name = \"task_list\"",
                Kind::Reactor => "name = \"reminders\"",
            };
            let name = attr::parse_name(&meta, form)?;
            parsed.name.set(errors, key_span, name);
        } else if meta.path.is_ident(keys::VERSION) && kind == Kind::Projection {
            // version = 2
            let (version, _) = attr::parse_version(&meta, "version = 2")?;
            parsed.version.set(errors, key_span, version);
        } else if meta.path.is_ident(keys::VERSION) {
            errors.error_spanned_by(
                &meta.path,
                "a reactor has no `version`: it keeps no read model to rebuild, only a checkpoint",
            );
            attr::skip_value(&meta)?;
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::parse_crate_path(&meta)?;
            parsed.runtime.set(errors, key_span, path);
        } else {
            attr::unknown_key(errors, &meta, attribute, kind.accepted_keys())?;
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

fn check<'a>(
    errors: &mut Errors,
    kind: Kind,
    args: Option<ConsumerArgs>,
    item: &'a ItemImpl,
) -> Option<ConsumerModel<'a>> {
    check_impl_shape(errors, kind, item);
    let name = args
        .as_ref()
        .and_then(|args| check_name(errors, kind, &args.name, &item.self_ty));

    let mut handlers = Vec::new();
    let mut setup = None;
    let mut first_setup: Option<&Ident> = None;
    let mut tx_parameters: Vec<TxParameter> = Vec::new();
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            check_no_marker_on_non_method(errors, impl_item);
            continue;
        };
        match method_role(errors, kind, method) {
            Some(Role::On) => {
                let (handler, tx) = check_event_handler(errors, kind, method);
                handlers.extend(handler);
                tx_parameters.extend(tx);
            }
            Some(Role::Setup) => {
                let (checked, tx) = check_setup(errors, method);
                tx_parameters.extend(tx);
                match first_setup {
                    Some(first) => errors.error_spanned_by(
                        &method.sig.ident,
                        format!(
                            "a projection has one #[setup] method, and `{first}` already is it: create every table there"
                        ),
                    ),
                    None => {
                        first_setup = Some(&method.sig.ident);
                        setup = checked;
                    }
                }
            }
            None => {}
        }
    }
    if handlers.is_empty() && item.trait_.is_none() && !has_marked_method(item, ON) {
        errors.error_spanned_by(
            &item.self_ty,
            format!(
                "{} {} has no #[on] handler: mark each method that takes an event with `#[on]`; {}",
                kind.attribute(),
                quoted_type(&item.self_ty),
                kind.handler_form()
            ),
        );
    }
    check_unique_events(errors, &handlers);
    let tx = check_one_tx_type(errors, &tx_parameters);
    let args = args?;
    let version = args.version.get().copied().unwrap_or(1);
    Some(ConsumerModel {
        kind,
        self_ty: &item.self_ty,
        name: name?,
        version,
        handlers,
        setup,
        tx,
        runtime: attr::runtime_path(args.runtime),
    })
}

/// A projection or reactor is the concrete type of an inherent impl: its name keys one
/// checkpoint, so it cannot vary with type parameters, and a trait impl is not where
/// handlers live.
fn check_impl_shape(errors: &mut Errors, kind: Kind, item: &ItemImpl) {
    let attribute = kind.attribute();
    if let Some((_, path, _)) = &item.trait_ {
        errors.error_spanned_by(
            path,
            format!(
                "#[{attribute}] goes on an inherent impl block (`impl TaskList {{ ... }}`), not a trait impl"
            ),
        );
    }
    if !item.generics.params.is_empty() {
        errors.error_spanned_by(
            &item.generics,
            format!(
                "a {attribute} cannot be generic: its name keys one checkpoint, so it denotes one concrete type"
            ),
        );
    }
}

/// The name keys checkpoints and names the read model's file or schema, so it is 1 to 40
/// ASCII letters, digits or underscores starting with a letter (what the read models
/// accept). It defaults to the type's name, as for aggregates, events and commands.
fn check_name(
    errors: &mut Errors,
    kind: Kind,
    name: &Setting<(String, Span)>,
    self_ty: &Type,
) -> Option<String> {
    const RULE: &str = "1 to 40 ASCII letters, digits or underscores, starting with a letter: it keys the checkpoint and names the read model";
    let attribute = kind.attribute();
    match name.get() {
        Some((name, literal_span)) => {
            if is_valid_name(name) {
                Some(name.clone())
            } else {
                errors.push(syn::Error::new(
                    *literal_span,
                    format!("a {attribute} name is {RULE}"),
                ));
                None
            }
        }
        None => {
            let Some(name) = type_name(self_ty) else {
                errors.error_spanned_by(
                    self_ty,
                    format!("a {attribute} is a named type: `impl TaskList {{ ... }}`"),
                );
                return None;
            };
            if is_valid_name(&name) {
                Some(name)
            } else {
                errors.error_spanned_by(
                    self_ty,
                    format!(
                        "the {attribute} name defaults to the type's name `{name}`, but a name is {RULE}; give one with `name = \"...\"`"
                    ),
                );
                None
            }
        }
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The last segment of a path type: `TaskList` in `read_models::TaskList`.
fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string()),
        _ => None,
    }
}

fn quoted_type(ty: &Type) -> String {
    format!("`{}`", type_text(ty))
}

/// A type as written, without the spaces token printing puts around `::`, `<`, `>`, `,`
/// and `&`: `events::TaskDone`, not `events :: TaskDone`.
fn type_text(ty: &Type) -> String {
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

/// Whether some method carries `marker`, even a malformed one (its errors are reported
/// already; "no handler" would only be a follow-up).
fn has_marked_method(item: &ItemImpl, marker: &str) -> bool {
    item.items.iter().any(|item| match item {
        ImplItem::Fn(method) => method.attrs.iter().any(|a| a.path().is_ident(marker)),
        _ => false,
    })
}

/// `#[on]` and `#[setup]` mark methods; on a constant, type or macro they would mean
/// nothing.
fn check_no_marker_on_non_method(errors: &mut Errors, item: &ImplItem) {
    let attrs = match item {
        ImplItem::Const(item) => &item.attrs,
        ImplItem::Type(item) => &item.attrs,
        ImplItem::Macro(item) => &item.attrs,
        _ => return,
    };
    for attribute in attrs {
        if attribute.path().is_ident(ON) || attribute.path().is_ident(SETUP) {
            errors.error_spanned_by(attribute, "this marker goes on a method: `async fn ...`");
        }
    }
}

/// A method has at most one role, given once and without arguments; `#[setup]` belongs
/// to projections only.
fn method_role(errors: &mut Errors, kind: Kind, method: &ImplItemFn) -> Option<Role> {
    let mut role = None;
    for attribute in &method.attrs {
        let this = if attribute.path().is_ident(ON) {
            Role::On
        } else if attribute.path().is_ident(SETUP) {
            Role::Setup
        } else {
            continue;
        };
        let marker = this.marker();
        if !matches!(attribute.meta, syn::Meta::Path(_)) {
            errors.error_spanned_by(&attribute.meta, format!("`#[{marker}]` takes no arguments"));
        }
        if this == Role::Setup && kind == Kind::Reactor {
            errors.error_spanned_by(
                attribute,
                "#[setup] is for projections: a reactor has no read model to set up",
            );
            continue;
        }
        match role {
            Some(first) if first == this => errors.error_spanned_by(
                attribute,
                format!("duplicate `#[{marker}]` on method `{}`", method.sig.ident),
            ),
            Some(first) => errors.error_spanned_by(
                attribute,
                format!(
                    "method `{}` is already `#[{}]`: a method is either an #[on] handler or the #[setup] method",
                    method.sig.ident,
                    Role::marker(first)
                ),
            ),
            None => role = Some(this),
        }
    }
    role
}

/// Handlers are `async` (they await the read model or their side effects) and not
/// generic over types (the dispatcher calls them with one concrete event type; lifetime
/// parameters are fine). Returns whether the method passed.
fn check_async_method(errors: &mut Errors, method: &ImplItemFn, role: &str, form: &str) -> bool {
    let mut passed = true;
    if method.sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            method.sig.fn_token.span,
            format!("{role} is an `async fn`: the runner awaits it; {form}"),
        ));
        passed = false;
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
            format!("{role} cannot be generic: the dispatcher calls it with one concrete type"),
        );
        passed = false;
    }
    passed
}

/// Handlers take `&mut self`, like `Projection::handle`: `self` holds caches and
/// configuration that a handler may update.
fn check_receiver(errors: &mut Errors, method: &ImplItemFn, role: &str, form: &str) -> bool {
    match method.sig.receiver() {
        Some(receiver) if is_mut_reference(&receiver.ty) => true,
        Some(receiver) => {
            errors.error_spanned_by(receiver, format!("{role} takes `&mut self`; {form}"));
            false
        }
        None => {
            errors.error_spanned_by(
                &method.sig.ident,
                format!("{role} needs the receiver `&mut self`; {form}"),
            );
            false
        }
    }
}

fn is_mut_reference(ty: &Type) -> bool {
    matches!(ty, Type::Reference(reference) if reference.mutability.is_some())
}

/// A handler returns its outcome; the type is checked by the compiler at the return
/// type, against `Result<(), ProjectionError>`.
fn check_output<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
    role: &str,
    form: &str,
) -> Option<&'a Type> {
    match &method.sig.output {
        ReturnType::Type(_, output) => Some(output),
        ReturnType::Default => {
            errors.error_spanned_by(
                &method.sig.ident,
                format!(
                    "{role} returns `Result<(), ProjectionError>`, so that the runner can retry an event that failed; {form}"
                ),
            );
            None
        }
    }
}

fn typed_arguments(method: &ImplItemFn) -> Vec<&syn::PatType> {
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

/// `#[on] async fn name(&mut self, event: &Recorded<Event>[, tx: &mut Tx]) -> Result<..>`:
/// a projection's handler writes through the transaction; a reactor's has none. The
/// handler is `None` when the method is not usable as one; its transaction parameter is
/// returned whenever it could be read, for the one-type check.
fn check_event_handler<'a>(
    errors: &mut Errors,
    kind: Kind,
    method: &'a ImplItemFn,
) -> (Option<EventHandler<'a>>, Option<TxParameter<'a>>) {
    const ROLE: &str = "an #[on] handler";
    let form = kind.handler_form();
    let plain = check_async_method(errors, method, ROLE, form);
    let receiver_ok = check_receiver(errors, method, ROLE, form);
    let output = check_output(errors, method, ROLE, form);
    let sig = &method.sig;
    let arguments = typed_arguments(method);
    let (event, tx) = match (kind, arguments.as_slice()) {
        (_, []) => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{ROLE} takes the event after `&mut self`: `event: &Recorded<Event>`; {form}"
                ),
            ));
            (None, None)
        }
        (Kind::Projection, [event]) => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{ROLE} of a projection takes the read-model transaction after the event: `tx: &mut Tx`; {form}"
                ),
            ));
            (recorded_event(errors, event, form), None)
        }
        (Kind::Projection, [event, tx, rest @ ..]) => {
            if let Some(extra) = rest.first() {
                errors.error_spanned_by(
                    extra,
                    format!("{ROLE} takes only the event and the transaction; {form}"),
                );
            }
            (
                recorded_event(errors, event, form),
                tx_type(errors, tx, form).map(|ty| TxParameter {
                    method: &sig.ident,
                    ty,
                }),
            )
        }
        (Kind::Reactor, [event, rest @ ..]) => {
            if let Some(extra) = rest.first() {
                let why = if is_mut_reference(&extra.ty) {
                    "a reactor handler takes only the event: a reactor has no read-model transaction (a #[projection] has one)"
                } else {
                    "a reactor handler takes only the event"
                };
                errors.error_spanned_by(extra, format!("{why}; {form}"));
            }
            (recorded_event(errors, event, form), None)
        }
    };
    let handler = match (event, output) {
        (Some(event), Some(output)) if plain && receiver_ok => Some(EventHandler {
            method: &sig.ident,
            event,
            output,
        }),
        _ => None,
    };
    (handler, tx)
}

/// `#[setup] async fn name(&mut self, tx: &mut Tx) -> Result<(), ProjectionError>`: it
/// creates the read model's tables in the transaction of the first batch. Returns the
/// method when usable, and its transaction parameter whenever it could be read.
fn check_setup<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
) -> (Option<SetupMethod<'a>>, Option<TxParameter<'a>>) {
    const ROLE: &str = "the #[setup] method";
    let plain = check_async_method(errors, method, ROLE, SETUP_FORM);
    let receiver_ok = check_receiver(errors, method, ROLE, SETUP_FORM);
    let output = check_output(errors, method, ROLE, SETUP_FORM);
    let sig = &method.sig;
    let tx = match typed_arguments(method).as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{ROLE} takes the read-model transaction after `&mut self`: `tx: &mut Tx`; {SETUP_FORM}"
                ),
            ));
            None
        }
        [tx, rest @ ..] => {
            if let Some(extra) = rest.first() {
                errors.error_spanned_by(
                    extra,
                    format!("{ROLE} takes only the transaction; {SETUP_FORM}"),
                );
            }
            tx_type(errors, tx, SETUP_FORM).map(|ty| TxParameter {
                method: &sig.ident,
                ty,
            })
        }
    };
    let setup = output
        .filter(|_| plain && receiver_ok)
        .map(|output| SetupMethod {
            method: &sig.ident,
            output,
        });
    (setup, tx)
}

/// The event parameter is `&Recorded<Event>` (or `&Recorded<'_, Event>`): the decoded event
/// with its record (stream, versions, position, metadata). The event type is a path
/// without generic arguments, as `#[event]` types are.
fn recorded_event<'a>(
    errors: &mut Errors,
    argument: &'a syn::PatType,
    form: &str,
) -> Option<&'a Type> {
    let ty = &*argument.ty;
    let Type::Reference(reference) = ty else {
        errors.error_spanned_by(
            ty,
            format!(
                "an #[on] handler takes the event by reference: `event: &Recorded<Event>`; {form}"
            ),
        );
        return None;
    };
    if let Some(mutability) = &reference.mutability {
        errors.error_spanned_by(
            mutability,
            format!("an #[on] handler takes the event by shared reference: `event: &Recorded<Event>`; {form}"),
        );
        return None;
    }
    let recorded = match &*reference.elem {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .filter(|segment| segment.ident == "Recorded"),
        _ => None,
    };
    let Some(recorded) = recorded else {
        let written = type_text(&reference.elem);
        errors.error_spanned_by(
            &reference.elem,
            format!(
                "an #[on] handler takes the event with its record: `event: &Recorded<{written}>` (`Recorded` dereferences to the event and tells its stream, version and position)"
            ),
        );
        return None;
    };
    let event = match &recorded.arguments {
        PathArguments::AngleBracketed(arguments) => {
            let mut types = arguments.args.iter().filter_map(|argument| match argument {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            });
            match (types.next(), types.next()) {
                (Some(event), None) => Some(event),
                _ => None,
            }
        }
        _ => None,
    };
    let Some(event) = event else {
        errors.error_spanned_by(
            recorded,
            format!("`Recorded` names the event type: `event: &Recorded<Event>`; {form}"),
        );
        return None;
    };
    let generic_free_path = match event {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .iter()
                    .all(|segment| segment.arguments.is_none())
        }
        _ => false,
    };
    if !generic_free_path {
        errors.error_spanned_by(
            event,
            "the event of an #[on] handler is an event type named by a path without generic arguments, e.g. `TaskCreated` or `events::TaskCreated`",
        );
        return None;
    }
    Some(event)
}

/// The transaction parameter is `&mut Tx` where `Tx` is a `'static` read-model transaction
/// type (the associated type `Projection::Tx`, so it names no borrowed lifetime).
fn tx_type<'a>(errors: &mut Errors, argument: &'a syn::PatType, form: &str) -> Option<&'a Type> {
    let ty = &*argument.ty;
    let tx = match ty {
        Type::Reference(reference) if reference.mutability.is_some() => &*reference.elem,
        _ => {
            errors.error_spanned_by(
                ty,
                format!(
                    "the read-model transaction is taken by mutable reference: `tx: &mut Tx`; {form}"
                ),
            );
            return None;
        }
    };
    if let Some(lifetime) = non_static_lifetime(tx.to_token_stream()) {
        errors.push(syn::Error::new(
            lifetime,
            "the read-model transaction type borrows nothing (it is `'static`): write it without lifetimes",
        ));
        return None;
    }
    Some(tx)
}

/// The span of the first lifetime other than `'static` in `tokens`.
fn non_static_lifetime(tokens: TokenStream) -> Option<Span> {
    let mut trees = tokens.into_iter().peekable();
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                if let Some(TokenTree::Ident(ident)) = trees.peek()
                    && ident != "static"
                {
                    return Some(ident.span());
                }
            }
            TokenTree::Group(group) => {
                if let Some(span) = non_static_lifetime(group.stream()) {
                    return Some(span);
                }
            }
            _ => {}
        }
    }
    None
}

/// Each event type has one handler: with two, which one runs would be arbitrary. Types
/// are compared as written; two types carrying one event name are caught by the constant
/// check of the expansion.
fn check_unique_events(errors: &mut Errors, handlers: &[EventHandler]) {
    for (index, handler) in handlers.iter().enumerate() {
        let text = type_text(handler.event);
        if let Some(first) = handlers[..index]
            .iter()
            .find(|earlier| type_text(earlier.event) == text)
        {
            errors.error_spanned_by(
                handler.event,
                format!(
                    "two #[on] handlers for event `{text}`: `{}` and `{}`; each event has one handler",
                    first.method, handler.method
                ),
            );
        }
    }
}

/// A projection writes through one transaction type, `Projection::Tx`: every handler
/// and the setup method name the same one (compared as written).
fn check_one_tx_type<'a>(errors: &mut Errors, parameters: &[TxParameter<'a>]) -> Option<&'a Type> {
    let (first, rest) = parameters.split_first()?;
    let expected = type_text(first.ty);
    for parameter in rest {
        let text = type_text(parameter.ty);
        if text != expected {
            errors.error_spanned_by(
                parameter.ty,
                format!(
                    "`{}` takes the transaction `{text}`, but `{}` takes `{expected}`: a projection writes through one read-model transaction type",
                    parameter.method, first.method
                ),
            );
        }
    }
    Some(first.ty)
}

/// An `async fn` may not leave a lifetime of a path implicit (E0726), so the event
/// parameter `&Recorded<Event>` of each `#[on]` handler is written `&Recorded<'_, Event>`
/// for the compiler: users write the short form of the design, or either explicit one.
fn elide_recorded_lifetimes(item: &mut ItemImpl) {
    for item in &mut item.items {
        let ImplItem::Fn(method) = item else {
            continue;
        };
        if !method.attrs.iter().any(|a| a.path().is_ident(ON)) {
            continue;
        }
        let Some(FnArg::Typed(event)) = method
            .sig
            .inputs
            .iter_mut()
            .find(|input| matches!(input, FnArg::Typed(_)))
        else {
            continue;
        };
        let Type::Reference(reference) = &mut *event.ty else {
            continue;
        };
        let Type::Path(path) = &mut *reference.elem else {
            continue;
        };
        let Some(recorded) = path.path.segments.last_mut() else {
            continue;
        };
        if recorded.ident != "Recorded" {
            continue;
        }
        let span = recorded.ident.span();
        // `&Recorded` without arguments is reported already; the compiler adds what it lacks.
        if let PathArguments::AngleBracketed(arguments) = &mut recorded.arguments
            && !arguments
                .args
                .iter()
                .any(|argument| matches!(argument, GenericArgument::Lifetime(_)))
        {
            let elided = syn::Lifetime::new("'_", span);
            arguments.args.insert(0, GenericArgument::Lifetime(elided));
        }
    }
}

/// `#[on]` and `#[setup]` are markers for this macro; the compiler must not see them.
fn strip_markers(item: &mut ItemImpl) {
    let is_marker = |attribute: &syn::Attribute| {
        attribute.path().is_ident(ON) || attribute.path().is_ident(SETUP)
    };
    for item in &mut item.items {
        match item {
            ImplItem::Fn(method) => method.attrs.retain(|a| !is_marker(a)),
            ImplItem::Const(constant) => constant.attrs.retain(|a| !is_marker(a)),
            ImplItem::Type(ty) => ty.attrs.retain(|a| !is_marker(a)),
            ImplItem::Macro(mac) => mac.attrs.retain(|a| !is_marker(a)),
            _ => {}
        }
    }
}

fn expand_model(model: &ConsumerModel) -> TokenStream {
    let ConsumerModel {
        kind,
        self_ty,
        name,
        version,
        handlers,
        setup,
        tx,
        runtime,
    } = model;
    let private = quote!(#runtime::__private);
    let outcome = quote!(::core::result::Result<(), #private::ProjectionError>);
    // Spanned at each handler's event type, so a type that is not an event is reported there.
    let event_names: Vec<TokenStream> = handlers
        .iter()
        .map(|handler| {
            let event = handler.event;
            let private = respan(private.clone(), event.span());
            quote_spanned!(event.span()=> <#event as #private::Event>::NAME)
        })
        .collect();
    let dispatch = handlers.iter().zip(&event_names).map(|(handler, event_name)| {
        let EventHandler {
            method,
            event,
            output,
        } = handler;
        let decode = {
            let private = respan(private.clone(), event.span());
            quote_spanned!(event.span()=> #private::decode_recorded::<#event>(event))
        };
        let tx_argument = (*kind == Kind::Projection).then(|| quote!(, tx));
        // Spanned at the handler's name: a future that is not `Send` is reported there.
        let future = {
            let private = respan(private.clone(), method.span());
            quote_spanned! {method.span()=>
                #private::send_future(<#self_ty>::#method(self, &#private::Recorded::new(&__factum_event, event) #tx_argument))
            }
        };
        // Spanned at the handler's return type: another outcome type is reported there.
        let call = quote_spanned!(output.span()=> #future.await);
        quote! {
            if event.name == #event_name {
                return match #decode {
                    ::core::result::Result::Ok(__factum_event) => #call,
                    ::core::result::Result::Err(__factum_error) => ::core::result::Result::Err(__factum_error),
                };
            }
        }
    });
    let handled_names_check = repeated_event_name_check(model, &event_names, &private);

    let consumer_impl = match kind {
        Kind::Projection => {
            let tx = tx
                .map(ToTokens::to_token_stream)
                .unwrap_or_else(|| quote!(()));
            let setup = setup.as_ref().map(|SetupMethod { method, output }| {
                let future = {
                    let private = respan(private.clone(), method.span());
                    quote_spanned!(method.span()=> #private::send_future(<#self_ty>::#method(self, tx)))
                };
                let call = quote_spanned!(output.span()=> #future.await);
                quote! {
                    async fn setup(&mut self, tx: &mut Self::Tx) -> #outcome {
                        #call
                    }
                }
            });
            quote! {
                #[automatically_derived]
                impl #private::Projection for #self_ty {
                    const NAME: &'static str = #name;
                    const VERSION: u32 = #version;
                    const EVENTS: &'static [&'static str] = &[#(#event_names),*];
                    type Tx = #tx;

                    #setup

                    async fn handle(&mut self, event: &#private::RecordedEvent, tx: &mut Self::Tx) -> #outcome {
                        #(#dispatch)*
                        ::core::result::Result::Ok(())
                    }
                }
            }
        }
        Kind::Reactor => quote! {
            #[automatically_derived]
            impl #private::Reactor for #self_ty {
                const NAME: &'static str = #name;
                const EVENTS: &'static [&'static str] = &[#(#event_names),*];

                async fn react(&mut self, event: &#private::RecordedEvent) -> #outcome {
                    #(#dispatch)*
                    ::core::result::Result::Ok(())
                }
            }
        },
    };
    quote! {
        const _: () = {
            #consumer_impl
            #handled_names_check
        };
    }
}

/// Constant checks that no two handlers take events of one name (two versions of an
/// event): dispatch goes by name, so the later handler would never run.
fn repeated_event_name_check(
    model: &ConsumerModel,
    event_names: &[TokenStream],
    private: &TokenStream,
) -> Option<TokenStream> {
    if model.handlers.len() < 2 {
        return None;
    }
    let attribute = model.kind.attribute();
    let self_ty = quoted_type(model.self_ty);
    let checks = model.handlers.iter().enumerate().skip(1).map(|(index, handler)| {
        let event = handler.event;
        let message = LitStr::new(
            &format!(
                "{attribute} {self_ty}: the #[on] handler `{}` takes `{}`, whose event name an earlier #[on] handler already takes; each event name has one handler, which receives every stored version decoded into its type (older versions through `upcast_from`)",
                handler.method,
                type_text(event)
            ),
            event.span(),
        );
        let private = respan(private.clone(), event.span());
        quote_spanned! {event.span()=>
            ::core::assert!(!#private::repeats_earlier(__FACTUM_EVENT_NAMES, #index), #message);
        }
    });
    Some(quote! {
        const _: () = {
            const __FACTUM_EVENT_NAMES: &[&str] = &[#(#event_names),*];
            #(#checks)*
        };
    })
}
