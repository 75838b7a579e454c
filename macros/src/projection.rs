//! `#[projection(name = "...", version = N)]` and `#[reactor(name = "...")]` on an
//! inherent impl block of `#[on]` handlers (plus, for a projection, one optional
//! `#[setup]` method).
//!
//! Parses the arguments and the methods' signatures (through `impl_block`) into a
//! [`ConsumerModel`], checks every handler's form, that one transaction type runs through
//! a projection, and that no event type has two handlers, and expands to the `Projection`
//! or `Reactor` impl: the names of the handled events, and a `handle`/`react` that decodes
//! a recorded event of a handled name into the handler's type (through its upcasts) and
//! awaits the handler. Constant checks in the expansion refuse two handler types that
//! carry one event name (two versions of an event) and a name the read models would
//! refuse at start-up, by the runtime's own rule, because only the compiler knows them.
//!
//! After an error the impl is still emitted, with the well-formed handlers only, so the
//! mistake is the only error reported.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, PathArguments,
    Type,
};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::impl_block::{self, Asyncness, Macro, Markers, Receiver, Role as Check, type_text};
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
        self.description().attribute
    }

    fn description(self) -> &'static Macro {
        const PROJECTION: Macro = Macro {
            attribute: "projection",
            example: "#[projection(name = \"task_list\")] impl TaskList { ... }",
            why_not_generic: "its name keys one checkpoint, so it denotes one concrete type",
        };
        const REACTOR: Macro = Macro {
            attribute: "reactor",
            example: "#[reactor(name = \"reminders\")] impl Reminders { ... }",
            why_not_generic: "its name keys one checkpoint, so it denotes one concrete type",
        };
        match self {
            Kind::Projection => &PROJECTION,
            Kind::Reactor => &REACTOR,
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

/// What a handler returns, for messages.
const RETURNS: &str =
    "`Result<(), ProjectionError>`, so that the runner can retry an event that failed";

/// The role a marker gives a method.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    On,
    Setup,
}

const MARKERS: Markers<Role> = Markers {
    markers: &[(ON, Role::On), (SETUP, Role::Setup)],
    one_role: "a method is either an #[on] handler or the #[setup] method",
};

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

/// The consumer's name, where it comes from, and the span errors about it point at.
struct Name {
    name: String,
    span: Span,
    /// Whether it defaults to the type's name (no `name = "..."`).
    defaulted: bool,
}

struct ConsumerModel<'a> {
    kind: Kind,
    self_ty: &'a Type,
    /// Whether the impl block is generic (reported): no impl can be emitted for it.
    generic: bool,
    /// `None` when the type has no name to default to (reported).
    name: Option<Name>,
    version: u32,
    /// The well-formed handlers.
    handlers: Vec<EventHandler<'a>>,
    setup: Option<SetupMethod<'a>>,
    /// The transaction type of a projection (the first one written).
    tx: Option<&'a Type>,
    runtime: Path,
}

pub fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl = match impl_block::parse(kind.description(), item) {
        Ok(item_impl) => item_impl,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let args = parse_args(&mut errors, kind, args);
    let model = check(&mut errors, kind, args, &item_impl);
    let expanded = expand_model(&model);
    elide_recorded_lifetimes(&mut item_impl);
    MARKERS.strip(&mut item_impl);
    impl_block::mark_impl_token(&mut item_impl);
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
            let name = attr::recover(errors, &meta, attr::parse_name(&meta, form))?;
            parsed.name.set_parsed(errors, key_span, name);
        } else if meta.path.is_ident(keys::VERSION) && kind == Kind::Projection {
            // version = 2
            if let Some((version, _)) = attr::parse_version(errors, &meta, "version = 2")? {
                parsed.version.set(errors, key_span, version);
            }
        } else if meta.path.is_ident(keys::VERSION) {
            errors.error_spanned_by(
                &meta.path,
                "a reactor has no `version`: it keeps no read model to rebuild, only a checkpoint",
            );
            attr::skip_value(&meta)?;
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::recover(errors, &meta, attr::parse_crate_path(&meta))?;
            parsed.runtime.set_parsed(errors, key_span, path);
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
) -> ConsumerModel<'a> {
    impl_block::check_impl_shape(errors, kind.description(), item);
    let name = consumer_name(errors, kind, args.as_ref(), &item.self_ty);

    let mut handlers = Vec::new();
    // The event of every handler whose event could be read, well-formed or not.
    let mut handled = Vec::new();
    let mut setup = None;
    let mut first_setup: Option<&Ident> = None;
    let mut tx_parameters: Vec<TxParameter> = Vec::new();
    let allowed = |role| match (role, kind) {
        (Role::Setup, Kind::Reactor) => {
            Err("#[setup] is for projections: a reactor has no read model to set up")
        }
        _ => Ok(()),
    };
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else {
            MARKERS.check_no_marker_on_non_method(errors, impl_item);
            continue;
        };
        match MARKERS.method_role(errors, method, allowed) {
            Some(Role::On) => {
                let checked = check_event_handler(errors, kind, method);
                handlers.extend(checked.handler);
                handled.extend(checked.event);
                tx_parameters.extend(checked.tx);
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
    if handlers.is_empty() && item.trait_.is_none() && !MARKERS.has_marked_method(item, Role::On) {
        errors.error_spanned_by(
            &item.self_ty,
            format!(
                "{} `{}` has no #[on] handler: mark each method that takes an event with `#[on]`; {}",
                kind.attribute(),
                type_text(&item.self_ty),
                kind.handler_form()
            ),
        );
    }
    impl_block::check_unique(errors, handled.into_iter(), "#[on]", "event");
    // A second handler of one event would be a conflicting match arm: keep the first.
    let mut seen = Vec::new();
    handlers.retain(|handler| {
        let text = type_text(handler.event);
        let first = !seen.contains(&text);
        seen.push(text);
        first
    });
    let tx = check_one_tx_type(errors, &tx_parameters);
    if kind == Kind::Projection && tx.is_none() {
        // Which transaction type was meant is unknown (reported): the fallback impl
        // calls no method, which would only add a mismatch with its placeholder.
        handlers.clear();
        setup = None;
    }
    let (version, runtime) = match args {
        Some(args) => (
            args.version.get().copied().unwrap_or(1),
            attr::runtime_path(args.runtime),
        ),
        None => (1, syn::parse_quote!(::factum)),
    };
    ConsumerModel {
        kind,
        self_ty: &item.self_ty,
        generic: !item.generics.params.is_empty(),
        name,
        version,
        handlers,
        setup,
        tx,
        runtime,
    }
}

/// The name keys checkpoints and names the read model's file or schema; it defaults to
/// the type's name, as for aggregates, events and commands. Whether the read models
/// accept it is checked by a constant assertion in the expansion, with the runtime's own
/// rule (`__private::valid_consumer_name`), so the two cannot drift apart.
fn consumer_name(
    errors: &mut Errors,
    kind: Kind,
    args: Option<&ConsumerArgs>,
    self_ty: &Type,
) -> Option<Name> {
    if let Some((name, span)) = args.and_then(|args| args.name.get()) {
        return Some(Name {
            name: name.clone(),
            span: *span,
            defaulted: false,
        });
    }
    match impl_block::type_name(self_ty) {
        Some(name) => Some(Name {
            name,
            span: self_ty.span(),
            defaulted: true,
        }),
        None => {
            errors.error_spanned_by(
                self_ty,
                format!(
                    "a {} is a named type: `impl TaskList {{ ... }}`",
                    kind.attribute()
                ),
            );
            None
        }
    }
}

/// `#[on] async fn name(&mut self, event: &Recorded<Event>[, tx: &mut Tx]) -> Result<..>`:
/// a projection's handler writes through the transaction; a reactor's has none. Returns
/// the handler when the method is usable as one; its event type and its transaction
/// parameter whenever they could be read, for the one-handler and one-type checks.
fn check_event_handler<'a>(errors: &mut Errors, kind: Kind, method: &'a ImplItemFn) -> Checked<'a> {
    const ROLE: &str = "an #[on] handler";
    let form = kind.handler_form();
    let role = Check { name: ROLE, form };
    // Handlers take `&mut self`, like `Projection::handle`: `self` holds caches and
    // configuration that a handler may update.
    let plain = impl_block::check_plain(errors, method, role, Asyncness::Required);
    let receiver_ok = impl_block::check_receiver(errors, method, role, Receiver::Mut);
    let output = impl_block::check_output(errors, method, role, RETURNS);
    let sig = &method.sig;
    let arguments = impl_block::typed_arguments(method);
    let Some((event, rest)) = arguments.split_first() else {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("{ROLE} takes the event after `&mut self`: `event: &Recorded<Event>`; {form}"),
        ));
        return Checked::default();
    };
    let event = recorded_event(errors, event, form);
    let (tx, arguments_ok) = match (kind, rest) {
        (Kind::Projection, []) => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{ROLE} of a projection takes the read-model transaction after the event: `tx: &mut Tx`; {form}"
                ),
            ));
            (None, false)
        }
        (Kind::Projection, [tx, extra @ ..]) => {
            if let Some(extra) = extra.first() {
                errors.error_spanned_by(
                    extra,
                    format!("{ROLE} takes only the event and the transaction; {form}"),
                );
            }
            let tx = tx_type(errors, tx, form).map(|ty| TxParameter {
                method: &sig.ident,
                ty,
            });
            let ok = tx.is_some() && extra.is_empty();
            (tx, ok)
        }
        (Kind::Reactor, []) => (None, true),
        (Kind::Reactor, [extra, ..]) => {
            let why = if matches!(&*extra.ty, Type::Reference(r) if r.mutability.is_some()) {
                "a reactor handler takes only the event: a reactor has no read-model transaction (a #[projection] has one)"
            } else {
                "a reactor handler takes only the event"
            };
            errors.error_spanned_by(extra, format!("{why}; {form}"));
            (None, false)
        }
    };
    let handler = match (event, output) {
        (Some(event), Some(output)) if plain && receiver_ok && arguments_ok => Some(EventHandler {
            method: &sig.ident,
            event,
            output,
        }),
        _ => None,
    };
    Checked {
        handler,
        event: event.map(|event| (event, &sig.ident)),
        tx,
    }
}

/// What the check of an `#[on]` method found.
#[derive(Default)]
struct Checked<'a> {
    /// The handler, when the method is usable as one.
    handler: Option<EventHandler<'a>>,
    /// Its event type and name, when they could be read.
    event: Option<(&'a Type, &'a Ident)>,
    /// Its transaction parameter, when it could be read.
    tx: Option<TxParameter<'a>>,
}

/// `#[setup] async fn name(&mut self, tx: &mut Tx) -> Result<(), ProjectionError>`: it
/// creates the read model's tables in the transaction of the first batch. Returns the
/// method when usable, and its transaction parameter whenever it could be read.
fn check_setup<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
) -> (Option<SetupMethod<'a>>, Option<TxParameter<'a>>) {
    const ROLE: &str = "the #[setup] method";
    let role = Check {
        name: ROLE,
        form: SETUP_FORM,
    };
    let plain = impl_block::check_plain(errors, method, role, Asyncness::Required);
    let receiver_ok = impl_block::check_receiver(errors, method, role, Receiver::Mut);
    let output = impl_block::check_output(errors, method, role, RETURNS);
    let sig = &method.sig;
    let (tx, extra_ok) = match impl_block::typed_arguments(method).as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "{ROLE} takes the read-model transaction after `&mut self`: `tx: &mut Tx`; {SETUP_FORM}"
                ),
            ));
            (None, false)
        }
        [tx, rest @ ..] => {
            if let Some(extra) = rest.first() {
                errors.error_spanned_by(
                    extra,
                    format!("{ROLE} takes only the transaction; {SETUP_FORM}"),
                );
            }
            let tx = tx_type(errors, tx, SETUP_FORM).map(|ty| TxParameter {
                method: &sig.ident,
                ty,
            });
            (tx, rest.is_empty())
        }
    };
    let setup = output
        .filter(|_| plain && receiver_ok && extra_ok && tx.is_some())
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

/// A projection writes through one transaction type, `Projection::Tx`: every handler
/// and the setup method name the same one (compared as written). Returns it, or `None`
/// when they differ: which one was meant is unknown, so no impl is emitted.
fn check_one_tx_type<'a>(errors: &mut Errors, parameters: &[TxParameter<'a>]) -> Option<&'a Type> {
    let (first, rest) = parameters.split_first()?;
    let expected = type_text(first.ty);
    let mut one = true;
    for parameter in rest {
        let text = type_text(parameter.ty);
        if text != expected {
            one = false;
            errors.error_spanned_by(
                parameter.ty,
                format!(
                    "`{}` takes the transaction `{text}`, but `{}` takes `{expected}`: a projection writes through one read-model transaction type",
                    parameter.method, first.method
                ),
            );
        }
    }
    one.then_some(first.ty)
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

fn expand_model(model: &ConsumerModel) -> TokenStream {
    let ConsumerModel {
        kind,
        self_ty,
        generic,
        name,
        version,
        handlers,
        setup,
        tx,
        runtime,
    } = model;
    // Without a name no impl can be written (reported).
    let (Some(name), false) = (name, *generic) else {
        return TokenStream::new();
    };
    let private = quote!(#runtime::__private);
    // A projection whose handlers name no (or no one) transaction type has no well-formed
    // handler: a placeholder stands in for the type (reported).
    let tx = tx.map_or_else(|| quote!(#private::Unnamed), ToTokens::to_token_stream);
    let name_check = name_check(*kind, name, &private);
    let name = &name.name;
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
            #name_check
        };
    }
}

/// A constant assertion that the read models accept the name, by the rule they apply at
/// start-up: a bad name fails the build, at the name (or at the type it defaults to).
fn name_check(kind: Kind, name: &Name, private: &TokenStream) -> TokenStream {
    let attribute = kind.attribute();
    let Name {
        name,
        span,
        defaulted,
    } = name;
    const RULE: &str = "1 to 40 ASCII letters, digits or underscores, starting with a letter and not with `pg_` (reserved by PostgreSQL): it keys the checkpoint and names the read model";
    let message = if *defaulted {
        format!(
            "the {attribute} name defaults to the type's name `{name}`, but a name is {RULE}; give one with `name = \"...\"`"
        )
    } else {
        format!("the {attribute} name `{name}` is not valid: a name is {RULE}")
    };
    let private = respan(private.clone(), *span);
    quote_spanned! {*span=>
        const _: () = ::core::assert!(#private::valid_consumer_name(#name), #message);
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
    let self_ty = format!("`{}`", type_text(model.self_ty));
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
        quote_spanned! {event.span()=>
            ::core::assert!(__FACTUM_FIRST_REPEAT != #index, #message);
        }
    });
    let count = event_names.len();
    Some(quote! {
        const _: () = {
            const __FACTUM_EVENT_NAMES: [&str; #count] = [#(#event_names),*];
            const __FACTUM_FIRST_REPEAT: usize = #private::first_repeat(&__FACTUM_EVENT_NAMES);
            #(#checks)*
        };
    })
}
