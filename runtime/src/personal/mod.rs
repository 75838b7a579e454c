//! Personal data: declared on event types, stored encrypted per data subject, forgotten
//! by destroying the subject's key.

mod fields;

pub use fields::{
    Personal, PersonalField, PersonalFields, RedactedText, Subject, redacted_text, redacted_value,
};
