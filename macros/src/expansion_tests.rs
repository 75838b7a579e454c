//! Snapshots of each macro's expansion, pretty-printed; review changes with `cargo insta`.

use proc_macro2::TokenStream;
use quote::quote;

fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // An expansion that is not a valid file is a bug the snapshot must show as is.
        Err(error) => format!("/* does not parse as a file: {error} */\n{tokens}"),
    }
}

/// The messages of the `compile_error!` invocations in an expansion, in order.
fn compile_error_messages(expanded: &TokenStream) -> Vec<String> {
    let tokens: Vec<proc_macro2::TokenTree> = expanded.clone().into_iter().collect();
    tokens
        .windows(3)
        .filter_map(|window| match window {
            [
                proc_macro2::TokenTree::Ident(name),
                proc_macro2::TokenTree::Punct(bang),
                proc_macro2::TokenTree::Group(arguments),
            ] if name == "compile_error" && bang.as_char() == '!' => {
                let message: syn::LitStr = syn::parse2(arguments.stream()).ok()?;
                Some(message.value())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn event_first_version() {
    let expanded = crate::event::expand(
        quote!(name = "OrderShipped"),
        quote! {
            /// The order left the warehouse.
            #[derive(Debug)]
            pub struct OrderShipped { pub carrier: String }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_upcast_from_previous_type() {
    let expanded = crate::event::expand(
        quote!(
            name = "OrderPlaced",
            version = 2,
            upcast_from = OrderPlacedV1
        ),
        quote! {
            #[derive(Debug, serde::Serialize)]
            pub struct OrderPlaced { pub customer_id: String, pub currency: Currency }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_upcast_through_json() {
    let expanded = crate::event::expand(
        quote!(
            name = "ItemAdded",
            version = 3,
            upcast_json(from = 1, with = v1_to_v2),
            upcast_json(from = 2, with = migrations::v2_to_v3),
            crate = "::renamed"
        ),
        quote! {
            pub struct ItemAdded { pub quantity: u32 }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_set() {
    let expanded = crate::set::expand(
        crate::set::Kind::Events,
        quote! {
            #[derive(Events, Debug)]
            pub enum OrderEvent { Placed(OrderPlaced), Shipped(events::OrderShipped) }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn command() {
    let expanded = crate::command::expand(
        quote!(),
        quote! {
            pub struct ShipOrder { #[aggregate_id] pub order_id: OrderId, pub carrier: String }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn command_with_tuple_id_and_name() {
    let expanded = crate::command::expand(
        quote!(name = "Confirm"),
        quote! {
            pub struct ConfirmOrder(#[aggregate_id] pub String);
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn command_set() {
    let expanded = crate::set::expand(
        crate::set::Kind::Commands,
        quote! {
            #[derive(Commands)]
            pub enum OrderCommand { Place(PlaceOrder), Ship(ShipOrder) }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn aggregate() {
    let expanded = crate::aggregate::expand(
        quote!(
            name = "Order",
            events = OrderEvent,
            commands = OrderCommand,
            error = OrderError,
            services = Catalog,
            ignore_events = [OrderNoteAdded],
            snapshot = 2
        ),
        quote! {
            impl Order {
                #[handle]
                fn place(&self, command: PlaceOrder, catalog: &Catalog) -> Result<OrderPlaced, OrderError> { todo() }
                #[handle]
                fn ship(&self, command: ShipOrder) -> Result<Vec<OrderEvent>, OrderError> { todo() }
                #[apply]
                fn placed(&mut self, event: &OrderPlaced) { self.placed = true; }
                #[apply]
                fn shipped(&mut self, _: &OrderShipped) {}
                fn helper(&self) -> bool { true }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn errors_are_all_reported_together() {
    let expanded = crate::aggregate::expand(
        quote!(events = OrderEvent, colour = "blue"),
        quote! {
            impl Order {
                #[handle]
                fn place(&mut self, command: &PlaceOrder) {}
                #[apply]
                async fn placed(&self, event: OrderPlaced) -> bool { true }
            }
        },
    );
    insta::assert_debug_snapshot!(compile_error_messages(&expanded));
}

#[test]
fn projection() {
    let expanded = crate::projection::expand(
        crate::projection::Kind::Projection,
        quote!(name = "task_list", version = 2),
        quote! {
            impl TaskList {
                #[setup]
                async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> { todo() }
                #[on]
                async fn created(&mut self, event: &Recorded<TaskCreated>, tx: &mut SqliteTx) -> Result<(), ProjectionError> { todo() }
                #[on]
                async fn done<'r>(&mut self, event: &Recorded<'r, events::TaskDone>, tx: &mut SqliteTx) -> Result<(), ProjectionError> { todo() }
                fn helper(&self) -> bool { true }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn reactor() {
    let expanded = crate::projection::expand(
        crate::projection::Kind::Reactor,
        quote!(crate = "::renamed"),
        quote! {
            impl Reminders {
                #[on]
                async fn created(&mut self, event: &Recorded<'_, TaskCreated>) -> Result<(), ProjectionError> { todo() }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn projection_errors_are_all_reported_together() {
    let expanded = crate::projection::expand(
        crate::projection::Kind::Projection,
        quote!(version = 0, colour = "blue"),
        quote! {
            impl TaskList {
                #[setup]
                async fn tables(&mut self, tx: &mut OtherTx) -> Result<(), ProjectionError> { todo() }
                #[on]
                fn created(&self, event: &TaskCreated) {}
                #[on]
                async fn done(&mut self, event: &Recorded<TaskDone>, tx: &mut SqliteTx) -> Result<(), ProjectionError> { todo() }
                #[on]
                async fn done_again(&mut self, event: &Recorded<TaskDone>, tx: &SqliteTx, extra: u8) -> Result<(), ProjectionError> { todo() }
                #[setup]
                async fn more_tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> { todo() }
            }
        },
    );
    insta::assert_debug_snapshot!(compile_error_messages(&expanded));
}

#[test]
fn aggregate_after_errors_keeps_the_well_formed_handlers() {
    // `close` is malformed (no return type) and `renamed` has no event: the expansion
    // keeps the item, `open`'s impl, a fallback impl for `Close`, and skips the coverage
    // check of events only (the event `renamed` was meant for is unknown).
    let expanded = crate::aggregate::expand(
        quote!(
            events = OrderEvent,
            commands = OrderCommand,
            error = OrderError
        ),
        quote! {
            impl Order {
                #[handle]
                fn open(&self, command: OpenOrder) -> Result<OrderOpened, OrderError> { todo() }
                #[handle]
                fn close(&self, command: CloseOrder) {}
                #[apply]
                fn opened(&mut self, event: &OrderOpened) {}
                #[apply]
                fn renamed(&mut self) {}
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_set_after_a_bad_variant() {
    // The malformed variant's type keeps its markers, with bodies that never run.
    let expanded = crate::set::expand(
        crate::set::Kind::Events,
        quote! {
            #[derive(Events)]
            pub enum OrderEvent { Placed(OrderPlaced), Shipped { event: OrderShipped } }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_with_personal_fields() {
    // The field attributes are stripped from the item; `PERSONAL` names serde's keys
    // (here under `rename_all`), and each field's type is checked at its own span.
    let expanded = crate::event::expand(
        quote!(name = "MemberRegistered"),
        quote! {
            #[serde(rename_all = "camelCase")]
            pub struct MemberRegistered {
                #[subject]
                pub member_id: MemberId,
                #[pii]
                pub email_address: String,
                #[pii(redacted = "[forgotten]")]
                pub phone_number: Option<String>,
                pub plan: String,
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_with_tags() {
    // `#[tag]` is stripped from the item; `TAGS` names each key with serde's key of its
    // field (here under `rename_all`), and `tags` checks each field's type at its span.
    let expanded = crate::event::expand(
        quote!(name = "StudentSubscribed"),
        quote! {
            #[serde(rename_all = "camelCase")]
            pub struct StudentSubscribed {
                #[tag(name = "course")]
                pub course_id: CourseId,
                #[tag]
                pub student: String,
                #[tag(name = "cohort")]
                pub cohort_ids: Vec<u32>,
                pub note: String,
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_after_tag_misuses_keeps_the_well_declared_tags() {
    // The misused attribute is reported; the fallback impl keeps the tags declared well,
    // so a decision model's check of them raises no follow-up error.
    let expanded = crate::event::expand(
        quote!(name = "StudentSubscribed"),
        quote! {
            pub struct StudentSubscribed {
                #[tag(name = "course")]
                pub course_id: String,
                #[tag(name = "bad key")]
                pub student_id: String,
            }
        },
    );
    assert_eq!(
        compile_error_messages(&expanded),
        [
            "`bad key` is no tag key: a key is not empty and holds letters, digits, `_`, `-` and `.` only (the first `:` of a tag ends its key)"
        ]
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn event_after_personal_misuses_keeps_the_item_without_its_attributes() {
    // Every misuse is reported, and the item is emitted without `#[subject]`/`#[pii]` and
    // with a plain `Event` impl, so nothing else fails after them.
    let expanded = crate::event::expand(
        quote!(name = "MemberRegistered"),
        quote! {
            pub struct MemberRegistered {
                #[subject(primary)]
                pub member_id: String,
                #[subject]
                pub household_id: String,
                #[pii(redacted = 5)]
                pub email: String,
                #[pii]
                #[serde(skip)]
                pub notes: String,
            }
        },
    );
    insta::assert_debug_snapshot!(compile_error_messages(&expanded));
    let pretty = pretty(expanded);
    // The expansion before the errors, which quote the attributes.
    let (item, _) = pretty.split_once("compile_error!").unwrap_or((&pretty, ""));
    assert!(
        !item.contains("#[subject") && !item.contains("#[pii"),
        "{item}"
    );
    assert!(
        item.contains("impl ::factum::__private::Event for MemberRegistered"),
        "{item}"
    );
    assert!(!item.contains("PERSONAL"), "{item}");
}

#[test]
fn decision_model_keyed_by_two_tags() {
    // `keyed` takes one value per key, in order (a string key becomes a parameter name);
    // `apply_stored` decodes and applies each event by name; one constant per handler and
    // key checks, at the handler, that the event declares the key.
    let expanded = crate::decision_model::expand(
        quote!(tags(course, "study-group")),
        quote! {
            impl Seats {
                #[apply]
                fn defined(&mut self, event: &CourseDefined) {
                    self.capacity = event.capacity;
                }
                #[apply]
                fn subscribed(&mut self, _: &events::StudentSubscribed) {
                    self.taken += 1;
                }
                fn free(&self) -> u32 {
                    self.capacity - self.taken
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}

#[test]
fn decision_model_keyed_by_no_tag() {
    let expanded = crate::decision_model::expand(
        quote!(),
        quote! {
            impl LastInvoiceNumber {
                #[apply]
                fn created(&mut self, event: &InvoiceCreated) {
                    self.0 = event.number;
                }
            }
        },
    );
    insta::assert_snapshot!(pretty(expanded));
}
