//! A member profile: personal data in events, declared on the types.
//!
//! A member registers with an email address and a phone number, changes the address,
//! gives consent to be contacted and withdraws it. The member's id is the data subject
//! (`#[subject]`); the address and the number are personal (`#[pii]`): a
//! [`ProtectedStore`](factum::personal::ProtectedStore) stores them sealed under the
//! member's own key, and once the member is forgotten they read as their declared
//! replacements — the history still replays, the facts that are not personal (consent
//! given and withdrawn, when) stay.
#![warn(missing_docs)]

pub mod demo;
pub mod directory;

use factum::chrono::{DateTime, Utc};
use factum::prelude::*;

/// A member registered.
#[event(name = "MemberRegistered")]
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRegistered {
    /// The member: whose data this is.
    #[subject]
    pub member_id: String,
    /// Where to write to them.
    #[pii]
    pub email: String,
    /// Where to call them, if they gave a number.
    #[pii(redacted = "[forgotten]")]
    pub phone: Option<String>,
    /// When.
    pub registered_at: DateTime<Utc>,
}

/// A member changed their email address.
#[event(name = "EmailChanged")]
#[derive(Debug, Clone, PartialEq)]
pub struct EmailChanged {
    /// The member.
    #[subject]
    pub member_id: String,
    /// The new address.
    #[pii]
    pub email: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// A member consented to be contacted for a purpose.
#[event(name = "ConsentGiven")]
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentGiven {
    /// What for (`reminders`, `research`).
    pub purpose: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A member withdrew a consent.
#[event(name = "ConsentWithdrawn")]
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentWithdrawn {
    /// What for.
    pub purpose: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Every event of a member.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum MemberEvent {
    /// See [`MemberRegistered`].
    Registered(MemberRegistered),
    /// See [`EmailChanged`].
    EmailChanged(EmailChanged),
    /// See [`ConsentGiven`].
    ConsentGiven(ConsentGiven),
    /// See [`ConsentWithdrawn`].
    ConsentWithdrawn(ConsentWithdrawn),
}

/// Register a member.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// The new member's id.
    #[aggregate_id]
    pub member_id: String,
    /// Their email address.
    pub email: String,
    /// Their phone number, if any.
    pub phone: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Change a member's email address.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEmail {
    /// The member.
    #[aggregate_id]
    pub member_id: String,
    /// The new address.
    pub email: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Give consent for a purpose.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct GiveConsent {
    /// The member.
    #[aggregate_id]
    pub member_id: String,
    /// What for.
    pub purpose: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Withdraw a consent.
#[command]
#[derive(Debug, Clone, PartialEq)]
pub struct WithdrawConsent {
    /// The member.
    #[aggregate_id]
    pub member_id: String,
    /// What for.
    pub purpose: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Every command of a member.
#[derive(Commands, Debug, Clone, PartialEq)]
pub enum MemberCommand {
    /// See [`Register`].
    Register(Register),
    /// See [`ChangeEmail`].
    ChangeEmail(ChangeEmail),
    /// See [`GiveConsent`].
    GiveConsent(GiveConsent),
    /// See [`WithdrawConsent`].
    WithdrawConsent(WithdrawConsent),
}

/// Why a member refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// The member registered already.
    #[error("the member is registered already")]
    AlreadyRegistered,
    /// No such member.
    #[error("no such member")]
    NotRegistered,
    /// An address needs an `@`.
    #[error("`{0}` is not an email address")]
    NotAnEmail(String),
    /// Consent to a purpose is given once, until withdrawn.
    #[error("consent for `{0}` is given already")]
    AlreadyConsented(String),
    /// Only a given consent can be withdrawn.
    #[error("no consent for `{0}` to withdraw")]
    NoConsent(String),
}

/// A member's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Member {
    /// Whether registered.
    pub registered: bool,
    /// The current email address (empty once the member is forgotten).
    pub email: String,
    /// The phone number (`[forgotten]` once the member is forgotten).
    pub phone: Option<String>,
    /// The purposes consented to.
    pub consents: Vec<String>,
}

fn checked_email(email: String) -> Result<String, MemberError> {
    if email.contains('@') {
        Ok(email)
    } else {
        Err(MemberError::NotAnEmail(email))
    }
}

#[aggregate(
    name = "Member",
    events = MemberEvent,
    commands = MemberCommand,
    error = MemberError
)]
impl Member {
    #[handle]
    fn register(&self, command: Register) -> Result<MemberRegistered, MemberError> {
        if self.registered {
            return Err(MemberError::AlreadyRegistered);
        }
        Ok(MemberRegistered {
            member_id: command.member_id,
            email: checked_email(command.email)?,
            phone: command.phone,
            registered_at: command.at,
        })
    }

    #[handle]
    fn change_email(&self, command: ChangeEmail) -> Result<EmailChanged, MemberError> {
        if !self.registered {
            return Err(MemberError::NotRegistered);
        }
        Ok(EmailChanged {
            member_id: command.member_id,
            email: checked_email(command.email)?,
            changed_at: command.at,
        })
    }

    #[handle]
    fn give_consent(&self, command: GiveConsent) -> Result<ConsentGiven, MemberError> {
        if !self.registered {
            return Err(MemberError::NotRegistered);
        }
        if self.consents.contains(&command.purpose) {
            return Err(MemberError::AlreadyConsented(command.purpose));
        }
        Ok(ConsentGiven {
            purpose: command.purpose,
            at: command.at,
        })
    }

    #[handle]
    fn withdraw_consent(&self, command: WithdrawConsent) -> Result<ConsentWithdrawn, MemberError> {
        if !self.consents.contains(&command.purpose) {
            return Err(MemberError::NoConsent(command.purpose));
        }
        Ok(ConsentWithdrawn {
            purpose: command.purpose,
            at: command.at,
        })
    }

    #[apply]
    fn registered(&mut self, event: &MemberRegistered) {
        self.registered = true;
        self.email.clone_from(&event.email);
        self.phone.clone_from(&event.phone);
    }

    #[apply]
    fn email_changed(&mut self, event: &EmailChanged) {
        self.email.clone_from(&event.email);
    }

    #[apply]
    fn consent_given(&mut self, event: &ConsentGiven) {
        self.consents.push(event.purpose.clone());
    }

    #[apply]
    fn consent_withdrawn(&mut self, event: &ConsentWithdrawn) {
        self.consents.retain(|purpose| *purpose != event.purpose);
    }
}

/// The registry of the member's events and commands: which fields are personal.
pub fn registry() -> factum::registry::Registry {
    factum::registry::Registry::builder()
        .aggregate::<Member>()
        .build()
        .expect("the member's events are registered once each")
}
