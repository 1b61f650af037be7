//! The audit log: one record per authorization decision, appended durably before the decision
//! takes effect, and queried per host, newest first, by the fields an admin filters on.
//!
//! Owns: `AuditLog` (the trait both backends implement), the entry and query types, their
//! validation (`validate_audit_entry`, `AuditFilter::validate`) and the exact filter predicate
//! (`AuditFilter::matches`) that backends apply to whatever their indexes narrowed down.
//!
//! Must not: know the `AuditRecord` protobuf. The encoded record is opaque bytes here; the
//! fields a query filters on travel beside it as plain strings (`portcullis-proto` depends on
//! this crate, so this crate cannot depend on it).
//!
//! Invariants: a host is required in every query, and a backend returns only records whose
//! `host_id` equals it (tenant isolation); an entry that fails validation is refused before a
//! backend writes anything.

use async_trait::async_trait;
use bytes::Bytes;

use crate::BoxError;

/// Largest encoded `AuditRecord` a backend accepts. Records carry ids, a reason and a hash,
/// never arguments, so real ones are a few hundred bytes.
pub const MAX_AUDIT_RECORD_BYTES: usize = 64 * 1024;

/// Longest id (`record_id`, `host_id`, `human_id`, `agent_id`, `server_id`).
pub const MAX_AUDIT_ID_BYTES: usize = 64;

/// Longest tool name, in bytes.
pub const MAX_AUDIT_TOOL_BYTES: usize = 128;

/// Most records one `query` returns.
pub const MAX_AUDIT_PAGE: usize = 500;

/// Latest `time_ms` accepted: the last millisecond of the year 9999.
pub const MAX_AUDIT_TIME_MS: i64 = 253_402_300_799_999;

/// The outcome of the decision a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditDecision {
    /// The tool call was allowed and forwarded.
    Allowed,
    /// The tool call was refused.
    Denied,
}

impl AuditDecision {
    /// The stored form: `allowed` or `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allowed => "allowed",
            AuditDecision::Denied => "denied",
        }
    }

    /// Parses the stored form; anything else is `None`.
    pub fn parse(text: &str) -> Option<AuditDecision> {
        match text {
            "allowed" => Some(AuditDecision::Allowed),
            "denied" => Some(AuditDecision::Denied),
            _ => None,
        }
    }
}

impl std::fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record to append: the fields queries filter on, and the encoded record.
///
/// Ids are 1–64 of `[A-Za-z0-9_-]` (the reserved id `_` is refused). `human_id`, `agent_id`,
/// `server_id` and `tool` may be empty, meaning "not known when the decision was made" (a call
/// with no valid session has no human); an empty field is never matched by a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The record's id (a ULID), unique within its host. The idempotency key of `append`: a
    /// retried append with the same host and id writes nothing new.
    pub record_id: String,
    /// The tenant the decision belongs to. Required.
    pub host_id: String,
    /// When the decision was made, in milliseconds since the Unix epoch (1 to
    /// `MAX_AUDIT_TIME_MS`).
    pub time_ms: i64,
    /// The human behind the agent, or empty.
    pub human_id: String,
    /// The agent (OAuth client registration), or empty.
    pub agent_id: String,
    /// The upstream server, or empty.
    pub server_id: String,
    /// The tool called: up to 128 bytes of UTF-8 without control characters or surrounding
    /// whitespace, or empty.
    pub tool: String,
    /// Allowed or denied.
    pub decision: AuditDecision,
    /// The encoded `portcullis.audit.v1.AuditRecord`, at most `MAX_AUDIT_RECORD_BYTES`; opaque
    /// to the store.
    pub record: Bytes,
}

/// What a successful append returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditReceipt {
    /// The record's position in the audit log; larger means appended later.
    pub sequence: u64,
    /// True when this host and record id had been appended already (a retry); `sequence` is
    /// then the first append's and nothing new was written.
    pub duplicate: bool,
}

/// An audit record as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedAudit {
    /// Its position in the audit log.
    pub sequence: u64,
    /// The entry as appended.
    pub entry: AuditEntry,
}

/// What a query selects. `host_id` is required; every other field narrows the result when set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this host's records. Required: no query spans tenants.
    pub host_id: String,
    /// Only decisions for this human.
    pub human_id: Option<String>,
    /// Only decisions for this agent.
    pub agent_id: Option<String>,
    /// Only decisions on this server.
    pub server_id: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only allowed, or only denied, decisions.
    pub decision: Option<AuditDecision>,
    /// Only decisions made at or after this time (`time_ms`, inclusive).
    pub since_ms: Option<i64>,
    /// Only decisions made at or before this time (`time_ms`, inclusive).
    pub until_ms: Option<i64>,
}

impl AuditFilter {
    /// Every record of one host.
    pub fn host(host_id: impl Into<String>) -> AuditFilter {
        AuditFilter {
            host_id: host_id.into(),
            ..AuditFilter::default()
        }
    }

    /// Checks the filter; the error says which field is wrong.
    pub fn validate(&self) -> Result<(), AuditError> {
        let invalid = |reason: String| AuditError::InvalidQuery { reason };
        if self.host_id.is_empty() {
            return Err(invalid("host_id is required".to_owned()));
        }
        check_id("host_id", &self.host_id).map_err(invalid)?;
        for (field, value) in [
            ("human_id", &self.human_id),
            ("agent_id", &self.agent_id),
            ("server_id", &self.server_id),
        ] {
            if let Some(value) = value {
                if value.is_empty() {
                    return Err(invalid(format!("{field} filter must not be empty")));
                }
                check_id(field, value).map_err(invalid)?;
            }
        }
        if let Some(tool) = &self.tool {
            if tool.is_empty() {
                return Err(invalid("tool filter must not be empty".to_owned()));
            }
            check_tool(tool).map_err(invalid)?;
        }
        for (field, value) in [("since_ms", self.since_ms), ("until_ms", self.until_ms)] {
            if let Some(value) = value
                && !(0..=MAX_AUDIT_TIME_MS).contains(&value)
            {
                return Err(invalid(format!(
                    "{field} {value} is not between 0 and {MAX_AUDIT_TIME_MS}"
                )));
            }
        }
        if let (Some(since), Some(until)) = (self.since_ms, self.until_ms)
            && since > until
        {
            return Err(invalid(format!(
                "since_ms {since} is after until_ms {until}"
            )));
        }
        Ok(())
    }

    /// Whether `entry` is selected by this filter: the exact predicate, which backends apply
    /// to every candidate their indexes yield.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let field =
            |wanted: &Option<String>, have: &str| wanted.as_deref().is_none_or(|w| w == have);
        entry.host_id == self.host_id
            && field(&self.human_id, &entry.human_id)
            && field(&self.agent_id, &entry.agent_id)
            && field(&self.server_id, &entry.server_id)
            && field(&self.tool, &entry.tool)
            && self.decision.is_none_or(|d| d == entry.decision)
            && self.since_ms.is_none_or(|since| entry.time_ms >= since)
            && self.until_ms.is_none_or(|until| entry.time_ms <= until)
    }
}

/// Where the next page of a query starts. Opaque to callers: pass back what `AuditPage::next`
/// gave, as a string (`to_string`) and parsed back (`parse`), with the same filter.
///
/// It names a position, not a snapshot: the next page holds records older than every record
/// of the pages before it, so pages never repeat or skip a record, whatever is appended
/// meanwhile (newer records show up on a new first page).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditCursor {
    /// The next page holds only records with a smaller sequence.
    before: u64,
}

impl AuditCursor {
    /// Text form marker, so a cursor is not mistaken for a plain number.
    const PREFIX: &'static str = "ac1-";

    /// For backends: a cursor continuing below `sequence`.
    pub fn before(sequence: u64) -> AuditCursor {
        AuditCursor { before: sequence }
    }

    /// For backends: the next page holds only records with a sequence below this.
    pub fn before_sequence(&self) -> u64 {
        self.before
    }

    /// Parses the text form of a cursor.
    pub fn parse(text: &str) -> Result<AuditCursor, AuditError> {
        let invalid = || AuditError::InvalidQuery {
            reason: format!(
                "cursor {:?} is not one this log handed out",
                text.chars().take(40).collect::<String>()
            ),
        };
        let hex = text.strip_prefix(Self::PREFIX).ok_or_else(invalid)?;
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let before = u64::from_str_radix(hex, 16).map_err(|_| invalid())?;
        if before == 0 {
            return Err(invalid());
        }
        Ok(AuditCursor { before })
    }
}

impl std::fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:x}", Self::PREFIX, self.before)
    }
}

impl std::fmt::Debug for AuditCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditCursor({self})")
    }
}

/// One page of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    /// Matching records, newest (largest sequence) first; at most the limit asked for.
    pub records: Vec<RecordedAudit>,
    /// Where the next page starts; `None` when no older matching record exists.
    pub next: Option<AuditCursor>,
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The entry is not storable (a bad id, an oversized record); nothing was written.
    #[error("audit record {record_id:?} of host {host_id:?} rejected: {reason}")]
    Rejected {
        /// The entry's host, truncated to 80 characters.
        host_id: String,
        /// The entry's record id, truncated to 80 characters.
        record_id: String,
        /// Why.
        reason: String,
    },
    /// The query is malformed (no host, a bad limit or cursor); nothing was read.
    #[error("invalid audit query: {reason}")]
    InvalidQuery {
        /// Why.
        reason: String,
    },
    /// The store could not be reached or failed. For an append the outcome is unknown: retry
    /// with the same record id, which cannot write it twice.
    #[error("audit log unavailable: {context}")]
    Unavailable {
        /// What was being done.
        context: String,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
    /// A stored record could not be read back; reported, never skipped.
    #[error("audit record at sequence {sequence} is corrupt: {reason}")]
    Corrupt {
        /// Its position.
        sequence: u64,
        /// What is wrong with it.
        reason: String,
    },
}

fn truncated(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Checks an id: 1–64 of `[A-Za-z0-9_-]`, not the reserved `_`.
fn check_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_AUDIT_ID_BYTES {
        return Err(format!(
            "{field} must be 1 to {MAX_AUDIT_ID_BYTES} bytes long"
        ));
    }
    if value == "_" {
        return Err(format!("{field} \"_\" is reserved"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "{field} may only contain ASCII letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// Checks a non-empty tool name.
fn check_tool(tool: &str) -> Result<(), String> {
    if tool.len() > MAX_AUDIT_TOOL_BYTES {
        return Err(format!(
            "tool name of {} bytes exceeds {MAX_AUDIT_TOOL_BYTES} bytes",
            tool.len()
        ));
    }
    if tool.chars().any(char::is_control) {
        return Err("tool name contains a control character".to_owned());
    }
    if tool.starts_with(char::is_whitespace) || tool.ends_with(char::is_whitespace) {
        return Err("tool name starts or ends with whitespace".to_owned());
    }
    Ok(())
}

/// Checks that apply to every backend before it writes anything.
pub fn validate_audit_entry(entry: &AuditEntry) -> Result<(), AuditError> {
    let reject = |reason: String| AuditError::Rejected {
        host_id: truncated(&entry.host_id),
        record_id: truncated(&entry.record_id),
        reason,
    };
    check_id("record_id", &entry.record_id).map_err(reject)?;
    check_id("host_id", &entry.host_id).map_err(reject)?;
    for (field, value) in [
        ("human_id", &entry.human_id),
        ("agent_id", &entry.agent_id),
        ("server_id", &entry.server_id),
    ] {
        if !value.is_empty() {
            check_id(field, value).map_err(reject)?;
        }
    }
    if !entry.tool.is_empty() {
        check_tool(&entry.tool).map_err(reject)?;
    }
    if !(1..=MAX_AUDIT_TIME_MS).contains(&entry.time_ms) {
        return Err(reject(format!(
            "time_ms {} is not between 1 and {MAX_AUDIT_TIME_MS}",
            entry.time_ms
        )));
    }
    if entry.record.len() > MAX_AUDIT_RECORD_BYTES {
        return Err(reject(format!(
            "record of {} bytes exceeds the {MAX_AUDIT_RECORD_BYTES}-byte limit",
            entry.record.len()
        )));
    }
    Ok(())
}

/// Checks a whole query: the filter and the page size.
pub fn validate_audit_query(filter: &AuditFilter, limit: usize) -> Result<(), AuditError> {
    filter.validate()?;
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(AuditError::InvalidQuery {
            reason: format!("limit {limit} is not between 1 and {MAX_AUDIT_PAGE}"),
        });
    }
    Ok(())
}

/// The audit log: append-only, durable, queryable per host.
///
/// Contract (proven for every backend by `tests/contract`):
/// - `append` returns only once the record is durable (survives a crash of the store's
///   process or processes); a bad entry is `AuditError::Rejected` and writes nothing.
/// - An append whose host and record id were appended before (within the backend's duplicate
///   window, at least two minutes) writes nothing and returns the first sequence with
///   `duplicate: true`. Concurrent appends each land exactly once.
/// - `query` returns the records matching the filter, newest (largest sequence) first, at most
///   `limit` (1 to `MAX_AUDIT_PAGE`) per page, never a record of another host; it sees every
///   append that returned before it was called. Following `next` pages through every older
///   match exactly once, whatever is appended meanwhile.
/// - Records may expire by the backend's retention (oldest first); nothing else removes one.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends one record durably.
    async fn append(&self, entry: AuditEntry) -> Result<AuditReceipt, AuditError>;

    /// One page of the host's records matching `filter`, newest first, continuing from
    /// `cursor` (from the previous page's `next`) when given.
    async fn query(
        &self,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<AuditCursor>,
    ) -> Result<AuditPage, AuditError>;
}

#[cfg(test)]
mod tests;
