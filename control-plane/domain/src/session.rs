//! The session aggregate (`evt.<host>.session.<session_id>`): one consent of a human to an
//! agent on one server at a trust level.
//!
//! Started by the consent flow (and by test builders); the control plane revokes sessions
//! when a human, agent or server goes away. A revoked session never comes back.
//!
//! The OAuth authorization server records token use here: the code exchange issues the first
//! refresh token and each refresh rotates it (`SessionRefreshed`, hashes only). A rotated-out
//! token presented again revokes the session (OAuth 2.1 refresh-token rotation).

use std::collections::BTreeSet;

use portcullis_proto::events::v1::{SessionRefreshed, SessionRevoked, SessionStarted};

use crate::{Aggregate, Decision, EventBody};

/// Longest revocation reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// The revocation reason recorded when a rotated-out refresh token comes back.
pub const REFRESH_TOKEN_REUSED: &str = "refresh token reused";

/// A session's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Session {
    /// Never started.
    #[default]
    Absent,
    /// Started and not revoked (it may still have expired by time).
    Open(Box<OpenSession>),
    /// Revoked for good.
    Revoked,
}

/// What an open session remembers: who it is for, its lifetimes, and its refresh tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenSession {
    /// The consenting human.
    pub human_id: String,
    /// The agent's OAuth client id.
    pub client_id: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Last token use (or the start), milliseconds since the Unix epoch.
    pub last_used_ms: i64,
    /// Idle lifetime, seconds.
    pub idle_timeout_seconds: u64,
    /// Absolute lifetime, seconds.
    pub absolute_timeout_seconds: u64,
    /// The resource its tokens are for, once the code was exchanged.
    pub resource: Option<String>,
    /// SHA-256 of the one refresh token that may be used next.
    pub refresh_token_sha256: Option<Vec<u8>>,
    /// SHA-256 of every refresh token rotated out: presenting one again revokes the session.
    pub rotated_refresh_tokens: BTreeSet<Vec<u8>>,
}

impl OpenSession {
    /// Whether the session is past its idle or absolute deadline at `now_ms`.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        let ms = |seconds: u64| {
            i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000)
        };
        let idle = self
            .last_used_ms
            .saturating_add(ms(self.idle_timeout_seconds));
        let absolute = self
            .started_at_ms
            .saturating_add(ms(self.absolute_timeout_seconds));
        now_ms >= idle.min(absolute)
    }
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
    /// Issues the session's first refresh token, at the authorization-code exchange. Once
    /// per session: a session has one authorization code.
    IssueRefreshToken {
        /// The client exchanging the code; must be the session's.
        client_id: String,
        /// SHA-256 of the new refresh token.
        refresh_token_sha256: Vec<u8>,
        /// The resource the tokens are for.
        resource: String,
        /// Now, milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// Rotates a refresh token: the presented one is consumed and a new one issued. A
    /// presented token that was already rotated out revokes the session instead.
    RotateRefreshToken {
        /// The client presenting it, when it said (public clients may not).
        client_id: Option<String>,
        /// SHA-256 of the presented refresh token.
        presented_sha256: Vec<u8>,
        /// SHA-256 of the new refresh token.
        refresh_token_sha256: Vec<u8>,
        /// The resource the client asks for, when it says; must be the session's.
        resource: Option<String>,
        /// Now, milliseconds since the Unix epoch.
        at_ms: i64,
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
    /// Revoked: no more tokens.
    #[error("session is revoked")]
    Revoked,
    /// Past its idle or absolute deadline.
    #[error("session has expired")]
    Expired,
    /// The client is not the session's.
    #[error("session belongs to another client")]
    WrongClient,
    /// The code was already exchanged (a refresh token exists).
    #[error("session already has a refresh token")]
    RefreshTokenAlreadyIssued,
    /// The resource asked for is not the one the session's tokens are for.
    #[error("resource differs from the one authorized")]
    WrongResource,
    /// The presented refresh token is not the session's current one (nor a rotated one).
    #[error("refresh token is not valid for this session")]
    UnknownRefreshToken,
}

impl Aggregate for Session {
    type Command = SessionCommand;
    type Rejection = SessionRejected;

    fn evolve(self, event: &EventBody) -> Self {
        match (self, event) {
            (Session::Absent, EventBody::SessionStarted(e)) => {
                Session::Open(Box::new(OpenSession {
                    human_id: e.human_id.clone(),
                    client_id: e.client_id.clone(),
                    started_at_ms: e.started_at_ms,
                    last_used_ms: e.started_at_ms,
                    idle_timeout_seconds: e.idle_timeout_seconds,
                    absolute_timeout_seconds: e.absolute_timeout_seconds,
                    ..OpenSession::default()
                }))
            }
            (Session::Open(mut open), EventBody::SessionRefreshed(e)) => {
                open.last_used_ms = open.last_used_ms.max(e.at_ms);
                if !e.rotated_refresh_token_sha256.is_empty() {
                    open.rotated_refresh_tokens
                        .insert(e.rotated_refresh_token_sha256.clone());
                }
                if !e.refresh_token_sha256.is_empty() {
                    open.refresh_token_sha256 = Some(e.refresh_token_sha256.clone());
                }
                if !e.resource.is_empty() {
                    open.resource = Some(e.resource.clone());
                }
                Session::Open(open)
            }
            (Session::Open(_), EventBody::SessionRevoked(_)) => Session::Revoked,
            (state, _) => state,
        }
    }

    fn decide(&self, command: &SessionCommand) -> Result<Decision<EventBody>, SessionRejected> {
        match (self, command) {
            (Session::Absent, SessionCommand::Start(started)) => {
                Ok(Decision::Append(EventBody::SessionStarted(started.clone())))
            }
            (Session::Open(_) | Session::Revoked, SessionCommand::Start(_)) => {
                Err(SessionRejected::AlreadyExists)
            }
            (Session::Open(_), SessionCommand::Revoke { reason }) => Ok(Decision::Append(
                EventBody::SessionRevoked(SessionRevoked {
                    reason: reason.chars().take(MAX_REASON_CHARS).collect(),
                }),
            )),
            (Session::Revoked, SessionCommand::Revoke { .. }) => Ok(Decision::Unchanged),
            (Session::Absent, _) => Err(SessionRejected::NotFound),
            (Session::Revoked, _) => Err(SessionRejected::Revoked),
            (
                Session::Open(open),
                SessionCommand::IssueRefreshToken {
                    client_id,
                    refresh_token_sha256,
                    resource,
                    at_ms,
                },
            ) => {
                if &open.client_id != client_id {
                    return Err(SessionRejected::WrongClient);
                }
                if open.refresh_token_sha256.is_some() {
                    return Err(SessionRejected::RefreshTokenAlreadyIssued);
                }
                if open.is_expired_at(*at_ms) {
                    return Err(SessionRejected::Expired);
                }
                Ok(Decision::Append(EventBody::SessionRefreshed(
                    SessionRefreshed {
                        at_ms: *at_ms,
                        refresh_token_sha256: refresh_token_sha256.clone(),
                        rotated_refresh_token_sha256: Vec::new(),
                        resource: resource.clone(),
                    },
                )))
            }
            (
                Session::Open(open),
                SessionCommand::RotateRefreshToken {
                    client_id,
                    presented_sha256,
                    refresh_token_sha256,
                    resource,
                    at_ms,
                },
            ) => {
                // Reuse first: a rotated-out token is evidence of theft whoever presents it.
                if open.rotated_refresh_tokens.contains(presented_sha256) {
                    return Ok(Decision::Append(EventBody::SessionRevoked(
                        SessionRevoked {
                            reason: REFRESH_TOKEN_REUSED.to_owned(),
                        },
                    )));
                }
                if open.refresh_token_sha256.as_ref() != Some(presented_sha256) {
                    return Err(SessionRejected::UnknownRefreshToken);
                }
                if client_id.as_ref().is_some_and(|c| c != &open.client_id) {
                    return Err(SessionRejected::WrongClient);
                }
                if resource
                    .as_ref()
                    .is_some_and(|r| Some(r) != open.resource.as_ref())
                {
                    return Err(SessionRejected::WrongResource);
                }
                if open.is_expired_at(*at_ms) {
                    return Err(SessionRejected::Expired);
                }
                Ok(Decision::Append(EventBody::SessionRefreshed(
                    SessionRefreshed {
                        at_ms: *at_ms,
                        refresh_token_sha256: refresh_token_sha256.clone(),
                        rotated_refresh_token_sha256: presented_sha256.clone(),
                        resource: open.resource.clone().unwrap_or_default(),
                    },
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests;
