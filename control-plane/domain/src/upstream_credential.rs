//! The upstream credential aggregate (`evt.<host>.upstream_credential.<human>-<server>`): a
//! human's tokens at an OAuth-protected upstream, stored sealed (the caller seals; no keys
//! here). Storing replaces the previous tokens; a revoked credential can be stored again
//! (the human signs in to the upstream again).

use portcullis_proto::events::v1::{
    UpstreamCredentialRefreshClaimed, UpstreamCredentialRevoked, UpstreamCredentialStored,
};

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
        /// Until when a refresh claim holds (ms since the Unix epoch; 0: none).
        claimed_until_ms: i64,
    },
    /// Revoked until stored again.
    Revoked,
}

/// What can be done to a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamCredentialCommand {
    /// Stores new tokens (sign-in or refresh).
    Store(UpstreamCredentialStored),
    /// Claims the refresh until `until_ms`: refused while another claim holds at `at_ms`, and
    /// when the credential changed since the claimer read it (another replica refreshed it:
    /// its refresh token is spent).
    ClaimRefresh {
        /// The expiry of the credential the claimer read (its revision).
        seen_expires_at_ms: i64,
        /// Which process claims it.
        by: String,
        /// Until when.
        until_ms: i64,
        /// Now, ms since the Unix epoch.
        at_ms: i64,
    },
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
    /// Another process holds the refresh claim.
    #[error("another process is refreshing this credential")]
    RefreshClaimed,
    /// The credential changed since it was read.
    #[error("the credential was replaced since it was read")]
    Changed,
    /// Nothing live to refresh.
    #[error("no live credential")]
    NotLive,
}

impl Aggregate for UpstreamCredential {
    type Command = UpstreamCredentialCommand;
    type Rejection = UpstreamCredentialRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match event {
            EventBody::UpstreamCredentialStored(e) => UpstreamCredential::Live {
                expires_at_ms: e.expires_at_ms,
                claimed_until_ms: 0,
            },
            EventBody::UpstreamCredentialRefreshClaimed(e) => match self {
                UpstreamCredential::Live { expires_at_ms, .. } => UpstreamCredential::Live {
                    expires_at_ms,
                    claimed_until_ms: e.until_ms,
                },
                other => other,
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
            (
                UpstreamCredential::Live {
                    claimed_until_ms,
                    expires_at_ms,
                },
                UpstreamCredentialCommand::ClaimRefresh {
                    seen_expires_at_ms,
                    by,
                    until_ms,
                    at_ms,
                },
            ) => {
                if expires_at_ms != seen_expires_at_ms {
                    return Err(UpstreamCredentialRejected::Changed);
                }
                if claimed_until_ms > at_ms {
                    return Err(UpstreamCredentialRejected::RefreshClaimed);
                }
                Ok(Decision::Append(
                    EventBody::UpstreamCredentialRefreshClaimed(UpstreamCredentialRefreshClaimed {
                        by: by.clone(),
                        until_ms: *until_ms,
                    }),
                ))
            }
            (_, UpstreamCredentialCommand::ClaimRefresh { .. }) => {
                Err(UpstreamCredentialRejected::NotLive)
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
        assert_eq!(
            state,
            UpstreamCredential::Live {
                expires_at_ms: 10,
                claimed_until_ms: 0
            }
        );
        // One refresh claim at a time; a lapsed claim can be taken over.
        let claim = |at_ms| UpstreamCredentialCommand::ClaimRefresh {
            seen_expires_at_ms: 10,
            by: "cp-1".into(),
            until_ms: 100,
            at_ms,
        };
        let Ok(Decision::Append(claimed)) = state.decide(&claim(0)) else {
            panic!("first claim");
        };
        let claimed_state = state.clone().evolve(&claimed);
        assert_eq!(
            claimed_state.decide(&claim(50)),
            Err(UpstreamCredentialRejected::RefreshClaimed)
        );
        assert!(matches!(
            claimed_state.decide(&claim(100)),
            Ok(Decision::Append(_))
        ));
        // Storing the refreshed tokens ends the claim; a claimer that read the old tokens
        // is refused (their refresh token is spent).
        let mut renewed = stored(b"c");
        renewed.expires_at_ms = 20;
        let refreshed = claimed_state.evolve(&EventBody::UpstreamCredentialStored(renewed));
        assert_eq!(
            refreshed.decide(&claim(1)),
            Err(UpstreamCredentialRejected::Changed)
        );
        assert!(matches!(
            refreshed.decide(&UpstreamCredentialCommand::ClaimRefresh {
                seen_expires_at_ms: 20,
                by: "cp-2".into(),
                until_ms: 100,
                at_ms: 1
            }),
            Ok(Decision::Append(_))
        ));
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
