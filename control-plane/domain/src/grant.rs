//! The grant aggregate (`evt.<host>.grant.<human_id>-<server_id>`): the ceiling a human may
//! delegate to agents on one server. No grant, no access.
//!
//! Putting a grant issues it or changes its level; putting the same level again changes
//! nothing. A revoked grant may be issued again (a new `GrantIssued`, so sessions from before
//! the revocation stay dead: the read model records the issuing sequence).

use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1::{GrantChanged, GrantIssued, GrantRevoked};

use crate::{Aggregate, Decision, EventBody};

/// A grant's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Grant {
    /// Never issued, or revoked.
    #[default]
    Absent,
    /// In force.
    Live {
        /// The ceiling.
        max_trust_level: TrustLevel,
    },
}

/// What can be done to a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantCommand {
    /// Issues it, or changes its level.
    Put {
        /// The human (as in the subject).
        human_id: String,
        /// The server (as in the subject).
        server_id: String,
        /// The ceiling.
        max_trust_level: TrustLevel,
    },
    /// Revokes it.
    Revoke,
}

/// Why a grant command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantRejected {
    /// Nothing to revoke.
    #[error("grant not found")]
    NotFound,
}

impl Aggregate for Grant {
    type Command = GrantCommand;
    type Rejection = GrantRejected;

    fn evolve(self, event: &EventBody) -> Self {
        let level = |value: i32| TrustLevel::try_from(value).ok();
        match event {
            EventBody::GrantIssued(e) => match level(e.max_trust_level) {
                Some(max_trust_level) => Grant::Live { max_trust_level },
                None => self,
            },
            EventBody::GrantChanged(e) => match (self, level(e.max_trust_level)) {
                (Grant::Live { .. }, Some(max_trust_level)) => Grant::Live { max_trust_level },
                (state, _) => state,
            },
            EventBody::GrantRevoked(_) => Grant::Absent,
            _ => self,
        }
    }

    fn decide(&self, command: &GrantCommand) -> Result<Decision<EventBody>, GrantRejected> {
        match (self, command) {
            (
                Grant::Absent,
                GrantCommand::Put {
                    human_id,
                    server_id,
                    max_trust_level,
                },
            ) => Ok(Decision::Append(EventBody::GrantIssued(GrantIssued {
                human_id: human_id.clone(),
                server_id: server_id.clone(),
                max_trust_level: (*max_trust_level).into(),
            }))),
            (
                Grant::Live { max_trust_level },
                GrantCommand::Put {
                    max_trust_level: wanted,
                    ..
                },
            ) => {
                if max_trust_level == wanted {
                    Ok(Decision::Unchanged)
                } else {
                    Ok(Decision::Append(EventBody::GrantChanged(GrantChanged {
                        max_trust_level: (*wanted).into(),
                    })))
                }
            }
            (Grant::Live { .. }, GrantCommand::Revoke) => {
                Ok(Decision::Append(EventBody::GrantRevoked(GrantRevoked {})))
            }
            (Grant::Absent, GrantCommand::Revoke) => Err(GrantRejected::NotFound),
        }
    }
}

#[cfg(test)]
mod tests;
