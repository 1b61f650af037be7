//! The authorization rule (DESIGN.md section 2), as a pure function of the read models.
//!
//! A call is allowed iff the session is live, the human still holds a grant on the server
//! issued before the session started, the agent has not been revoked from the server, the
//! tool exists and is enabled, and `tool.trust ≤ min(consented, grant.max, agent cap if set)`.
//! Every denial says which of these failed, with the levels involved, so the client (and the
//! audit trail) can tell the human what to do.

use portcullis_projector::models::{Agent, Grant, Server};
use portcullis_proto::TrustLevel;

use crate::replica::SessionRecord;

/// What the policy needs to decide one call.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The consent session (already known to be live and to belong to the caller).
    pub session: &'a SessionRecord,
    /// The human's grant on the session's server, if live.
    pub grant: Option<&'a Grant>,
    /// The server's catalog.
    pub server: &'a Server,
    /// The agent, if live.
    pub agent: Option<&'a Agent>,
}

/// Why a call was denied. The names are stable: they appear in audit records, metrics and
/// the JSON-RPC error's `data.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The server has no tool by that name.
    UnknownTool,
    /// An admin disabled the tool.
    ToolDisabled,
    /// The human holds no grant on the server (never, or revoked).
    NoGrant,
    /// The grant was issued after the session started (the session predates it).
    GrantNewerThanSession,
    /// The agent was deleted or revoked from the server.
    AgentRevoked,
    /// The tool needs more trust than the session carries.
    InsufficientTrust,
}

impl DenyReason {
    /// The stable snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::UnknownTool => "unknown_tool",
            DenyReason::ToolDisabled => "tool_disabled",
            DenyReason::NoGrant => "no_grant",
            DenyReason::GrantNewerThanSession => "grant_newer_than_session",
            DenyReason::AgentRevoked => "agent_revoked",
            DenyReason::InsufficientTrust => "insufficient_trust",
        }
    }
}

/// The levels that went into a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// The tool's level, when the tool exists.
    pub required: Option<TrustLevel>,
    /// What the human consented to for this agent.
    pub consented: TrustLevel,
    /// The admin's ceiling for the human, when granted.
    pub grant: Option<TrustLevel>,
    /// The admin's cap for the agent on this server, when set.
    pub agent_cap: Option<TrustLevel>,
    /// The effective level: the minimum of the above (consented when there is no grant).
    pub effective: TrustLevel,
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward the call.
    Allow(Levels),
    /// Refuse it.
    Deny(DenyReason, Levels),
}

impl Decision {
    /// The levels either way.
    pub fn levels(&self) -> &Levels {
        match self {
            Decision::Allow(levels) | Decision::Deny(_, levels) => levels,
        }
    }
}

/// The effective level of a session: `min(consented, grant.max, agent cap)`, and the parts.
pub fn effective_levels(facts: &Facts<'_>, required: Option<TrustLevel>) -> Levels {
    let consented = facts.session.trust_level();
    let grant = facts.grant.map(|g| g.max_trust_level);
    let agent_cap = facts
        .agent
        .and_then(|agent| agent.caps.get(&*facts.session.server_id()).copied());
    let effective = [Some(consented), grant, agent_cap]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(consented);
    Levels {
        required,
        consented,
        grant,
        agent_cap,
        effective,
    }
}

/// Whether the session may use the server at all (grant and agent standing), independent
/// of any tool; `None` when it may.
pub fn standing(facts: &Facts<'_>) -> Option<DenyReason> {
    let Some(grant) = facts.grant else {
        return Some(DenyReason::NoGrant);
    };
    if grant.issued_sequence > facts.session.started_sequence() {
        return Some(DenyReason::GrantNewerThanSession);
    }
    match facts.agent {
        None => Some(DenyReason::AgentRevoked),
        Some(agent)
            if !agent.session_survives_revocations(
                &facts.session.server_id(),
                facts.session.started_sequence(),
            ) =>
        {
            Some(DenyReason::AgentRevoked)
        }
        Some(_) => None,
    }
}

/// Decides a `tools/call` of `tool`.
pub fn decide(facts: &Facts<'_>, tool: &str) -> Decision {
    let found = facts.server.tools.get(tool);
    let levels = effective_levels(facts, found.map(|t| t.trust_level));
    if let Some(reason) = standing(facts) {
        return Decision::Deny(reason, levels);
    }
    let Some(found) = found else {
        return Decision::Deny(DenyReason::UnknownTool, levels);
    };
    if !found.enabled {
        return Decision::Deny(DenyReason::ToolDisabled, levels);
    }
    if found.trust_level > levels.effective {
        return Decision::Deny(DenyReason::InsufficientTrust, levels);
    }
    Decision::Allow(levels)
}

/// Whether `tools/list` should show `tool` to this session.
pub fn visible(facts: &Facts<'_>, tool: &str) -> bool {
    matches!(decide(facts, tool), Decision::Allow(_))
}

#[cfg(test)]
mod tests;
