//! The audit record of one `tools/call` decision, made durable before the call is forwarded
//! or refused.

use std::sync::Arc;

use bytes::Bytes;
use portcullis_proto::TrustLevel;
use portcullis_proto::audit::v1::{AuditRecord, Decision as PbDecision};
use portcullis_store::{AuditDecision, AuditEntry, AuditError, AuditLog};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::decide::{Decision, Levels};

/// Who and what a decision was about.
#[derive(Clone, Debug, Default)]
pub struct Subjects<'a> {
    /// Host.
    pub host_id: &'a str,
    /// Human.
    pub human_id: &'a str,
    /// Human's email, when known.
    pub human_email: &'a str,
    /// Agent.
    pub agent_id: &'a str,
    /// Agent's name, when known.
    pub agent_name: &'a str,
    /// OAuth client id.
    pub client_id: &'a str,
    /// Server.
    pub server_id: &'a str,
    /// Server key.
    pub server_key: &'a str,
    /// The request id (also returned to the client as `X-Request-Id`).
    pub request_id: &'a str,
}

/// Most bytes of a tool name an audit entry indexes (the store's limit).
const MAX_TOOL_BYTES: usize = 128;

/// The tool name as the store may index it: names that are too long or hold control
/// characters are cut and escaped, and the record's reason says so.
fn indexable_tool(tool: &str) -> (String, bool) {
    let clean =
        !tool.chars().any(char::is_control) && tool.trim() == tool && tool.len() <= MAX_TOOL_BYTES;
    if clean {
        return (tool.to_owned(), false);
    }
    let mut escaped: String = tool
        .escape_default()
        .to_string()
        .trim()
        .chars()
        .take(MAX_TOOL_BYTES / 4)
        .collect();
    escaped.push('…');
    (escaped, true)
}

fn level(level: Option<TrustLevel>) -> i32 {
    level.map_or(0, |l| l.to_proto() as i32)
}

/// What was decided.
#[derive(Clone, Copy, Debug)]
pub struct Verdict<'a> {
    /// The tool named (may be empty or hostile).
    pub tool: &'a str,
    /// The decision.
    pub decision: &'a Decision,
    /// `allowed` or the deny reason.
    pub reason: &'a str,
    /// The raw `arguments`, digested into the record.
    pub arguments: Option<&'a [u8]>,
    /// Time taken to decide, microseconds.
    pub latency_us: u64,
    /// When, milliseconds since the epoch.
    pub now_ms: i64,
}

/// Writes the record of a verdict and waits until the store has it durably.
pub async fn record(
    audit: &Arc<dyn AuditLog>,
    who: &Subjects<'_>,
    verdict: &Verdict<'_>,
) -> Result<(), AuditError> {
    let Verdict {
        tool,
        decision,
        reason,
        arguments,
        latency_us,
        now_ms,
    } = *verdict;
    let (indexed_tool, mangled) = indexable_tool(tool);
    let reason = if mangled {
        format!("{reason}; tool name escaped and truncated for the index")
    } else {
        reason.to_owned()
    };
    let levels: &Levels = decision.levels();
    let allowed = matches!(decision, Decision::Allow(_));
    let record_id = ulid::Ulid::new().to_string();
    let record = AuditRecord {
        record_id: record_id.clone(),
        time_ms: now_ms,
        host_id: who.host_id.to_owned(),
        human_id: who.human_id.to_owned(),
        human_email: who.human_email.to_owned(),
        agent_id: who.agent_id.to_owned(),
        client_id: who.client_id.to_owned(),
        agent_name: who.agent_name.to_owned(),
        server_id: who.server_id.to_owned(),
        server_key: who.server_key.to_owned(),
        tool: indexed_tool.clone(),
        decision: if allowed {
            PbDecision::Allowed
        } else {
            PbDecision::Denied
        } as i32,
        reason,
        required_trust: level(levels.required),
        granted_trust: level(Some(levels.effective)),
        latency_us,
        request_id: who.request_id.to_owned(),
        arguments_sha256: arguments
            .map(|bytes| Sha256::digest(bytes).to_vec())
            .unwrap_or_default(),
    };
    audit
        .append(AuditEntry {
            record_id,
            host_id: who.host_id.to_owned(),
            time_ms: now_ms,
            human_id: who.human_id.to_owned(),
            agent_id: who.agent_id.to_owned(),
            server_id: who.server_id.to_owned(),
            tool: indexed_tool,
            decision: if allowed {
                AuditDecision::Allowed
            } else {
                AuditDecision::Denied
            },
            record: Bytes::from(record.encode_to_vec()),
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_tool_names_are_escaped_for_the_index() {
        assert_eq!(indexable_tool("read_file"), ("read_file".to_owned(), false));
        let (name, mangled) = indexable_tool("evil\nname");
        assert!(mangled && !name.contains('\n'));
        let (long, mangled) = indexable_tool(&"x".repeat(500));
        assert!(mangled && long.len() <= MAX_TOOL_BYTES);
        assert!(indexable_tool(" padded").1);
    }
}
