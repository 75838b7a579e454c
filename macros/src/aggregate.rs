//! `#[aggregate(name = "...", events = E, commands = C, error = Err, services = S,
//! ignore_events = [..])]` on an inherent impl block of `#[handle]` and `#[apply]` methods.
//!
//! Parses the arguments and the methods' signatures (through `impl_block`) into an
//! [`AggregateModel`], checks every handler's form and that no event or command has two
//! handlers, and expands to the `Aggregate` impl plus one `Apply`/`Handle` impl per
//! handler. That every event and command *has* a handler is checked by the compiler,
//! through the bounds of the sets' `ApplyEvents`/`DispatchCommands` impls (see `set`).
//!
//! After an error the expansion is still emitted, minus what the error makes unknowable:
//! a malformed handler gets a fallback impl for its event or command (so the coverage
//! check still runs for the others and reports no false "missing handler"), and a missing
//! key is filled by a placeholder type, so the error is the only one reported.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Ident, ImplItemFn, ItemImpl, Path, ReturnType, Type};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
use crate::impl_block::{
    self, Asyncness, Extra, Macro, Markers, Receiver, Role as Check, type_text,
};
use crate::respan::respan;

const HANDLE: &str = "handle";
const APPLY: &str = "apply";
const ACCEPTED: &[&str] = &[
    keys::NAME,
    keys::EVENTS,
    keys::COMMANDS,
    keys::ERROR,
    keys::SERVICES,
    keys::IGNORE_EVENTS,
    keys::SNAPSHOT,
    keys::CRATE,
];

const MACRO: Macro = Macro {
    attribute: "aggregate",
    example: "#[aggregate(...)] impl Order { ... }",
    why_not_generic: "its name and event set denote one concrete type",
};

/// The role a marker gives a method.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Handle,
    Apply,
}

const MARKERS: Markers<Role> = Markers {
    markers: &[(HANDLE, Role::Handle), (APPLY, Role::Apply)],
    one_role: "a method is either a #[handle] or an #[apply] handler",
};

struct AggregateArgs {
    name: Setting<String>,
    events: Setting<Type>,
    commands: Setting<Type>,
    error: Setting<Type>,
    services: Setting<Type>,
    ignore_events: Setting<Vec<Type>>,
    snapshot: Setting<u32>,
    runtime: Setting<Path>,
}

/// A `#[handle]` method: `fn place(&self, command: PlaceOrder[, services: &S][, ctx:
/// &CommandContext]) -> Result<..>` (services and context in either order).
struct CommandHandler<'a> {
    method: &'a Ident,
    command: &'a Type,
    /// What the method takes after the command, in its order.
    extras: Vec<Extra<'a>>,
    output: &'a Type,
}

/// An `#[apply]` method: `fn placed(&mut self, event: &OrderPlaced)`.
struct EventHandler<'a> {
    method: &'a Ident,
    event: &'a Type,
}

/// A checked handler, or what is known of a malformed one: the type it was meant for,
/// when its signature names one.
enum Checked<'a, H> {
    Valid(H),
    Malformed(Option<&'a Type>),
}

/// The handlers of one role: the valid ones, the subjects of the malformed ones (each
/// gets a fallback impl), and whether every handler's subject is known (if not, the
/// coverage check of that role would report the unknown one as missing, so it is
/// skipped).
struct Handlers<'a, H> {
    valid: Vec<H>,
    malformed: Vec<(&'a Type, &'a Ident)>,
    all_known: bool,
}

impl<'a, H> Handlers<'a, H> {
    fn new() -> Self {
        Self {
            valid: Vec::new(),
            malformed: Vec::new(),
            all_known: true,
        }
    }

    fn push(&mut self, method: &'a Ident, checked: Checked<'a, H>) {
        match checked {
            Checked::Valid(handler) => self.valid.push(handler),
            Checked::Malformed(Some(subject)) => self.malformed.push((subject, method)),
            Checked::Malformed(None) => self.all_known = false,
        }
    }
}

struct AggregateModel<'a> {
    self_ty: &'a Type,
    /// Whether the impl block is generic (reported): no impl can be emitted for it.
    generic: bool,
    name: String,
    /// The set and error types; `None` for those the arguments lack (reported).
    types: AggregateTypes<Option<Type>>,
    services: Type,
    ignore_events: Vec<Type>,
    /// The snapshot schema version and the span of its key.
    snapshot: Option<(u32, Span)>,
    command_handlers: Handlers<'a, CommandHandler<'a>>,
    event_handlers: Handlers<'a, EventHandler<'a>>,
    runtime: Path,
}

struct AggregateTypes<T> {
    events: T,
    commands: T,
    error: T,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl = match impl_block::parse(&MACRO, item) {
        Ok(item_impl) => item_impl,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let args = parse_args(&mut errors, args);
    let model = check(&mut errors, args, &item_impl);
    let expanded = expand_model(&model);
    MARKERS.strip(&mut item_impl);
    impl_block::mark_impl_token(&mut item_impl);
    let errors = errors.into_compile_errors();
    quote! {
        #item_impl
        #expanded
        #errors
    }
}

fn parse_args(errors: &mut Errors, args: TokenStream) -> Option<AggregateArgs> {
    let mut parsed = AggregateArgs {
        name: Setting::new(keys::NAME),
        events: Setting::new(keys::EVENTS),
        commands: Setting::new(keys::COMMANDS),
        error: Setting::new(keys::ERROR),
        services: Setting::new(keys::SERVICES),
        ignore_events: Setting::new(keys::IGNORE_EVENTS),
        snapshot: Setting::new(keys::SNAPSHOT),
        runtime: Setting::new(keys::CRATE),
    };
    let parser = syn::meta::parser(|meta| {
        let key_span = meta.path.span();
        let parse_type = |errors: &mut Errors, setting: &mut Setting<Type>, form: &str| {
            let ty = attr::recover(errors, &meta, attr::parse_type(&meta, form))?;
            setting.set_parsed(errors, key_span, ty);
            syn::Result::Ok(())
        };
        if meta.path.is_ident(keys::NAME) {
            // name = "Order"
            let name = attr::parse_name(&meta, "name = \"Order\"");
            let name = attr::recover(errors, &meta, name)?.map(|(name, _)| name);
            parsed.name.set_parsed(errors, key_span, name);
        } else if meta.path.is_ident(keys::EVENTS) {
            // events = OrderEvent
            parse_type(
                errors,
                &mut parsed.events,
                "events = <the #[derive(Events)] enum>",
            )?;
        } else if meta.path.is_ident(keys::COMMANDS) {
            // commands = OrderCommand
            parse_type(
                errors,
                &mut parsed.commands,
                "commands = <the #[derive(Commands)] enum>",
            )?;
        } else if meta.path.is_ident(keys::ERROR) {
            // error = OrderError
            parse_type(errors, &mut parsed.error, "error = <the error type>")?;
        } else if meta.path.is_ident(keys::SERVICES) {
            // services = OrderServices
            parse_type(
                errors,
                &mut parsed.services,
                "services = <the type of the services>",
            )?;
        } else if meta.path.is_ident(keys::IGNORE_EVENTS) {
            // ignore_events = [OrderNoteAdded, ...]
            let types = attr::parse_type_list(&meta, "ignore_events = [<event type>, ...]");
            let types = attr::recover(errors, &meta, types)?;
            parsed.ignore_events.set_parsed(errors, key_span, types);
        } else if meta.path.is_ident(keys::SNAPSHOT) {
            // snapshot = 1 (the schema version of the aggregate's snapshots)
            let version =
                attr::parse_version(errors, &meta, "snapshot = <the snapshot schema version>")?;
            if let Some((version, _)) = version {
                parsed.snapshot.set(errors, key_span, version);
            }
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::recover(errors, &meta, attr::parse_crate_path(&meta))?;
            parsed.runtime.set_parsed(errors, key_span, path);
        } else {
            attr::unknown_key(errors, &meta, "aggregate", ACCEPTED)?;
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
    args: Option<AggregateArgs>,
    item: &'a ItemImpl,
) -> AggregateModel<'a> {
    impl_block::check_impl_shape(errors, &MACRO, item);
    let mut name = None;
    let mut types = AggregateTypes {
        events: None,
        commands: None,
        error: None,
    };
    let mut services = None;
    let mut ignore_events = Vec::new();
    // `ignore_events` given but unreadable (reported): which events it meant is unknown.
    let mut ignored_unknown = false;
    let mut snapshot = None;
    let mut runtime = None;
    // Without parsed arguments, the handlers are still checked, as if services were
    // declared (an error about them would only be a follow-up).
    let services_declared = args.as_ref().is_none_or(|args| args.services.given());
    if let Some(args) = args {
        let mut required = |setting: Setting<Type>, example: &str| {
            // A key given with a bad value was reported where it is written.
            let given = setting.given();
            let value = setting.take().map(|(ty, _)| ty);
            if !given {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    format!("#[aggregate] needs `{example}`"),
                ));
            }
            value
        };
        let events = required(args.events, "events = <the #[derive(Events)] enum>");
        let commands = required(args.commands, "commands = <the #[derive(Commands)] enum>");
        let error = required(
            args.error,
            "error = <the error type of the #[handle] methods>",
        );
        types = AggregateTypes {
            events,
            commands,
            error,
        };
        name = args.name.take().map(|(name, _)| name);
        services = args.services.take().map(|(ty, _)| ty);
        ignored_unknown = args.ignore_events.given() && args.ignore_events.get().is_none();
        ignore_events = args
            .ignore_events
            .take()
            .map(|(types, _)| types)
            .unwrap_or_default();
        snapshot = args.snapshot.take();
        runtime = Some(attr::runtime_path(args.runtime));
    }

    let mut command_handlers = Handlers::new();
    let mut event_handlers = Handlers::new();
    for impl_item in &item.items {
        let syn::ImplItem::Fn(method) = impl_item else {
            MARKERS.check_no_marker_on_non_method(errors, impl_item);
            continue;
        };
        let ident = &method.sig.ident;
        match MARKERS.method_role(errors, method, |_| Ok(())) {
            Some(Role::Handle) => command_handlers.push(
                ident,
                check_command_handler(errors, method, services_declared),
            ),
            Some(Role::Apply) => event_handlers.push(ident, check_event_handler(errors, method)),
            None => {}
        }
    }
    impl_block::check_unique(
        errors,
        command_handlers
            .valid
            .iter()
            .map(|h| (h.command, h.method))
            .chain(command_handlers.malformed.iter().copied()),
        "#[handle]",
        "command",
    );
    impl_block::check_unique(
        errors,
        event_handlers
            .valid
            .iter()
            .map(|h| (h.event, h.method))
            .chain(event_handlers.malformed.iter().copied()),
        "#[apply]",
        "event",
    );
    check_ignored_events(errors, &ignore_events, &event_handlers);

    // An unreadable `ignore_events` would make every event it meant look unhandled.
    if ignored_unknown {
        event_handlers.all_known = false;
    }
    // On a trait impl (reported) the handlers are not the aggregate's: no coverage check.
    if item.trait_.is_some() {
        command_handlers.all_known = false;
        event_handlers.all_known = false;
    }
    AggregateModel {
        self_ty: &item.self_ty,
        generic: !item.generics.params.is_empty(),
        name: name.unwrap_or_else(|| {
            impl_block::type_name(&item.self_ty).unwrap_or_else(|| type_text(&item.self_ty))
        }),
        types,
        services: services.unwrap_or_else(|| syn::parse_quote!(())),
        ignore_events,
        snapshot,
        command_handlers,
        event_handlers,
        runtime: runtime.unwrap_or_else(|| syn::parse_quote!(::factum)),
    }
}

/// `#[handle] fn name(&self, command: Command[, services: &Services][, ctx: &CommandContext])
/// -> Result<Events, Error>`: the state is only read (it changes by applying the recorded
/// events), the command is taken by value, services and the context by reference.
fn check_command_handler<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
    services_declared: bool,
) -> Checked<'a, CommandHandler<'a>> {
    const FORM: &str = "expected `#[handle] fn name(&self, command: Command) -> Result<Events, Error>` (optionally with `services: &Services` and `ctx: &CommandContext` after the command, in either order)";
    let role = Check {
        name: "a #[handle] method",
        form: FORM,
    };
    let plain = impl_block::check_plain(
        errors,
        method,
        role,
        Asyncness::Forbidden(
            "a #[handle] method cannot be async: it decides from the loaded state alone (give it what it must look up through `services`)",
        ),
    );
    let receiver_ok = impl_block::check_receiver(
        errors,
        method,
        role,
        Receiver::Shared("state changes only by applying the events it returns"),
    );
    let sig = &method.sig;
    let arguments = impl_block::typed_arguments(method);
    let (command, subject, extras) = match arguments.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("a #[handle] method takes the command after `&self`; {FORM}"),
            ));
            (None, None, None)
        }
        [command, rest @ ..] => {
            let extras = impl_block::check_extras(errors, rest, services_declared, FORM);
            match &*command.ty {
                Type::Reference(reference) => {
                    errors.error_spanned_by(
                        &command.ty,
                        format!("a #[handle] method takes its command by value; {FORM}"),
                    );
                    (None, Some(&*reference.elem), extras)
                }
                ty => (Some(ty), Some(ty), extras),
            }
        }
    };
    let output = match &sig.output {
        ReturnType::Type(_, output) if returns_result(output) => Some(&**output),
        ReturnType::Type(_, output) => {
            errors.error_spanned_by(output, format!("a #[handle] method returns a `Result` of the events and the aggregate's error (or an alias of it whose name ends in `Result`); {FORM}"));
            None
        }
        ReturnType::Default => {
            errors.error_spanned_by(&sig.ident, format!("a #[handle] method returns a `Result` of the events and the aggregate's error; {FORM}"));
            None
        }
    };
    match (command, extras, output) {
        (Some(command), Some(extras), Some(output)) if plain && receiver_ok => {
            Checked::Valid(CommandHandler {
                method: &sig.ident,
                command,
                extras,
                output,
            })
        }
        _ => Checked::Malformed(subject),
    }
}

/// The spans of `T` and `E` in `Result<T, E>`, or of the whole type for another form.
fn result_argument_spans(output: &Type) -> (Span, Span) {
    let whole = output.span();
    let Type::Path(path) = output else {
        return (whole, whole);
    };
    let Some(syn::PathArguments::AngleBracketed(arguments)) =
        path.path.segments.last().map(|segment| &segment.arguments)
    else {
        return (whole, whole);
    };
    let mut types = arguments.args.iter().filter_map(|argument| match argument {
        syn::GenericArgument::Type(ty) => Some(ty.span()),
        _ => None,
    });
    let ok = types.next().unwrap_or(whole);
    (ok, types.next().unwrap_or(whole))
}

/// A `Result`, or an alias of one whose name ends in `Result` (`OrderResult<T>`).
fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident.to_string().ends_with("Result")),
        _ => false,
    }
}

/// `#[apply] fn name(&mut self, event: &Event)`: applying changes the state and cannot
/// fail, because the event already happened.
fn check_event_handler<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
) -> Checked<'a, EventHandler<'a>> {
    match impl_block::check_apply(errors, method) {
        (Some(event), true) => Checked::Valid(EventHandler {
            method: &method.sig.ident,
            event,
        }),
        (subject, _) => Checked::Malformed(subject),
    }
}

/// An ignored event changes no state, so it has no `#[apply]` handler; it is listed once.
fn check_ignored_events(errors: &mut Errors, ignored: &[Type], handlers: &Handlers<EventHandler>) {
    let handled = handlers
        .valid
        .iter()
        .map(|h| (h.event, h.method))
        .chain(handlers.malformed.iter().copied());
    let handled: Vec<_> = handled
        .map(|(ty, method)| (type_text(ty), method))
        .collect();
    for (index, ty) in ignored.iter().enumerate() {
        let text = type_text(ty);
        if ignored[..index]
            .iter()
            .any(|earlier| type_text(earlier) == text)
        {
            errors.error_spanned_by(
                ty,
                format!("event `{text}` is listed twice in `ignore_events`"),
            );
        }
        if let Some((_, method)) = handled.iter().find(|(event, _)| *event == text) {
            errors.error_spanned_by(
                ty,
                format!("event `{text}` is in `ignore_events` but has the #[apply] handler `{method}`: remove one of them"),
            );
        }
    }
}

/// Keeps the first of the items with one subject type (as written): a repeated subject
/// is reported, and a second impl for it would only add a conflict error.
fn first_per_subject<'t, T>(items: impl IntoIterator<Item = (&'t Type, T)>) -> Vec<(&'t Type, T)> {
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    for (ty, item) in items {
        let text = type_text(ty);
        if !seen.contains(&text) {
            seen.push(text);
            kept.push((ty, item));
        }
    }
    kept
}

fn expand_model(model: &AggregateModel) -> TokenStream {
    let AggregateModel {
        self_ty,
        generic,
        name,
        types,
        services,
        ignore_events,
        snapshot,
        command_handlers,
        event_handlers,
        runtime,
    } = model;
    if *generic {
        return TokenStream::new();
    }
    let private = quote!(#runtime::__private);
    let unreachable = crate::ctxt::unreachable();
    let (Some(events), Some(commands), Some(error)) =
        (&types.events, &types.commands, &types.error)
    else {
        // A missing key is reported: a placeholder stands in for it, and the other types
        // are kept, so that code naming the aggregate's events or commands still compiles.
        let unnamed = quote!(#private::Unnamed);
        let [events, commands, error] = [&types.events, &types.commands, &types.error].map(|ty| {
            ty.as_ref()
                .map_or_else(|| unnamed.clone(), ToTokens::to_token_stream)
        });
        return quote! {
            const _: () = {
                #[automatically_derived]
                impl #private::Aggregate for #self_ty {
                    const NAME: &'static str = #name;
                    type Events = #events;
                    type Commands = #commands;
                    type Error = #error;
                    type Services = #services;

                    fn apply(&mut self, _: &#events) {
                        #unreachable
                    }

                    fn handle(
                        &self,
                        _: #commands,
                        _: &#services,
                        _: &#private::CommandContext,
                    ) -> ::core::result::Result<#private::std::vec::Vec<#events>, #error> {
                        #unreachable
                    }
                }
            };
        };
    };
    let handle_output = quote!(::core::result::Result<#private::std::vec::Vec<#events>, #error>);
    let apply_all = if event_handlers.all_known {
        quote_spanned!(events.span()=> <#events as #private::ApplyEvents<Self>>::apply_to(event, self))
    } else {
        quote!({
            let _ = event;
            #unreachable
        })
    };
    let dispatch = if command_handlers.all_known {
        quote_spanned!(commands.span()=> <#commands as #private::DispatchCommands<Self>>::dispatch(command, self, services, ctx))
    } else {
        quote!({
            let _ = (command, services, ctx);
            #unreachable
        })
    };

    // The impls name the event (command) as a type argument: when it does not resolve,
    // rustc then takes the impl for any event and reports no missing handler. Each impl
    // is spanned at the user's type (where rustc points at it, e.g. for two handlers of
    // one event) except its empty generics `<>`, which keep the macro's span: rustc then
    // suggests no type parameter for an unresolved type, so its error repeats the one in
    // the handler's signature exactly, and is shown once.
    enum ApplyImpl<'m> {
        Handler(&'m Ident),
        Ignored,
        Fallback,
    }
    let applied = event_handlers
        .valid
        .iter()
        .map(|handler| (handler.event, ApplyImpl::Handler(handler.method)))
        .chain(
            event_handlers
                .malformed
                .iter()
                .map(|(ty, _)| (*ty, ApplyImpl::Fallback)),
        )
        .chain(ignore_events.iter().map(|ty| (ty, ApplyImpl::Ignored)));
    let apply_impls = first_per_subject(applied).into_iter().map(|(event, kind)| {
        // Spanned at the event: one not in the set is reported there.
        let membership =
            quote_spanned!(event.span()=> #private::assert_event_of::<#events, #event>(););
        let body = match kind {
            ApplyImpl::Handler(method) => quote!(#membership <#self_ty>::#method(self, event)),
            ApplyImpl::Ignored => quote!(#membership let _ = event;),
            ApplyImpl::Fallback => quote!(let _ = event; #unreachable),
        };
        let generics = quote!(<>);
        quote_spanned! {event.span()=>
            #[automatically_derived]
            impl #generics #private::Apply<#event> for #self_ty {
                #[inline]
                fn apply(&mut self, event: &#event) {
                    #body
                }
            }
        }
    });

    let handled = command_handlers
        .valid
        .iter()
        .map(|handler| (handler.command, Some(handler)))
        .chain(command_handlers.malformed.iter().map(|(ty, _)| (*ty, None)));
    let handle_impls = first_per_subject(handled)
        .into_iter()
        .map(|(command, handler)| {
            let body = match handler {
                Some(handler) => handle_body(handler, &private, self_ty, commands),
                None => quote!(let _ = (command, services, ctx); #unreachable),
            };
            let generics = quote!(<>);
            quote_spanned! {command.span()=>
                #[automatically_derived]
                impl #generics #private::Handle<#command> for #self_ty {
                    #[inline]
                    fn handle(
                        &self,
                        command: #command,
                        services: &#services,
                        ctx: &#private::CommandContext,
                    ) -> #handle_output {
                        #body
                    }
                }
            }
        });

    // Spanned at `snapshot = N`: an aggregate without serde impls is reported there.
    let snapshots = snapshot.map(|(version, span)| {
        let private = respan(private.clone(), span);
        quote_spanned! {span=>
            const SNAPSHOT_VERSION: ::core::option::Option<u32> = ::core::option::Option::Some(#version);

            fn to_snapshot(&self) -> ::core::option::Option<::core::result::Result<#private::std::boxed::Box<#private::serde_json::value::RawValue>, #private::serde_json::Error>> {
                ::core::option::Option::Some(#private::serde_json::value::to_raw_value(self))
            }

            fn from_snapshot(state: &#private::serde_json::value::RawValue) -> ::core::option::Option<::core::result::Result<Self, #private::serde_json::Error>> {
                ::core::option::Option::Some(#private::serde_json::from_str(state.get()))
            }
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #private::Aggregate for #self_ty {
                const NAME: &'static str = #name;
                type Events = #events;
                type Commands = #commands;
                type Error = #error;
                type Services = #services;

                #[inline]
                fn apply(&mut self, event: &#events) {
                    #apply_all
                }

                fn handle(
                    &self,
                    command: #commands,
                    services: &#services,
                    ctx: &#private::CommandContext,
                ) -> #handle_output {
                    #dispatch
                }

                #snapshots
            }

            #(#apply_impls)*
            #(#handle_impls)*
        };
    }
}

/// The body of a `Handle` impl: checks that the command is of the set, calls the method,
/// and converts what it returns.
fn handle_body(
    handler: &CommandHandler,
    private: &TokenStream,
    self_ty: &Type,
    commands: &Type,
) -> TokenStream {
    let CommandHandler {
        method,
        command,
        extras,
        output,
    } = handler;
    // Spanned at the command: one not in the set is reported there.
    let membership =
        quote_spanned!(command.span()=> #private::assert_command_of::<#commands, #command>(););
    // Each argument is spanned at the user's type: a mismatch is reported there.
    let arguments = extras.iter().map(|extra| match extra {
        Extra::Services(ty) => quote_spanned!(ty.span()=> services),
        Extra::Context(ty) => quote_spanned!(ty.span()=> ctx),
    });
    let call = quote!({
        let _ = (services, ctx);
        <#self_ty>::#method(self, command #(, #arguments)*)
    });
    // Each conversion is spanned at its part of `Result<T, E>`, so a wrong event or
    // error type is reported at that type.
    let (ok_span, err_span) = result_argument_spans(output);
    let events_of = {
        let private = respan(private.clone(), ok_span);
        quote_spanned!(ok_span=> #private::events_of::<Self, _>(__factum_events))
    };
    let error_of = {
        let private = respan(private.clone(), err_span);
        quote_spanned!(err_span=> #private::error_of::<Self, _>(__factum_error))
    };
    let convert = quote_spanned! {output.span()=>
        match #call {
            ::core::result::Result::Ok(__factum_events) => ::core::result::Result::Ok(#events_of),
            ::core::result::Result::Err(__factum_error) => ::core::result::Result::Err(#error_of),
        }
    };
    quote! {
        #membership
        #convert
    }
}
