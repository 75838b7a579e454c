//! The benches' event with personal data: a member's contact details, the shape of
//! `examples/member-profile`'s `MemberRegistered` (the member's id as the data subject,
//! an email address and a phone number as personal fields), and an aggregate that
//! replays it.
//!
//! Included by `sealed_sqlite.rs` and `verify_sqlite.rs`.

use factum::chrono::{DateTime, TimeZone, Utc};
use factum::personal::PersonalCatalog;
use factum::prelude::*;
use factum::registry::Registry;

/// A member's contact details changed: two personal fields.
#[event(name = "ContactChanged")]
#[derive(Debug, Clone, PartialEq)]
pub struct ContactChanged {
    /// The member: whose data this is.
    #[subject]
    pub member_id: String,
    /// Where to write to them.
    #[pii]
    pub email: String,
    /// Where to call them.
    #[pii(redacted = "[forgotten]")]
    pub phone: Option<String>,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// Every event of a member.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum MemberEvent {
    /// See [`ContactChanged`].
    ContactChanged(ContactChanged),
}

/// Change a member's contact details.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeContact {
    /// The member.
    #[aggregate_id]
    pub member_id: String,
    /// The new address.
    pub email: String,
    /// The new number.
    pub phone: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Every command of a member.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum MemberCommand {
    /// See [`ChangeContact`].
    ChangeContact(ChangeContact),
}

/// Why a member refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// An address needs an `@`.
    #[error("`{0}` is not an email address")]
    NotAnEmail(String),
}

/// A member's state: the current details and how often they changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Member {
    /// The current address.
    pub email: String,
    /// The current number.
    pub phone: Option<String>,
    /// Changes applied.
    pub changes: u64,
}

#[aggregate(
    name = "Member",
    events = MemberEvent,
    commands = MemberCommand,
    error = MemberError
)]
impl Member {
    #[handle]
    fn change_contact(&self, command: ChangeContact) -> Result<ContactChanged, MemberError> {
        if !command.email.contains('@') {
            return Err(MemberError::NotAnEmail(command.email));
        }
        Ok(ContactChanged {
            member_id: command.member_id,
            email: command.email,
            phone: command.phone,
            changed_at: command.at,
        })
    }

    #[apply]
    fn contact_changed(&mut self, event: &ContactChanged) {
        self.email.clone_from(&event.email);
        self.phone.clone_from(&event.phone);
        self.changes += 1;
    }
}

/// Which of the member's fields are personal.
pub fn catalog() -> PersonalCatalog {
    let registry = Registry::builder()
        .aggregate::<Member>()
        .build()
        .expect("the member's events are registered once each");
    PersonalCatalog::from_registry(&registry)
}

/// The `n`th change of `member_id`'s details: the same sizes for every `n` (a 30-byte
/// address, a 13-character number).
pub fn change(member_id: &str, n: u64) -> ContactChanged {
    ContactChanged {
        member_id: member_id.to_owned(),
        email: format!("member.{:08}@example.org", n % 100_000_000),
        phone: Some(format!("+44 {:09}", n % 1_000_000_000)),
        changed_at: Utc
            .timestamp_opt(1_780_000_000 + (n % 1_000_000) as i64, 0)
            .single()
            .expect("a valid time"),
    }
}

/// `count` changes of `member_id`'s details from `first` on, as events to append, with
/// a command's metadata.
pub fn new_events(member_id: &str, first: u64, count: usize) -> Vec<NewEvent> {
    let metadata = CommandContext::new()
        .actor(Actor::new("member", member_id))
        .event_metadata();
    (0..count as u64)
        .map(|offset| {
            let event = change(member_id, first + offset);
            NewEvent::new(
                ContactChanged::NAME,
                ContactChanged::VERSION,
                serde_json::value::to_raw_value(&event).expect("JSON"),
                metadata.clone(),
            )
        })
        .collect()
}
