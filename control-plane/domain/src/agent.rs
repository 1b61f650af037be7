//! The agent aggregate (`evt.<host>.agent.<agent_id>`): an MCP client registration and the
//! admin's per-server caps and revocations on it.
//!
//! Agents are registered by the consent flow; the admin may cap an agent's trust per server,
//! clear a cap, revoke the agent on a server (ending its sessions there as of that event), or
//! delete it. Every revocation is recorded, even a repeated one, because each one ends the
//! sessions started before it.

use std::collections::BTreeMap;

use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1::{
    AgentCapCleared, AgentCapSet, AgentConnected, AgentDeleted, AgentRegistered, AgentServerRevoked,
};

use crate::{Aggregate, Decision, EventBody};

/// An agent's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Agent {
    /// Never registered.
    #[default]
    Absent,
    /// Registered.
    Live {
        /// Admin caps by server id.
        caps: BTreeMap<String, TrustLevel>,
        /// The human who connected it, once known.
        human_id: Option<String>,
    },
    /// Deleted for good.
    Deleted,
}

/// What can be done to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentCommand {
    /// Registers it (the consent flow; tests).
    Register(AgentRegistered),
    /// Caps its trust on a server; the same cap again changes nothing.
    SetCap {
        /// The server.
        server_id: String,
        /// The cap.
        max_trust_level: TrustLevel,
    },
    /// Clears its cap on a server; a no-op without one.
    ClearCap {
        /// The server.
        server_id: String,
    },
    /// Ends its sessions on a server.
    RevokeServer {
        /// The server.
        server_id: String,
    },
    /// Records that `human_id` consented for it in the browser; a no-op if already theirs.
    Connect {
        /// The human.
        human_id: String,
    },
    /// Deletes it.
    Delete,
}

/// Why an agent command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentRejected {
    /// The id is taken (now or in the past).
    #[error("agent id is already taken")]
    AlreadyExists,
    /// Never registered, or deleted.
    #[error("agent not found")]
    NotFound,
}

impl Aggregate for Agent {
    type Command = AgentCommand;
    type Rejection = AgentRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Agent::Absent, EventBody::AgentRegistered(e)) => Agent::Live {
                caps: BTreeMap::new(),
                human_id: e.human_id.clone(),
            },
            (Agent::Live { mut caps, human_id }, EventBody::AgentCapSet(e)) => {
                if let Ok(level) = TrustLevel::try_from(e.max_trust_level) {
                    caps.insert(e.server_id.clone(), level);
                }
                Agent::Live { caps, human_id }
            }
            (Agent::Live { mut caps, human_id }, EventBody::AgentCapCleared(e)) => {
                caps.remove(&e.server_id);
                Agent::Live { caps, human_id }
            }
            (Agent::Live { caps, .. }, EventBody::AgentConnected(e)) => Agent::Live {
                caps,
                human_id: Some(e.human_id.clone()),
            },
            (Agent::Live { .. }, EventBody::AgentDeleted(_)) => Agent::Deleted,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &AgentCommand) -> Result<Decision<EventBody>, AgentRejected> {
        let (caps, connected) = match (self, command) {
            (Agent::Absent, AgentCommand::Register(registered)) => {
                return Ok(Decision::Append(EventBody::AgentRegistered(
                    registered.clone(),
                )));
            }
            (Agent::Live { .. } | Agent::Deleted, AgentCommand::Register(_)) => {
                return Err(AgentRejected::AlreadyExists);
            }
            (Agent::Absent | Agent::Deleted, _) => return Err(AgentRejected::NotFound),
            (Agent::Live { caps, human_id }, _) => (caps, human_id),
        };
        Ok(match command {
            AgentCommand::Register(_) => return Err(AgentRejected::AlreadyExists),
            AgentCommand::SetCap {
                server_id,
                max_trust_level,
            } => {
                if caps.get(server_id) == Some(max_trust_level) {
                    Decision::Unchanged
                } else {
                    Decision::Append(EventBody::AgentCapSet(AgentCapSet {
                        server_id: server_id.clone(),
                        max_trust_level: (*max_trust_level).into(),
                    }))
                }
            }
            AgentCommand::ClearCap { server_id } => {
                if caps.contains_key(server_id) {
                    Decision::Append(EventBody::AgentCapCleared(AgentCapCleared {
                        server_id: server_id.clone(),
                    }))
                } else {
                    Decision::Unchanged
                }
            }
            AgentCommand::RevokeServer { server_id } => {
                Decision::Append(EventBody::AgentServerRevoked(AgentServerRevoked {
                    server_id: server_id.clone(),
                }))
            }
            AgentCommand::Connect { human_id } => {
                if connected.as_deref() == Some(human_id.as_str()) {
                    Decision::Unchanged
                } else {
                    Decision::Append(EventBody::AgentConnected(AgentConnected {
                        human_id: human_id.clone(),
                    }))
                }
            }
            AgentCommand::Delete => Decision::Append(EventBody::AgentDeleted(AgentDeleted {})),
        })
    }
}

#[cfg(test)]
mod tests;
