//! The API of generated code. Not public: it changes without notice.

pub use ::chrono;
pub use ::core;
pub use ::schemars;
pub use ::serde;
pub use ::serde_json;
pub use ::std;

pub use crate::aggregate::{Aggregate, Apply, Handle};
pub use crate::command::{Command, CommandDecodeError, CommandOf, CommandSet, decode_command};
pub use crate::context::CommandContext;
pub use crate::decision::{DecisionModel, Keyed};
pub use crate::envelope::RecordedEvent;
pub use crate::error::{BoxError, DecodeError, DecodeErrorKind, EncodeError};
pub use crate::event::{EncodedEvent, Event, EventOf, EventSet, IntoEvents};
pub use crate::personal::{
    Personal, PersonalField, PersonalFields, RedactedText, Subject, redacted_text, redacted_value,
};
pub use crate::projection::{Projection, ProjectionError, Reactor, Recorded};
pub use crate::registry::{RegistryBuilder, UpcastPath};
pub use crate::tag::{Tag, TagField, TagValue, TagValues};

/// Whether the event `E` declares a tag of `key` (a `#[tag]` field): what a
/// `#[decision_model]` keyed by `key` checks of every event it applies, at compile time.
pub const fn declares_tag<E: Event>(key: &str) -> bool {
    let mut index = 0;
    while index < E::TAGS.len() {
        if str_eq(E::TAGS[index].key, key) {
            return true;
        }
        index += 1;
    }
    false
}

/// Checks at compile time that a `#[subject]` field's type can name a data subject.
pub const fn assert_subject<T: Subject + ?Sized>() {}
// A `#[pii]` field's type is checked where `Event::PERSONAL` names it:
// `redacted_value::<T: Personal>` / `redacted_text::<T: RedactedText>`.

use crate::projection::{
    ParkedEvent, ReadModel, ReadModelError, ReadModelTx, Target, VersionStatus,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes the payload of a type's own version.
#[inline]
pub fn decode_payload<T: DeserializeOwned>(
    version: u32,
    payload: &str,
) -> Result<T, DecodeErrorKind> {
    crate::event::decode_payload(version, payload)
}

/// Decodes an older version through the previous type and converts it with `TryFrom`
/// (which every `From` conversion also provides).
#[inline]
pub fn upcast_typed<P, T>(version: u32, payload: &str) -> Result<T, DecodeErrorKind>
where
    P: Event,
    T: Event + TryFrom<P>,
    <T as TryFrom<P>>::Error: Into<BoxError>,
{
    let previous = P::decode_version(version, payload)?;
    T::try_from(previous).map_err(|error| DecodeErrorKind::Upcast {
        from: P::VERSION,
        to: T::VERSION,
        source: error.into(),
    })
}

/// One JSON upcast step: turns a payload of version `from` into one of version `from + 1`.
pub type JsonStep = fn(Value) -> Result<Value, BoxError>;

/// Runs a user's JSON upcast function, boxing its error.
#[inline]
pub fn json_step<F, E>(upcast: F, payload: Value) -> Result<Value, BoxError>
where
    F: FnOnce(Value) -> Result<Value, E>,
    E: Into<BoxError>,
{
    upcast(payload).map_err(Into::into)
}

/// Decodes a retired version through consecutive JSON upcast steps, each given as
/// `(from_version, step)`, ending at `newest`, the version of `T`.
pub fn upcast_json<T: DeserializeOwned>(
    version: u32,
    payload: &str,
    newest: u32,
    steps: &[(u32, JsonStep)],
) -> Result<T, DecodeErrorKind> {
    let value = upcast_json_value(version, payload, newest, steps)?;
    T::deserialize(&value).map_err(|source| {
        // The path is found from the upcast output as text, the way a stored payload's
        // is: no second, path-tracking decoder of `T`.
        let json = value.to_string();
        let path = match serde_json::from_str::<T>(&json) {
            Err(error) => crate::json_path::error_path(&json, &error),
            Ok(_) => ".".to_owned(),
        };
        DecodeErrorKind::Payload {
            version: newest,
            path,
            source,
        }
    })
}

/// The JSON upcasts of [`upcast_json`], which do not depend on the event's type.
fn upcast_json_value(
    version: u32,
    payload: &str,
    newest: u32,
    steps: &[(u32, JsonStep)],
) -> Result<Value, DecodeErrorKind> {
    let oldest = steps.first().map_or(newest, |(from, _)| *from);
    if version < oldest {
        return Err(DecodeErrorKind::NoUpcastPath { oldest });
    }
    let mut value: Value =
        serde_json::from_str(payload).map_err(|error| DecodeErrorKind::Payload {
            version,
            path: ".".to_owned(),
            source: error,
        })?;
    for (from, step) in steps.iter().filter(|(from, _)| *from >= version) {
        value = step(value).map_err(|source| DecodeErrorKind::Upcast {
            from: *from,
            to: from + 1,
            source,
        })?;
    }
    Ok(value)
}

/// Encodes an event of a set.
#[inline]
pub fn encode<E: Event>(event: &E) -> Result<EncodedEvent, EncodeError> {
    serde_json::value::to_raw_value(event)
        .map(|payload| EncodedEvent {
            name: E::NAME,
            schema_version: E::VERSION,
            payload,
        })
        .map_err(|source| EncodeError {
            event: E::NAME,
            source,
        })
}

/// Decodes a stored event as the member `E` of a set and wraps it in its variant.
#[inline]
pub fn decode_member<E: Event, S>(
    version: u32,
    payload: &str,
    variant: fn(E) -> S,
) -> Result<S, DecodeError> {
    match E::decode_version(version, payload) {
        Ok(event) => Ok(variant(event)),
        Err(kind) => Err(DecodeError {
            event: E::NAME.to_owned(),
            schema_version: version,
            kind,
        }),
    }
}

/// The error for a stored name that no member of a set carries.
#[cold]
pub fn unknown_event(set: &'static str, name: &str, version: u32) -> DecodeError {
    DecodeError {
        event: name.to_owned(),
        schema_version: version,
        kind: DecodeErrorKind::UnknownEvent { set },
    }
}

/// Decodes a recorded event for the `#[on]` handler taking `E`, through every upcast from
/// its stored version; a failure names the stream, its version and position, the event
/// and its schema version.
#[inline]
pub fn decode_recorded<E: Event>(record: &RecordedEvent) -> Result<E, ProjectionError> {
    E::decode_version(record.schema_version, record.payload.get())
        .map_err(|kind| undecodable_record(record, kind))
}

#[cold]
fn undecodable_record(record: &RecordedEvent, kind: DecodeErrorKind) -> ProjectionError {
    ProjectionError::from(crate::repository::RecordDecodeError {
        stream_id: record.stream_id.clone(),
        stream_version: record.stream_version,
        position: record.position,
        source: Box::new(DecodeError {
            event: record.name.clone(),
            schema_version: record.schema_version,
            kind,
        }),
    })
}

/// The future of an `#[on]` or `#[setup]` method, which the runner sends between
/// threads; called at the method's name, so a future that is not `Send` is reported there.
#[inline(always)]
pub fn send_future<F: core::future::Future + Send>(future: F) -> F {
    future
}

/// The events a `#[handle]` method returned, as events of its aggregate's set.
#[inline]
pub fn events_of<A, R>(returned: R) -> Vec<A::Events>
where
    A: Aggregate,
    R: IntoEvents<A::Events>,
{
    returned.into_events()
}

/// The error a `#[handle]` method returned, as its aggregate's error.
#[inline]
pub fn error_of<A, E>(returned: E) -> A::Error
where
    A: Aggregate,
    E: Into<A::Error>,
{
    returned.into()
}

/// Wraps each event of an `Option` or `Vec` in its set's variant.
#[inline]
pub fn collect_events<I, E, S>(events: I, variant: fn(E) -> S) -> Vec<S>
where
    I: IntoIterator<Item = E>,
{
    events.into_iter().map(variant).collect()
}

/// Compiles only when `E` is an event of the set `S`.
#[inline(always)]
pub const fn assert_event_of<S, E: EventOf<S>>() {}

/// Compiles only when `C` is a command of the set `S`.
#[inline(always)]
pub const fn assert_command_of<S, C: CommandOf<S>>() {}

/// Compiles only when `T` is an event (for `ignore_events`).
#[inline(always)]
pub const fn assert_event<T: Event>() {}

/// String equality usable in constant evaluation.
pub const fn str_eq(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// The index of the first entry of `names` that repeats an earlier one, or `N` if none
/// does. The sets' and consumers' duplicate-name checks: sorting takes O(N log N)
/// comparisons, where comparing each name with every earlier one took so many for a set of
/// 500 events that rustc stopped the constant's evaluation (`long_running_const_eval`).
pub const fn first_repeat<const N: usize>(names: &[&str; N]) -> usize {
    // Heapsort of the indices by (name, index): equal names end up next to each other,
    // each run in index order.
    let mut order = [0usize; N];
    let mut index = 0;
    while index < N {
        order[index] = index;
        index += 1;
    }
    let mut start = N / 2;
    while start > 0 {
        start -= 1;
        sift_down(names, &mut order, start, N);
    }
    let mut end = N;
    while end > 1 {
        end -= 1;
        let largest = order[0];
        order[0] = order[end];
        order[end] = largest;
        sift_down(names, &mut order, 0, end);
    }
    let mut first = N;
    let mut at = 1;
    while at < N {
        if str_eq(names[order[at - 1]], names[order[at]]) && order[at] < first {
            first = order[at];
        }
        at += 1;
    }
    first
}

/// Restores the max-heap of `order[..end]` below `root`.
const fn sift_down<const N: usize>(
    names: &[&str; N],
    order: &mut [usize; N],
    mut root: usize,
    end: usize,
) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && sorts_before(names, order[child], order[child + 1]) {
            child += 1;
        }
        if !sorts_before(names, order[root], order[child]) {
            return;
        }
        let parent = order[root];
        order[root] = order[child];
        order[child] = parent;
        root = child;
    }
}

/// Whether entry `left` sorts before entry `right`: by name's bytes, then by index.
const fn sorts_before(names: &[&str], left: usize, right: usize) -> bool {
    let (a, b) = (names[left].as_bytes(), names[right].as_bytes());
    let mut at = 0;
    while at < a.len() && at < b.len() {
        if a[at] != b[at] {
            return a[at] < b[at];
        }
        at += 1;
    }
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    left < right
}

/// Whether a `#[projection]` or `#[reactor]` name is valid, by the rule the read models
/// apply at start-up; the macros assert it in a constant, so a bad name fails the build.
pub const fn valid_consumer_name(name: &str) -> bool {
    crate::projection::is_valid_name(name)
}

/// Applies an event of the set `Self` to the aggregate `A`; `#[derive(Events)]` implements
/// it with one `A: Apply<Event>` bound per event, the compile-time check that the
/// aggregate applies every event of its set.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event set",
    label = "not a #[derive(Events)] enum",
    note = "an aggregate's `events = ...` names an enum with `#[derive(Events)]` and one variant per event"
)]
pub trait ApplyEvents<A: ?Sized>: EventSet {
    /// Calls the aggregate's `Apply` impl for the event's type.
    fn apply_to(&self, aggregate: &mut A);
}

/// Hands a command of the set `Self` to the aggregate `A`; `#[derive(Commands)]`
/// implements it with one `A: Handle<Command>` bound per command, the compile-time check
/// that the aggregate handles every command of its set.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command set",
    label = "not a #[derive(Commands)] enum",
    note = "an aggregate's `commands = ...` names an enum with `#[derive(Commands)]` and one variant per command"
)]
pub trait DispatchCommands<A: Aggregate>: CommandSet + Sized {
    /// Calls the aggregate's `Handle` impl for the command's type.
    fn dispatch(
        self,
        aggregate: &A,
        services: &A::Services,
        ctx: &CommandContext,
    ) -> Result<Vec<A::Events>, A::Error>;
}

/// Checks, at each field of an event or command, that its type has a JSON schema (the
/// registry and the generated contracts describe every payload), with a message that says
/// what to derive; the macros write `<Field as SchemaField>::HAS_SCHEMA` at the field.
#[diagnostic::on_unimplemented(
    message = "the field type `{Self}` has no JSON schema: it does not implement `JsonSchema`",
    label = "`{Self}` needs `#[derive(JsonSchema)]`",
    note = "derive it on the type through factum's re-export: `#[derive(factum::schemars::JsonSchema)]` with `#[schemars(crate = \"factum::schemars\")]`; for a type of another crate, give the field `#[schemars(with = \"...\")]`"
)]
pub trait SchemaField {
    /// Names the check in a constant.
    const HAS_SCHEMA: () = ();
}

impl<T: ?Sized + schemars::JsonSchema> SchemaField for T {}

/// Stands in for a type that an erroneous macro input does not name (`#[aggregate]`
/// without `events = ...`, a `#[projection]` whose handlers name no transaction), so that
/// the fallback impl the macro emits beside its error compiles and the mistake is the only
/// error reported. Uninhabited: never used.
#[derive(Debug, Clone)]
pub enum Unnamed {}

impl core::fmt::Display for Unnamed {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Unnamed {}

impl EventSet for Unnamed {
    const SET_NAME: &'static str = "";
    const EVENT_NAMES: &'static [&'static str] = &[];

    fn event_name(&self) -> &'static str {
        match *self {}
    }

    fn event_version(&self) -> u32 {
        match *self {}
    }

    fn encode(&self) -> Result<EncodedEvent, EncodeError> {
        match *self {}
    }

    fn tags(&self, _: &mut Vec<Tag>) {
        match *self {}
    }

    fn decode(name: &str, version: u32, _: &str) -> Result<Self, DecodeError> {
        Err(unknown_event("", name, version))
    }

    fn register(_: &mut RegistryBuilder, _: Option<&str>) {}
}

impl CommandSet for Unnamed {
    const SET_NAME: &'static str = "";
    const COMMAND_NAMES: &'static [&'static str] = &[];

    fn command_name(&self) -> &'static str {
        match *self {}
    }

    fn aggregate_id(&self) -> String {
        match *self {}
    }

    fn to_json(&self) -> Result<String, serde_json::Error> {
        match *self {}
    }

    fn from_json(_: &str, _: &str) -> Option<Result<Self, CommandDecodeError>> {
        None
    }

    fn member(&self) -> &dyn core::any::Any {
        match *self {}
    }

    fn from_member(
        command: Box<dyn core::any::Any + Send>,
    ) -> Result<Self, Box<dyn core::any::Any + Send>> {
        Err(command)
    }

    fn register(_: &mut RegistryBuilder, _: Option<&str>) {}
}

impl ReadModelTx for Unnamed {
    type ReadModel = Unnamed;

    fn checkpoint(&self) -> Option<u64> {
        match *self {}
    }
}

// Every future is `pending()`: no value of `Unnamed` exists to call them on.
impl ReadModel for Unnamed {
    type Tx = Unnamed;

    fn checkpoint(
        &self,
        _: Target,
    ) -> impl Future<Output = Result<Option<u64>, ReadModelError>> + Send {
        core::future::pending()
    }

    fn begin(&self, _: Target) -> impl Future<Output = Result<Unnamed, ReadModelError>> + Send {
        core::future::pending()
    }

    fn commit(
        &self,
        _: Unnamed,
        _: u64,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        core::future::pending()
    }

    fn rollback(&self, _: Unnamed) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        core::future::pending()
    }

    fn park(
        &self,
        _: &mut Unnamed,
        _: &ParkedEvent,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        core::future::pending()
    }

    fn unpark(
        &self,
        _: &mut Unnamed,
        _: u64,
    ) -> impl Future<Output = Result<bool, ReadModelError>> + Send {
        core::future::pending()
    }

    fn parked(
        &self,
        _: Target,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, ReadModelError>> + Send {
        core::future::pending()
    }

    fn versions(
        &self,
        _: &'static str,
    ) -> impl Future<Output = Result<Vec<VersionStatus>, ReadModelError>> + Send {
        core::future::pending()
    }

    fn activate(&self, _: Target) -> impl Future<Output = Result<bool, ReadModelError>> + Send {
        core::future::pending()
    }

    fn reset(&self, _: Target) -> impl Future<Output = Result<(), ReadModelError>> + Send {
        core::future::pending()
    }
}

#[cfg(test)]
mod tests {
    use super::first_repeat;

    /// The first entry that repeats an earlier one is the one comparing each entry with
    /// every earlier entry finds.
    #[test]
    fn first_repeat_is_the_first_entry_equal_to_an_earlier_one() {
        fn by_pairs(names: &[&str]) -> usize {
            (1..names.len())
                .find(|&index| names[..index].contains(&names[index]))
                .unwrap_or(names.len())
        }
        let cases: [[&str; 6]; 6] = [
            ["a", "b", "c", "d", "e", "f"],
            ["b", "a", "b", "a", "c", "c"],
            ["x", "y", "z", "z", "y", "x"],
            ["same", "same", "same", "same", "same", "same"],
            ["ab", "a", "abc", "b", "", "a"],
            ["", "b", "a", "c", "d", ""],
        ];
        for names in cases {
            assert_eq!(first_repeat(&names), by_pairs(&names), "{names:?}");
        }
        let many: Vec<String> = (0..500)
            .map(|index| format!("Entry{index}Recorded"))
            .collect();
        let mut names: [&str; 500] = std::array::from_fn(|index| many[index].as_str());
        assert_eq!(first_repeat(&names), 500);
        names[431] = names[17];
        names[298] = names[420];
        assert_eq!(first_repeat(&names), by_pairs(&names));
        assert_eq!(first_repeat(&names), 420);
        assert_eq!(first_repeat::<0>(&[]), 0);
    }

    /// The compile-time check of `#[projection]`/`#[reactor]` names is the read models'
    /// start-up check (which a backend that keeps read models brings).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn consumer_names_follow_the_read_model_rule() {
        use super::valid_consumer_name;
        for name in [
            "task_list",
            "a",
            "TaskList",
            "pg_x",
            "PG_x",
            "Pg_tasks",
            "pgx",
            "pg",
            "1tasks",
            "_tasks",
            "task-list",
            "task list",
            "",
            "tâches",
            "a234567890123456789012345678901234567890",
            "a2345678901234567890123456789012345678901",
        ] {
            assert_eq!(
                valid_consumer_name(name),
                crate::projection::check_name(name).is_ok(),
                "{name:?}"
            );
        }
        assert!(!valid_consumer_name("pg_x"));
        assert!(valid_consumer_name("pgx"));
    }
}
