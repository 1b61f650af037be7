//! The append-only event log: one subject per aggregate instance, optimistic concurrency on
//! the subject's last sequence, idempotent appends keyed by command id, replay-then-follow.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::{BoxError, CommandId, Subject, SubjectFilter};

/// Largest event payload a backend accepts. NATS defaults to 1 MiB per message; we keep
/// well under it so headers and envelopes always fit.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// The version of an aggregate: the log sequence of its last event, `Version(0)` when it has
/// none. Versions are not dense per aggregate; they only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The version of an aggregate with no events.
    pub const NONE: Version = Version(0);
}

/// An event to append: its type name (stored beside the payload, so readers can skip what they
/// do not know without decoding) and its encoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Stable type name, e.g. `portcullis.v1.GrantIssued`. 1–128 printable ASCII bytes.
    pub event_type: String,
    /// Encoded payload; opaque to the store.
    pub payload: Bytes,
}

/// An event as the log recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Position in the whole log; strictly increasing, never reused.
    pub sequence: u64,
    /// The aggregate it belongs to.
    pub subject: Subject,
    /// Its type name.
    pub event_type: String,
    /// The command that caused it.
    pub command_id: CommandId,
    /// Milliseconds since the Unix epoch, by the store's clock, when it was recorded.
    pub recorded_at_ms: i64,
    /// The encoded payload.
    pub payload: Bytes,
}

/// The outcome of a successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The sequence of the stored event: the aggregate's new version.
    pub sequence: u64,
    /// True when the command id had been appended already and nothing new was written;
    /// `sequence` is then that earlier event's.
    pub duplicate: bool,
}

/// An aggregate's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The version to pass to the next `append`.
    pub version: Version,
    /// Every event of the aggregate, oldest first.
    pub events: Vec<RecordedEvent>,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the subject since `expected`: reload and decide again.
    #[error("{subject} is at version {actual:?}, not the expected {expected:?}")]
    Conflict {
        /// The aggregate.
        subject: Subject,
        /// What the caller expected.
        expected: Version,
        /// What the store reported, when it says.
        actual: Option<Version>,
    },
    /// The event is not storable (too large, bad type name); nothing was written.
    #[error("event for {subject} rejected: {reason}")]
    Rejected {
        /// The aggregate.
        subject: Subject,
        /// Why.
        reason: String,
    },
    /// The store could not be reached or failed; the append may or may not have happened,
    /// so retry with the same command id.
    #[error("event log unavailable while appending to {subject}")]
    Unavailable {
        /// The aggregate.
        subject: Subject,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
}

/// A failure reading the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store could not be reached or failed.
    #[error("event log unavailable: {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
    /// A stored record could not be read back (missing header, bad subject); never skipped
    /// silently, since a projection that skips an event is wrong forever.
    #[error("event log record {sequence} is corrupt: {reason}")]
    Corrupt {
        /// Its position.
        sequence: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Events in log order; ends only on error or when the store shuts down.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, LogError>> + Send>>;

/// Checks that apply to every backend before it writes anything.
pub fn validate_new_event(subject: &Subject, event: &NewEvent) -> Result<(), AppendError> {
    let reject = |reason: String| AppendError::Rejected {
        subject: subject.clone(),
        reason,
    };
    if event.payload.len() > MAX_EVENT_BYTES {
        return Err(reject(format!(
            "payload of {} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
            event.payload.len()
        )));
    }
    if event.event_type.is_empty()
        || event.event_type.len() > 128
        || !event.event_type.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(reject(
            "event type must be 1 to 128 printable ASCII bytes".to_owned(),
        ));
    }
    Ok(())
}

/// The append-only event log.
///
/// Contract (proven for every backend by `tests/contract`):
/// - `append` succeeds only if the subject's version equals `expected` (`Version::NONE` for a
///   new aggregate); of several concurrent appends with the same expectation exactly one wins,
///   the others get `AppendError::Conflict`.
/// - An append whose command id was already appended (within the backend's duplicate window,
///   at least two minutes) writes nothing and returns the first append's sequence with
///   `duplicate: true`, whatever `expected` says.
/// - `subscribe(filter, from)` yields every matching event with `sequence >= from` in log
///   order, then follows new events live, never skipping or repeating one.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one event to `subject` if it is at version `expected`.
    async fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<Appended, AppendError>;

    /// Reads an aggregate's whole history and version (a consistent read: it sees every
    /// append that returned before it was called).
    async fn load(&self, subject: &Subject) -> Result<Loaded, LogError>;

    /// The sequence of the last event in the whole log, 0 when empty.
    async fn head(&self) -> Result<u64, LogError>;

    /// Events matching `filter` from sequence `from` (inclusive) on, then live ones.
    async fn subscribe(&self, filter: &SubjectFilter, from: u64) -> Result<EventStream, LogError>;
}
