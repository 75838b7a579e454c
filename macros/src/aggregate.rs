//! `#[aggregate(name = "...", events = E, commands = C, error = Err, services = S,
//! ignore_events = [..])]` on an inherent impl block of `#[handle]` and `#[apply]` methods.
//!
//! Parses the arguments and the methods' signatures into an [`AggregateModel`], checks
//! every handler's form and that no event or command has two handlers, and expands to
//! the `Aggregate` impl plus one `Apply`/`Handle` impl per handler. That every event and
//! command *has* a handler is checked by the compiler, through the bounds of the set
//! enums' dispatchers (see `event_set` and `command_set`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Path, ReturnType, Type};

use crate::attr::{self, Setting, keys};
use crate::ctxt::Errors;
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
    method: &'a syn::Ident,
    command: &'a Type,
    /// What the method takes after the command, in its order.
    extras: Vec<Extra<'a>>,
    output: &'a Type,
}

/// An argument of a `#[handle]` method after the command.
enum Extra<'a> {
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

/// An `#[apply]` method: `fn placed(&mut self, event: &OrderPlaced)`.
struct EventHandler<'a> {
    method: &'a syn::Ident,
    event: &'a Type,
}

struct AggregateModel<'a> {
    self_ty: &'a Type,
    name: String,
    events: Type,
    commands: Type,
    error: Type,
    services: Type,
    ignore_events: Vec<Type>,
    /// The snapshot schema version and the span of its key.
    snapshot: Option<(u32, Span)>,
    command_handlers: Vec<CommandHandler<'a>>,
    event_handlers: Vec<EventHandler<'a>>,
    runtime: Path,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item_impl: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "#[aggregate] goes on an impl block: `#[aggregate(...)] impl Order { ... }`",
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let args = parse_args(&mut errors, args);
    let expanded = args
        .and_then(|args| check(&mut errors, args, &item_impl))
        .filter(|_| errors.is_empty())
        .map(|model| expand_model(&model));
    strip_handler_attributes(&mut item_impl);
    let errors = errors.into_compile_errors();
    quote! {
        #item_impl
        #expanded
        #errors
    }
}

/// The arguments, or `None` when they do not parse (checks of half-parsed arguments
/// would only report follow-up errors).
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
        let mut parse_type = |setting: &mut Setting<Type>, form: &str| -> syn::Result<()> {
            let ty = attr::parse_type(&meta, form)?;
            setting.set(errors, key_span, ty);
            Ok(())
        };
        if meta.path.is_ident(keys::NAME) {
            // name = "Order"
            let (name, _) = attr::parse_name(&meta, "name = \"Order\"")?;
            parsed.name.set(errors, key_span, name);
        } else if meta.path.is_ident(keys::EVENTS) {
            // events = OrderEvent
            parse_type(&mut parsed.events, "events = <the #[derive(Events)] enum>")?;
        } else if meta.path.is_ident(keys::COMMANDS) {
            // commands = OrderCommand
            parse_type(
                &mut parsed.commands,
                "commands = <the #[derive(Commands)] enum>",
            )?;
        } else if meta.path.is_ident(keys::ERROR) {
            // error = OrderError
            parse_type(&mut parsed.error, "error = <the error type>")?;
        } else if meta.path.is_ident(keys::SERVICES) {
            // services = OrderServices
            parse_type(
                &mut parsed.services,
                "services = <the type of the services>",
            )?;
        } else if meta.path.is_ident(keys::IGNORE_EVENTS) {
            // ignore_events = [OrderNoteAdded, ...]
            let types = attr::parse_type_list(&meta, "ignore_events = [<event type>, ...]")?;
            parsed.ignore_events.set(errors, key_span, types);
        } else if meta.path.is_ident(keys::SNAPSHOT) {
            // snapshot = 1 (the schema version of the aggregate's snapshots)
            let (version, _) =
                attr::parse_version(&meta, "snapshot = <the snapshot schema version>")?;
            parsed.snapshot.set(errors, key_span, version);
        } else if meta.path.is_ident(keys::CRATE) {
            // crate = "::factum"
            let path = attr::parse_crate_path(&meta)?;
            parsed.runtime.set(errors, key_span, path);
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
    args: AggregateArgs,
    item: &'a ItemImpl,
) -> Option<AggregateModel<'a>> {
    check_impl_shape(errors, item);
    let mut required = |setting: Setting<Type>, example: &str| {
        let value = setting.take().map(|(ty, _)| ty);
        if value.is_none() {
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

    let mut command_handlers = Vec::new();
    let mut event_handlers = Vec::new();
    for method in item.items.iter().filter_map(|item| match item {
        ImplItem::Fn(method) => Some(method),
        _ => None,
    }) {
        match handler_role(errors, method) {
            Some(HANDLE) => command_handlers.extend(check_command_handler(errors, method)),
            Some(_) => event_handlers.extend(check_event_handler(errors, method)),
            None => {}
        }
    }
    check_unique(
        errors,
        command_handlers.iter().map(|h| (h.command, h.method)),
        "#[handle]",
        "command",
    );
    check_unique(
        errors,
        event_handlers.iter().map(|h| (h.event, h.method)),
        "#[apply]",
        "event",
    );
    let ignore_events = args
        .ignore_events
        .take()
        .map(|(types, _)| types)
        .unwrap_or_default();
    check_ignored_events(errors, &ignore_events, &event_handlers);

    let name = match args.name.take() {
        Some((name, _)) => name,
        None => type_name(&item.self_ty),
    };
    Some(AggregateModel {
        self_ty: &item.self_ty,
        name,
        events: events?,
        commands: commands?,
        error: error?,
        services: args
            .services
            .take()
            .map_or_else(|| syn::parse_quote!(()), |(ty, _)| ty),
        ignore_events,
        snapshot: args.snapshot.take(),
        command_handlers,
        event_handlers,
        runtime: attr::runtime_path(args.runtime),
    })
}

/// The aggregate is the concrete type of an inherent impl: trait impls are not where
/// handlers live, and an aggregate's name cannot vary with type parameters.
fn check_impl_shape(errors: &mut Errors, item: &ItemImpl) {
    if let Some((_, path, _)) = &item.trait_ {
        errors.error_spanned_by(
            path,
            "#[aggregate] goes on an inherent impl block (`impl Order { ... }`), not a trait impl",
        );
    }
    if !item.generics.params.is_empty() {
        errors.error_spanned_by(
            &item.generics,
            "an aggregate cannot be generic: its name and event set denote one concrete type",
        );
    }
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path.path.segments.last().map_or_else(
            || ty.to_token_stream().to_string(),
            |segment| segment.ident.to_string(),
        ),
        other => other.to_token_stream().to_string(),
    }
}

/// A method is at most one kind of handler, and the marker takes no arguments.
fn handler_role(errors: &mut Errors, method: &ImplItemFn) -> Option<&'static str> {
    let mut role = None;
    for attribute in &method.attrs {
        let this = if attribute.path().is_ident(HANDLE) {
            HANDLE
        } else if attribute.path().is_ident(APPLY) {
            APPLY
        } else {
            continue;
        };
        if !matches!(attribute.meta, syn::Meta::Path(_)) {
            errors.error_spanned_by(&attribute.meta, format!("`#[{this}]` takes no arguments"));
        }
        match role {
            Some(first) if first == this => errors.error_spanned_by(
                attribute,
                format!("duplicate `#[{this}]` on method `{}`", method.sig.ident),
            ),
            Some(first) => errors.error_spanned_by(
                attribute,
                format!("method `{}` is already `#[{first}]`: a method is either a #[handle] or an #[apply] handler", method.sig.ident),
            ),
            None => role = Some(this),
        }
    }
    role
}

/// A handler is an ordinary synchronous, non-generic method: deciding and applying are
/// pure functions of the state, and the dispatcher calls them with concrete types.
fn check_plain_method(errors: &mut Errors, method: &ImplItemFn, role: &str) -> bool {
    let mut plain = true;
    if let Some(asyncness) = &method.sig.asyncness {
        let why = if role == HANDLE {
            "a #[handle] method cannot be async: it decides from the loaded state alone (give it what it must look up through `services`)"
        } else {
            "an #[apply] method cannot be async: applying an event only changes the state in memory"
        };
        errors.error_spanned_by(asyncness, why);
        plain = false;
    }
    if !method.sig.generics.params.is_empty() {
        errors.error_spanned_by(
            &method.sig.generics,
            format!(
                "{} #[{role}] method cannot be generic: the dispatcher calls it with one concrete type",
                if role == HANDLE { "a" } else { "an" }
            ),
        );
        plain = false;
    }
    plain
}

/// `#[handle] fn name(&self, command: Command[, services: &Services][, ctx: &CommandContext])
/// -> Result<Events, Error>`: the state is only read (it changes by applying the recorded
/// events), the command is taken by value, services and the context by reference.
fn check_command_handler<'a>(
    errors: &mut Errors,
    method: &'a ImplItemFn,
) -> Option<CommandHandler<'a>> {
    const FORM: &str = "expected `#[handle] fn name(&self, command: Command) -> Result<Events, Error>` (optionally with `services: &Services` and `ctx: &CommandContext` after the command, in either order)";
    let plain = check_plain_method(errors, method, HANDLE);
    let sig = &method.sig;
    let receiver_ok = match sig.receiver() {
        Some(receiver) if receiver.reference.is_some() && receiver.mutability.is_none() => true,
        Some(receiver) if receiver.reference.is_some() => {
            errors.error_spanned_by(receiver, format!("a #[handle] method takes `&self`, not `&mut self`: state changes only by applying the events it returns; {FORM}"));
            false
        }
        Some(receiver) => {
            errors.error_spanned_by(
                receiver,
                format!("a #[handle] method takes `&self`, not `self`; {FORM}"),
            );
            false
        }
        None => {
            errors.error_spanned_by(
                &sig.ident,
                format!("a #[handle] method needs the receiver `&self`; {FORM}"),
            );
            false
        }
    };
    let arguments: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(argument) => Some(argument),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let command = match arguments.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("a #[handle] method takes the command after `&self`; {FORM}"),
            ));
            None
        }
        [command, rest @ ..] => {
            check_extras(errors, rest, FORM);
            if matches!(*command.ty, Type::Reference(_)) {
                errors.error_spanned_by(
                    &command.ty,
                    format!("a #[handle] method takes its command by value; {FORM}"),
                );
                None
            } else {
                Some(&*command.ty)
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
    Some(CommandHandler {
        method: &sig.ident,
        command: command.filter(|_| plain && receiver_ok)?,
        extras: arguments
            .iter()
            .skip(1)
            .map(|argument| {
                if is_context(&argument.ty) {
                    Extra::Context(&argument.ty)
                } else {
                    Extra::Services(&argument.ty)
                }
            })
            .collect(),
        output: output?,
    })
}

/// The arguments after the command: at most one `&Services` and one `&CommandContext`,
/// both references.
fn check_extras(errors: &mut Errors, extras: &[&syn::PatType], form: &str) {
    let (mut services, mut contexts) = (0, 0);
    for extra in extras {
        if is_context(&extra.ty) {
            contexts += 1;
            if contexts > 1 {
                errors.error_spanned_by(
                    extra,
                    format!("a #[handle] method takes the command context once; {form}"),
                );
            }
            continue;
        }
        services += 1;
        if services > 1 {
            errors.error_spanned_by(
                extra,
                format!("a #[handle] method takes at most the command, the services and the context; {form}"),
            );
        } else if !matches!(*extra.ty, Type::Reference(_)) {
            errors.error_spanned_by(&extra.ty, "the services argument of a #[handle] method is a reference: `services: &Services` (or the context: `ctx: &CommandContext`)");
        }
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
) -> Option<EventHandler<'a>> {
    const FORM: &str = "expected `#[apply] fn name(&mut self, event: &Event)`";
    let plain = check_plain_method(errors, method, APPLY);
    let sig = &method.sig;
    let receiver_ok = match sig.receiver() {
        Some(receiver) if receiver.reference.is_some() && receiver.mutability.is_some() => true,
        Some(receiver) => {
            errors.error_spanned_by(
                receiver,
                format!("an #[apply] method takes `&mut self`; {FORM}"),
            );
            false
        }
        None => {
            errors.error_spanned_by(
                &sig.ident,
                format!("an #[apply] method needs the receiver `&mut self`; {FORM}"),
            );
            false
        }
    };
    if let ReturnType::Type(_, output) = &sig.output {
        let unit = matches!(&**output, Type::Tuple(tuple) if tuple.elems.is_empty());
        if !unit {
            errors.error_spanned_by(output, format!("an #[apply] method returns nothing: an event already happened, so applying it cannot fail; {FORM}"));
        }
    }
    let arguments: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(argument) => Some(argument),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let event = match arguments.as_slice() {
        [argument] => match &*argument.ty {
            Type::Reference(reference) if reference.mutability.is_none() => Some(&*reference.elem),
            other => {
                errors.error_spanned_by(
                    other,
                    format!("an #[apply] method takes the event by shared reference; {FORM}"),
                );
                None
            }
        },
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("an #[apply] method takes the event after `&mut self`; {FORM}"),
            ));
            None
        }
        [_, extra, ..] => {
            errors.error_spanned_by(
                extra,
                format!("an #[apply] method takes only the event; {FORM}"),
            );
            None
        }
    };
    Some(EventHandler {
        method: &sig.ident,
        event: event.filter(|_| plain && receiver_ok)?,
    })
}

/// Each event (command) has one handler: with two, which one runs would be arbitrary.
/// Types are compared as written; aliases of one type are caught by the compiler as
/// conflicting impls.
fn check_unique<'a>(
    errors: &mut Errors,
    handlers: impl Iterator<Item = (&'a Type, &'a syn::Ident)>,
    role: &str,
    kind: &str,
) {
    let mut seen: Vec<(String, &syn::Ident)> = Vec::new();
    for (ty, method) in handlers {
        let text = ty.to_token_stream().to_string();
        match seen.iter().find(|(other, _)| *other == text) {
            Some((_, first)) => errors.error_spanned_by(
                ty,
                format!("two {role} handlers for {kind} `{text}`: `{first}` and `{method}`; each {kind} has exactly one"),
            ),
            None => seen.push((text, method)),
        }
    }
}

/// An ignored event changes no state, so it has no `#[apply]` handler; it is listed once.
fn check_ignored_events(errors: &mut Errors, ignored: &[Type], handlers: &[EventHandler]) {
    for (index, ty) in ignored.iter().enumerate() {
        let text = ty.to_token_stream().to_string();
        if ignored[..index]
            .iter()
            .any(|earlier| earlier.to_token_stream().to_string() == text)
        {
            errors.error_spanned_by(
                ty,
                format!("event `{text}` is listed twice in `ignore_events`"),
            );
        }
        if let Some(handler) = handlers
            .iter()
            .find(|h| h.event.to_token_stream().to_string() == text)
        {
            errors.error_spanned_by(
                ty,
                format!("event `{text}` is in `ignore_events` but has the #[apply] handler `{}`: remove one of them", handler.method),
            );
        }
    }
}

/// `#[handle]` and `#[apply]` are markers for this macro; the compiler must not see them.
fn strip_handler_attributes(item: &mut ItemImpl) {
    for item in &mut item.items {
        if let ImplItem::Fn(method) = item {
            method.attrs.retain(|attribute| {
                !attribute.path().is_ident(HANDLE) && !attribute.path().is_ident(APPLY)
            });
        }
    }
}

fn expand_model(model: &AggregateModel) -> TokenStream {
    let AggregateModel {
        self_ty,
        name,
        events,
        commands,
        error,
        services,
        ignore_events,
        snapshot,
        command_handlers,
        event_handlers,
        runtime,
    } = model;
    let private = quote!(#runtime::__private);
    let apply_all = quote_spanned!(events.span()=> <#events>::__factum_apply(event, self));
    let dispatch = quote_spanned!(commands.span()=> <#commands>::__factum_dispatch(command, self, services, ctx));

    let apply_impls = event_handlers.iter().map(|handler| {
        let EventHandler { method, event } = handler;
        let membership =
            quote_spanned!(event.span()=> #private::assert_event_of::<#events, #event>(););
        quote_spanned! {event.span()=>
            #[automatically_derived]
            impl #private::Apply<#event> for #self_ty {
                #[inline]
                fn apply(&mut self, event: &#event) {
                    #membership
                    <#self_ty>::#method(self, event)
                }
            }
        }
    });
    let ignore_impls = ignore_events.iter().map(|event| {
        let membership =
            quote_spanned!(event.span()=> #private::assert_event_of::<#events, #event>(););
        quote_spanned! {event.span()=>
            #[automatically_derived]
            impl #private::Apply<#event> for #self_ty {
                #[inline]
                fn apply(&mut self, _: &#event) {
                    #membership
                }
            }
        }
    });
    let handle_impls = command_handlers.iter().map(|handler| {
        let CommandHandler {
            method,
            command,
            extras,
            output,
        } = handler;
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
            #[automatically_derived]
            impl #private::Handle<#command> for #self_ty {
                #[inline]
                fn handle(
                    &self,
                    command: #command,
                    services: &#services,
                    ctx: &#private::CommandContext,
                ) -> ::core::result::Result<#private::std::vec::Vec<#events>, #error> {
                    #membership
                    #convert
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
                ) -> ::core::result::Result<#private::std::vec::Vec<#events>, #error> {
                    #dispatch
                }

                #snapshots
            }

            #(#apply_impls)*
            #(#ignore_impls)*
            #(#handle_impls)*
        };
    }
}
