//! The admin token aggregate (`evt._.admin_token.<token_id>`): an admin's bearer credential
//! and the organizations it acts for.
//!
//! Only the SHA-256 of the secret is ever recorded. The token id is derived from the secret
//! by the caller (so a lookup needs no scan); this aggregate only checks that an id is never
//! bound to two different secrets.

use portcullis_proto::events::v1::{
    AdminTokenIssued, AdminTokenOrganizationAdded, AdminTokenRevoked,
};

use crate::validate::{InvalidText, MAX_NAME_CHARS, validate_description};
use crate::{Aggregate, Decision, EventBody};

/// An admin token's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdminToken {
    /// Never issued.
    #[default]
    Absent,
    /// Usable.
    Live {
        /// SHA-256 of the secret.
        token_sha256: Vec<u8>,
        /// The organizations it acts for, in the order it joined them.
        org_ids: Vec<String>,
    },
    /// Revoked for good.
    Revoked,
}

/// What can be done to an admin token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminTokenCommand {
    /// Issues it; issuing the same secret again changes nothing.
    Issue {
        /// Its id.
        token_id: String,
        /// SHA-256 of the secret (32 bytes).
        token_sha256: Vec<u8>,
        /// The organizations it acts for.
        org_ids: Vec<String>,
        /// The admin's label for it, at most 100 characters.
        label: String,
    },
    /// Lets it act for one more organization; a no-op if it already does.
    AddOrganization {
        /// The organization.
        org_id: String,
    },
    /// Revokes it.
    Revoke,
}

/// Why an admin token command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenRejected {
    /// The id is bound to another secret.
    #[error("admin token id is already taken by another secret")]
    IdTaken,
    /// The hash is not 32 bytes.
    #[error("admin token hash must be 32 bytes")]
    InvalidHash,
    /// The label is too long or has control characters.
    #[error("label: {0}")]
    InvalidLabel(InvalidText),
    /// It was revoked.
    #[error("admin token was revoked")]
    Revoked,
    /// It was never issued.
    #[error("admin token not found")]
    NotFound,
}

impl Aggregate for AdminToken {
    type Command = AdminTokenCommand;
    type Rejection = AdminTokenRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (AdminToken::Absent, EventBody::AdminTokenIssued(e)) => AdminToken::Live {
                token_sha256: e.token_sha256.clone(),
                org_ids: e.org_ids.clone(),
            },
            (
                AdminToken::Live {
                    token_sha256,
                    mut org_ids,
                },
                EventBody::AdminTokenOrganizationAdded(e),
            ) => {
                if !org_ids.contains(&e.org_id) {
                    org_ids.push(e.org_id.clone());
                }
                AdminToken::Live {
                    token_sha256,
                    org_ids,
                }
            }
            (AdminToken::Live { .. }, EventBody::AdminTokenRevoked(_)) => AdminToken::Revoked,
            (state, _) => state,
        }
    }

    fn decide(
        &self,
        command: &AdminTokenCommand,
    ) -> Result<Decision<EventBody>, AdminTokenRejected> {
        match (self, command) {
            (
                AdminToken::Absent,
                AdminTokenCommand::Issue {
                    token_id,
                    token_sha256,
                    org_ids,
                    label,
                },
            ) => {
                if token_sha256.len() != 32 {
                    return Err(AdminTokenRejected::InvalidHash);
                }
                let label = validate_description(label, MAX_NAME_CHARS)
                    .map_err(AdminTokenRejected::InvalidLabel)?;
                let mut unique: Vec<String> = Vec::with_capacity(org_ids.len());
                for org_id in org_ids {
                    if !unique.contains(org_id) {
                        unique.push(org_id.clone());
                    }
                }
                Ok(Decision::Append(EventBody::AdminTokenIssued(
                    AdminTokenIssued {
                        token_id: token_id.clone(),
                        org_ids: unique,
                        token_sha256: token_sha256.clone(),
                        label,
                    },
                )))
            }
            (
                AdminToken::Live { token_sha256, .. },
                AdminTokenCommand::Issue {
                    token_sha256: given,
                    ..
                },
            ) => {
                if token_sha256 == given {
                    Ok(Decision::Unchanged)
                } else {
                    Err(AdminTokenRejected::IdTaken)
                }
            }
            (AdminToken::Live { org_ids, .. }, AdminTokenCommand::AddOrganization { org_id }) => {
                if org_ids.contains(org_id) {
                    Ok(Decision::Unchanged)
                } else {
                    Ok(Decision::Append(EventBody::AdminTokenOrganizationAdded(
                        AdminTokenOrganizationAdded {
                            org_id: org_id.clone(),
                        },
                    )))
                }
            }
            (AdminToken::Live { .. }, AdminTokenCommand::Revoke) => Ok(Decision::Append(
                EventBody::AdminTokenRevoked(AdminTokenRevoked {}),
            )),
            (AdminToken::Revoked, _) => Err(AdminTokenRejected::Revoked),
            (AdminToken::Absent, _) => Err(AdminTokenRejected::NotFound),
        }
    }
}

#[cfg(test)]
mod tests;
