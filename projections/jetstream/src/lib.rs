//! The NATS JetStream backend of the Portcullis stores: `JetStreamStore` implements
//! `EventLog` on one JetStream stream, `ReadModelStore` on JetStream KV buckets and `AuditLog`
//! on a second stream with retention limits.
//!
//! Owns: the wire layout (subjects `<namespace>.evt.…` in stream `<NAMESPACE>_EVENTS`, KV
//! buckets `<namespace>_<bucket>`, headers `Portcullis-Event-Type` and `Portcullis-Command-Id`,
//! audit subjects `<namespace>.audit.…` in stream `<NAMESPACE>_AUDIT`; see `audit`),
//! the server checks done at connect time, and the mapping of NATS errors onto the store
//! errors.
//!
//! Must not: know any domain event or read model, keep state beyond one connection, or read
//! our own data from `Nats-*` headers (those belong to the server).
//!
//! Invariants: every read that decides something (`load`, `get`, a conflict check) goes to the
//! stream leader, never to a possibly lagging replica; every record read back is checked and a
//! bad one is reported as corrupt, never skipped.

mod audit;
mod config;
mod connect;
mod event_log;
mod publish;
mod read_models;
mod server_version;
mod stream_state;

pub use audit::AuditStreamMismatch;
pub use config::{InvalidConfig, JetStreamConfig, MAX_KV_HISTORY, MAX_NAMESPACE_LEN};
pub use connect::ConnectError;
pub use server_version::{MINIMUM_SERVER_VERSION, ServerVersion, VersionParseError};

use async_nats::jetstream;

use crate::config::Names;

/// A client of the Portcullis stores on NATS JetStream. Cheap to clone; clones share one
/// connection.
#[derive(Clone, Debug)]
pub struct JetStreamStore {
    /// JetStream API of the connection; every request and publish goes through it.
    js: jetstream::Context,
    /// The event stream, checked against our settings at connect time.
    events: jetstream::stream::Stream<()>,
    /// Wire names of this store's namespace.
    names: Names,
    /// Replicas of the read-model buckets this store creates.
    replicas: usize,
    /// Records per key of the read-model buckets this store creates.
    kv_history: u8,
    /// Sends of one write before giving up (see `JetStreamConfig::publish_attempts`).
    publish_attempts: u32,
    /// Bound of one request, also used for one consumer delivery during a key listing.
    request_timeout: std::time::Duration,
    /// How long one audit append keeps being sent (see `JetStreamConfig::audit_append_timeout`).
    audit_append_timeout: std::time::Duration,
    /// Audit stream settings, and whether the stream was checked; shared by clones so the
    /// check runs once per store.
    audit: std::sync::Arc<audit::AuditSettings>,
}

impl JetStreamStore {
    /// The NATS client, e.g. for health checks. Closing it breaks the store.
    pub fn client(&self) -> async_nats::Client {
        self.js.client()
    }

    /// The name of the event stream of this store's namespace.
    pub fn event_stream_name(&self) -> &str {
        self.names.event_stream()
    }
}
