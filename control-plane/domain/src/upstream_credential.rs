//! The upstream credential aggregate (`evt.<host>.upstream_credential.<human>-<server>`): a
//! human's tokens at an OAuth-protected upstream, stored sealed (the caller seals; no keys
//! here). Storing replaces the previous tokens; a revoked credential can be stored again
//! (the human signs in to the upstream again).

use portcullis_proto::events::v1::{UpstreamCredentialRevoked, UpstreamCredentialStored};

use crate::{Aggregate, Decision, EventBody};

/// Longest revocation reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A credential's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UpstreamCredential {
    /// Never stored.
    #[default]
    Absent,
    /// Usable.
    Live {
        /// When the access token expires (ms since the Unix epoch; 0 if not stated).
        expires_at_ms: i64,
    },
    /// Revoked until stored again.
    Revoked,
}

/// What can be done to a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamCredentialCommand {
    /// Stores new tokens (sign-in or refresh).
    Store(UpstreamCredentialStored),
    /// Revokes it; a no-op when there is nothing live.
    Revoke {
        /// Why (truncated to `MAX_REASON_CHARS`).
        reason: String,
    },
}

/// Why a credential command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamCredentialRejected {
    /// The sealed credential is empty.
    #[error("the credential is empty")]
    Empty,
}

impl Aggregate for UpstreamCredential {
    type Command = UpstreamCredentialCommand;
    type Rejection = UpstreamCredentialRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match event {
            EventBody::UpstreamCredentialStored(e) => UpstreamCredential::Live {
                expires_at_ms: e.expires_at_ms,
            },
            EventBody::UpstreamCredentialRevoked(_) => UpstreamCredential::Revoked,
            _ => self,
        }
    }

    fn decide(
        &self,
        command: &UpstreamCredentialCommand,
    ) -> Result<Decision<EventBody>, UpstreamCredentialRejected> {
        match (self, command) {
            (_, UpstreamCredentialCommand::Store(stored)) => {
                if stored.credential_sealed.is_empty() {
                    return Err(UpstreamCredentialRejected::Empty);
                }
                Ok(Decision::Append(EventBody::UpstreamCredentialStored(
                    stored.clone(),
                )))
            }
            (UpstreamCredential::Live { .. }, UpstreamCredentialCommand::Revoke { reason }) => {
                Ok(Decision::Append(EventBody::UpstreamCredentialRevoked(
                    UpstreamCredentialRevoked {
                        reason: reason.chars().take(MAX_REASON_CHARS).collect(),
                    },
                )))
            }
            (_, UpstreamCredentialCommand::Revoke { .. }) => Ok(Decision::Unchanged),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(sealed: &[u8]) -> UpstreamCredentialStored {
        UpstreamCredentialStored {
            human_id: "H1".into(),
            server_id: "S1".into(),
            credential_sealed: sealed.to_vec(),
            expires_at_ms: 10,
        }
    }

    #[test]
    fn tokens_are_stored_replaced_revoked_and_stored_again() {
        let state = UpstreamCredential::default();
        assert_eq!(
            state.decide(&UpstreamCredentialCommand::Revoke { reason: "x".into() }),
            Ok(Decision::Unchanged)
        );
        assert_eq!(
            state.decide(&UpstreamCredentialCommand::Store(stored(b""))),
            Err(UpstreamCredentialRejected::Empty)
        );
        let state = state.evolve(&EventBody::UpstreamCredentialStored(stored(b"a")));
        assert_eq!(state, UpstreamCredential::Live { expires_at_ms: 10 });
        let revoke = state.decide(&UpstreamCredentialCommand::Revoke {
            reason: "r".repeat(500),
        });
        let Ok(Decision::Append(EventBody::UpstreamCredentialRevoked(revoked))) = revoke else {
            panic!("{revoke:?}");
        };
        assert_eq!(revoked.reason.len(), MAX_REASON_CHARS);
        let state = state.evolve(&EventBody::UpstreamCredentialRevoked(revoked));
        assert_eq!(state, UpstreamCredential::Revoked);
        assert!(matches!(
            state.decide(&UpstreamCredentialCommand::Store(stored(b"b"))),
            Ok(Decision::Append(_))
        ));
    }
}
