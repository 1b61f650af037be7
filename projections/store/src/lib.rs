//! The storage contracts of Portcullis: an append-only event log and a key/value read-model
//! store with watch, each behind a trait with two backends (`portcullis-store-sqlite` for one
//! process, `portcullis-store-jetstream` for a cluster).
//!
//! Owns: the validated names the stores accept (`Subject`, `SubjectFilter`, `Bucket`, `Key`,
//! `CommandId`), the `EventLog` and `ReadModelStore` traits, and their error enums.
//!
//! Must not: know any domain event or read model (payloads are opaque bytes), talk to a
//! network, or pick a backend. The shared contract suite that every backend must pass lives
//! in `tests/contract`.
//!
//! Invariant: every name is validated when it is built, so a backend never sees a subject,
//! bucket or key that could escape its namespace (no wildcards, no empty tokens).

mod audit;
mod kv;
mod log;
mod names;

pub use audit::{
    AuditCursor, AuditDecision, AuditEntry, AuditError, AuditFilter, AuditLog, AuditPage,
    AuditReceipt, MAX_AUDIT_ID_BYTES, MAX_AUDIT_PAGE, MAX_AUDIT_RECORD_BYTES, MAX_AUDIT_TIME_MS,
    MAX_AUDIT_TOOL_BYTES, RecordedAudit, validate_audit_entry, validate_audit_query,
};
pub use kv::{Entry, Expect, KvError, MAX_VALUE_BYTES, ReadModelStore, WatchEvent, WatchStream};
pub use log::{
    AppendError, Appended, EventLog, EventStream, Loaded, LogError, MAX_EVENT_BYTES, NewEvent,
    RecordedEvent, Version, validate_new_event,
};
pub use names::{Bucket, CommandId, InvalidName, Key, Subject, SubjectFilter};

/// A boxed error from a backend's client library, kept as the `source` of our typed errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
