//! The session aggregate (`evt.<host>.session.<session_id>`): one consent of a human to an
//! agent on one server at a trust level.
//!
//! Started by the consent flow (and by test builders); the control plane revokes sessions
//! when a human, agent or server goes away. A revoked session never comes back.

use portcullis_proto::events::v1::{SessionRevoked, SessionStarted};

use crate::{Aggregate, Decision, EventBody};

/// Longest revocation reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A session's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Session {
    /// Never started.
    #[default]
    Absent,
    /// Started and not revoked (it may still have expired by time).
    Open,
    /// Revoked for good.
    Revoked,
}

/// What can be done to a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommand {
    /// Starts it (the consent flow; tests).
    Start(SessionStarted),
    /// Revokes it; a no-op if already revoked.
    Revoke {
        /// Why, for the audit trail (truncated to `MAX_REASON_CHARS`).
        reason: String,
    },
}

/// Why a session command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionRejected {
    /// The id is taken.
    #[error("session id is already taken")]
    AlreadyExists,
    /// Never started.
    #[error("session not found")]
    NotFound,
}

impl Aggregate for Session {
    type Command = SessionCommand;
    type Rejection = SessionRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Session::Absent, EventBody::SessionStarted(_)) => Session::Open,
            (Session::Open, EventBody::SessionRevoked(_)) => Session::Revoked,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &SessionCommand) -> Result<Decision<EventBody>, SessionRejected> {
        match (self, command) {
            (Session::Absent, SessionCommand::Start(started)) => {
                Ok(Decision::Append(EventBody::SessionStarted(started.clone())))
            }
            (Session::Open | Session::Revoked, SessionCommand::Start(_)) => {
                Err(SessionRejected::AlreadyExists)
            }
            (Session::Open, SessionCommand::Revoke { reason }) => Ok(Decision::Append(
                EventBody::SessionRevoked(SessionRevoked {
                    reason: reason.chars().take(MAX_REASON_CHARS).collect(),
                }),
            )),
            (Session::Revoked, SessionCommand::Revoke { .. }) => Ok(Decision::Unchanged),
            (Session::Absent, SessionCommand::Revoke { .. }) => Err(SessionRejected::NotFound),
        }
    }
}

#[cfg(test)]
mod tests;
