//! Settings of a `JetStreamStore` and the NATS names derived from them.
//!
//! Owns: `JetStreamConfig` with its documented defaults, its validation, and `Names`, the one
//! place that turns a namespace plus a store name (subject, bucket) into a wire name.
//!
//! Must not: talk to NATS. Every wire name the store uses is built here, so two deployments
//! with different namespaces can never touch each other's subjects, streams or buckets.

use std::time::Duration;

use portcullis_store::{Bucket, Subject, SubjectFilter};

/// Default settings, one function each so the doc comments of `JetStreamConfig` can name them.
pub(crate) mod defaults {
    use std::time::Duration;

    pub(crate) const NAMESPACE: &str = "portcullis";
    pub(crate) const REPLICAS: usize = 1;
    pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
    pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    pub(crate) const PUBLISH_ATTEMPTS: u32 = 4;
    pub(crate) const KV_HISTORY: u8 = 8;
    pub(crate) const AUDIT_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 60 * 60);
    pub(crate) const AUDIT_TIME_SLACK: Duration = Duration::from_secs(120);
    pub(crate) const AUDIT_APPEND_TIMEOUT: Duration = Duration::from_secs(15);
}

/// Most records per key a JetStream KV bucket keeps.
pub const MAX_KV_HISTORY: u8 = 64;

/// Longest namespace accepted; keeps stream and bucket names well inside NATS limits.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// Settings of one `JetStreamStore`, read once by `JetStreamStore::connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// NATS servers to connect to (`nats://host:port` or `host:port`). At least one. Required.
    pub urls: Vec<String>,
    /// Isolates deployments (and tests) that share one NATS: wire subjects are
    /// `<namespace>.<subject>`, the event stream is `<NAMESPACE>_EVENTS` and read-model buckets
    /// are `<namespace>_<bucket>`. 1–32 of `[a-z0-9_-]`. Default: `portcullis`.
    pub namespace: String,
    /// Copies of the event stream and of every read-model bucket: 1 for a single server, 3 for
    /// a production cluster (odd, 1 to 5). Default: 1.
    pub replicas: usize,
    /// How long the server remembers a command id (`Nats-Msg-Id`) to drop a retried append.
    /// At least two minutes (the log contract). Default: 2 minutes.
    pub duplicate_window: Duration,
    /// How long the initial connection may take. Default: 5 seconds.
    pub connect_timeout: Duration,
    /// How long one JetStream request or publish acknowledgement may take. Default: 5 seconds.
    pub request_timeout: Duration,
    /// How many times a write is sent (an append always with the same command id) when the
    /// server does not acknowledge it or says it is not ready, and how many times a stream or
    /// bucket creation is tried, before giving up as unavailable. Pauses between tries grow
    /// from 50 ms to 1 s. (A write that nobody answers, as while a new stream leader's
    /// interest spreads through a cluster, is sent again for up to `request_timeout`.)
    /// Default: 4.
    pub publish_attempts: u32,
    /// Records kept per read-model key (1 to 64), the live one included. A watcher reads
    /// records from the server after they are stored; a key rewritten this many times before
    /// the watcher read its older record loses that intermediate change (never the latest
    /// value). More history costs disk: up to this many copies of a value. Default: 8.
    pub kv_history: u8,
    /// Try `urls` in the order given instead of shuffled. Shuffling spreads clients over a
    /// cluster; tests keep the order to reach a chosen node. Default: false.
    pub retain_server_order: bool,
    /// How long the audit stream `<NAMESPACE>_AUDIT` keeps a record (by the time NATS stored
    /// it); older records are removed, oldest first. At least `duplicate_window`.
    /// Default: 90 days.
    pub audit_max_age: Duration,
    /// How far a record's decision time (`time_ms`, the data plane's clock) may be from the
    /// time NATS stored it (the server's clock) for audit queries bounded by `since_ms` or
    /// `until_ms` to be exact: such queries skip what was stored more than this before
    /// `since_ms` or after `until_ms`. Covers clock offset plus append retries; larger costs
    /// time-bounded queries more reading. Default: 2 minutes.
    pub audit_time_slack: Duration,
    /// How long an audit append keeps being sent (always with the same message id) while no
    /// stream leader acknowledges it. A tool call waits on its record, and NATS takes 4 to 9
    /// seconds to elect a new leader after the old one's node died, so this is how long a
    /// call can ride out such a failover before it is refused. Default: 15 seconds.
    pub audit_append_timeout: Duration,
}

impl JetStreamConfig {
    /// A config for these servers with every other setting at its default.
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            namespace: defaults::NAMESPACE.to_owned(),
            replicas: defaults::REPLICAS,
            duplicate_window: defaults::DUPLICATE_WINDOW,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            request_timeout: defaults::REQUEST_TIMEOUT,
            publish_attempts: defaults::PUBLISH_ATTEMPTS,
            kv_history: defaults::KV_HISTORY,
            retain_server_order: false,
            audit_max_age: defaults::AUDIT_MAX_AGE,
            audit_time_slack: defaults::AUDIT_TIME_SLACK,
            audit_append_timeout: defaults::AUDIT_APPEND_TIMEOUT,
        }
    }

    /// Checks every setting; the error says which one is wrong and why.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let invalid = |setting: &'static str, reason: String| InvalidConfig { setting, reason };
        if self.urls.is_empty() || self.urls.iter().any(|url| url.trim().is_empty()) {
            return Err(invalid(
                "urls",
                "at least one non-empty URL is required".to_owned(),
            ));
        }
        validate_namespace(&self.namespace).map_err(|reason| invalid("namespace", reason))?;
        if !(1..=5).contains(&self.replicas) || self.replicas.is_multiple_of(2) {
            return Err(invalid(
                "replicas",
                format!("{} is not an odd number from 1 to 5", self.replicas),
            ));
        }
        if self.duplicate_window < defaults::DUPLICATE_WINDOW {
            return Err(invalid(
                "duplicate_window",
                format!(
                    "{:?} is shorter than the two minutes the event-log contract promises",
                    self.duplicate_window
                ),
            ));
        }
        if self.audit_append_timeout.is_zero() {
            return Err(invalid(
                "audit_append_timeout",
                "must be longer than zero".to_owned(),
            ));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(invalid(
                "connect_timeout/request_timeout",
                "timeouts must be longer than zero".to_owned(),
            ));
        }
        if self.publish_attempts == 0 {
            return Err(invalid(
                "publish_attempts",
                "at least one attempt is needed".to_owned(),
            ));
        }
        if self.audit_max_age < self.duplicate_window {
            return Err(invalid(
                "audit_max_age",
                format!(
                    "{:?} is shorter than duplicate_window ({:?}), which NATS refuses",
                    self.audit_max_age, self.duplicate_window
                ),
            ));
        }
        if self.audit_time_slack > Duration::from_secs(24 * 60 * 60) {
            return Err(invalid(
                "audit_time_slack",
                format!("{:?} is longer than a day", self.audit_time_slack),
            ));
        }
        if !(1..=MAX_KV_HISTORY).contains(&self.kv_history) {
            return Err(invalid(
                "kv_history",
                format!("{} is not from 1 to {MAX_KV_HISTORY}", self.kv_history),
            ));
        }
        Ok(())
    }
}

/// A setting that `JetStreamConfig::validate` refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JetStream store setting {setting}: {reason}")]
pub struct InvalidConfig {
    /// The field.
    pub setting: &'static str,
    /// Why it was refused.
    pub reason: String,
}

fn validate_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
        return Err(format!(
            "{namespace:?} must be 1 to {MAX_NAMESPACE_LEN} characters long"
        ));
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{namespace:?} may only contain lowercase ASCII letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// The wire names of one namespace. Built only from a validated namespace.
///
/// Note: `_` joins namespace and bucket, and both may contain `_`, so namespace `a` with bucket
/// `b_c` and namespace `a_b` with bucket `c` share a bucket; pick namespaces without `_` when
/// deployments with arbitrary bucket names share one NATS.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    namespace: String,
    /// `<namespace>.`, stripped from every subject read back.
    subject_prefix: String,
    event_stream: String,
    audit_stream: String,
}

impl Names {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            subject_prefix: format!("{namespace}."),
            // Stream names allow `-` and `_`; upper case only marks it as ours in listings.
            event_stream: format!("{}_EVENTS", namespace.to_ascii_uppercase()),
            audit_stream: format!("{}_AUDIT", namespace.to_ascii_uppercase()),
        }
    }

    /// The audit stream: `<NAMESPACE>_AUDIT`.
    pub(crate) fn audit_stream(&self) -> &str {
        &self.audit_stream
    }

    /// The first two tokens of every audit subject: `<namespace>.audit`; the audit stream
    /// captures `<namespace>.audit.>`, disjoint from the event stream's `<namespace>.evt.>`.
    pub(crate) fn audit_subject_prefix(&self) -> String {
        format!("{}audit", self.subject_prefix)
    }

    /// The event stream: `<NAMESPACE>_EVENTS`.
    pub(crate) fn event_stream(&self) -> &str {
        &self.event_stream
    }

    /// The subjects the event stream captures: `<namespace>.evt.>`.
    pub(crate) fn event_stream_subjects(&self) -> Vec<String> {
        vec![format!("{}{}.>", self.subject_prefix, Subject::PREFIX)]
    }

    /// The wire subject of an aggregate.
    pub(crate) fn wire_subject(&self, subject: &Subject) -> String {
        format!("{}{}", self.subject_prefix, subject.as_str())
    }

    /// The wire form of a subscription filter.
    pub(crate) fn wire_filter(&self, filter: &SubjectFilter) -> String {
        format!("{}{}", self.subject_prefix, filter.as_str())
    }

    /// The subject as the store knows it, or `None` if `wire` is not in this namespace.
    pub(crate) fn strip_namespace<'a>(&self, wire: &'a str) -> Option<&'a str> {
        wire.strip_prefix(self.subject_prefix.as_str())
    }

    /// The KV bucket of a read-model bucket: `<namespace>_<bucket>`.
    pub(crate) fn kv_bucket(&self, bucket: &Bucket) -> String {
        format!("{}_{}", self.namespace, bucket.as_str())
    }
}

#[cfg(test)]
mod tests;
