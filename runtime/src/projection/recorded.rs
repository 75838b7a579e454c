//! The typed view of a recorded event that handlers receive.

use std::ops::Deref;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::envelope::{Metadata, RecordedEvent};

/// A decoded event together with its envelope (stream, versions, position, metadata).
///
/// Dereferences to the event, so `e.title` reads a field of the payload.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'r, E> {
    event: &'r E,
    record: &'r RecordedEvent,
}

impl<'r, E> Recorded<'r, E> {
    /// Pairs a decoded event with the record it came from.
    pub fn new(event: &'r E, record: &'r RecordedEvent) -> Self {
        Self { event, record }
    }

    /// The decoded event, in its newest shape.
    pub fn event(&self) -> &'r E {
        self.event
    }

    /// The stored record: payload as written, envelope, metadata.
    pub fn record(&self) -> &'r RecordedEvent {
        self.record
    }

    /// The event's unique id.
    pub fn event_id(&self) -> Uuid {
        self.record.event_id
    }

    /// The stream (aggregate instance) the event belongs to.
    pub fn stream_id(&self) -> &'r str {
        &self.record.stream_id
    }

    /// The event's version within its stream, from 1.
    pub fn stream_version(&self) -> u64 {
        self.record.stream_version
    }

    /// The event's global position.
    pub fn position(&self) -> u64 {
        self.record.position
    }

    /// When the event was recorded.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.record.timestamp
    }

    /// Correlation, causation, actor and free-form metadata.
    pub fn metadata(&self) -> &'r Metadata {
        &self.record.metadata
    }
}

impl<E> Deref for Recorded<'_, E> {
    type Target = E;

    fn deref(&self) -> &E {
        self.event
    }
}
