//! The writes and reads of the host's OAuth authorization server (`portcullis-oauth`):
//! dynamic client registration (an agent with a generated client id), client lookup by
//! client id, the host's public face (keys, server keys), and refresh-token issue, rotation
//! and revocation on the session aggregate.
//!
//! These operations have no admin principal: OAuth clients are anonymous until a human signs
//! in. Tenant isolation is by host: the HTTP layer resolves the host from the `Host` header,
//! and every read and write here stays under that host's keys and subjects.

use portcullis_domain::agent::{Agent, AgentCommand};
use portcullis_domain::session::{Session, SessionCommand, SessionRejected};
use portcullis_projector::models::{self, PublicSigningKey};
use portcullis_projector::{ModelKind, client_id_sha256_hex};
use portcullis_proto::events::v1::AgentRegistered;
use portcullis_proto::subjects;

use super::idempotency::{IdempotencyKey, Writes};
use super::{Control, ControlError, Principal, check_id, infra, new_id, on_reject, subject};
use crate::{Context, ExecuteError};

/// The actor name in command ids of the authorization server's writes.
const OAUTH_WRITER: &str = "oauth";

/// A registered OAuth client (an agent) as the authorization server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClientView {
    /// The agent's id.
    pub agent_id: String,
    /// Its host.
    pub host_id: String,
    /// The OAuth client id.
    pub client_id: String,
    /// Display name (client-supplied: untrusted).
    pub name: String,
    /// The client's URI (client-supplied: untrusted).
    pub uri: String,
    /// The kind of client.
    pub agent_type: String,
    /// Registered redirect URIs, already validated.
    pub redirect_uris: Vec<String>,
    /// The human who connected it, once known.
    pub human_id: Option<String>,
}

/// What the authorization server needs of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthHostView {
    /// The host.
    pub host_id: String,
    /// Whether it is its organization's default host (its public URL may differ).
    pub is_default: bool,
    /// Its public signing keys, oldest first.
    pub signing_keys: Vec<PublicSigningKey>,
    /// The keys of its servers (each has the MCP resource `<base>/mcp/<key>`).
    pub server_keys: Vec<String>,
}

/// A client registration, validated by the caller (`portcullis-oauth::registration`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewOAuthClient {
    /// Display name.
    pub name: String,
    /// The client's URI, or empty.
    pub uri: String,
    /// The kind of client.
    pub agent_type: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// The session a token grant was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSession {
    /// The session.
    pub session_id: String,
    /// The consenting human (the token's `sub`).
    pub human_id: String,
    /// The client (the token's `client_id`).
    pub client_id: String,
    /// The resource the tokens are for (the token's `aud`).
    pub resource: String,
}

/// The outcome of presenting a refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Rotated: the presented token is spent, the new one recorded.
    Rotated(TokenSession),
    /// The presented token had been rotated out before: the session is now revoked.
    Reused,
}

impl Control {
    /// The host as the authorization server sees it; `NotFound` when absent or deleted.
    pub async fn oauth_host(&self, host_id: &str) -> Result<OAuthHostView, ControlError> {
        check_id("host", host_id)?;
        let host = self
            .live::<models::Host>(ModelKind::Host, &[host_id])
            .await?
            .ok_or_else(|| ControlError::not_found("host", host_id))?;
        let server_keys = self
            .list::<models::ServerKeyOwner>(ModelKind::ServerKey, &[host_id])
            .await?
            .into_iter()
            .filter_map(|(rest, _)| match rest.as_slice() {
                [key] => Some(key.clone()),
                _ => None,
            })
            .collect();
        Ok(OAuthHostView {
            host_id: host_id.to_owned(),
            is_default: host.is_default,
            signing_keys: host.signing_keys,
            server_keys,
        })
    }

    /// Registers an OAuth client (RFC 7591) in the host as an agent with a new, generated
    /// client id; returns it once the read models show it.
    #[tracing::instrument(name = "control.oauth.register_client", skip_all, fields(%host_id))]
    pub async fn register_client(
        &self,
        context: &Context,
        host_id: &str,
        client: NewOAuthClient,
    ) -> Result<OAuthClientView, ControlError> {
        // A ULID is unique, unguessable enough for a public identifier, and one key token.
        let client_id = new_id().to_ascii_lowercase();
        let mut writes = Writes::new(OAUTH_WRITER, None);
        self.record_client(context, &mut writes, host_id, &new_id(), &client_id, client)
            .await
    }

    /// Pre-registers an OAuth client for an admin: an agent of the host with a generated
    /// client id and the admin's redirect URIs (validated by the caller), for clients
    /// configured with a fixed client id instead of registering themselves. A retry with the
    /// same idempotency key returns the same client.
    #[tracing::instrument(name = "control.agent.preregister", skip_all, fields(%host_id))]
    pub async fn preregister_client(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        client: NewOAuthClient,
    ) -> Result<OAuthClientView, ControlError> {
        self.host_for(principal, host_id).await?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        // Both ids come from the request's seed, so a retry names the same agent and its
        // registration command is found already recorded.
        let seed = writes.seed(&["agent.preregister", host_id]);
        let mut agent_bytes = [0u8; 16];
        agent_bytes.copy_from_slice(&seed[..16]);
        let mut client_bytes = [0u8; 16];
        client_bytes.copy_from_slice(&seed[16..]);
        let agent_id = ulid::Ulid::from_bytes(agent_bytes).to_string();
        let client_id = ulid::Ulid::from_bytes(client_bytes)
            .to_string()
            .to_ascii_lowercase();
        self.record_client(context, &mut writes, host_id, &agent_id, &client_id, client)
            .await
    }

    /// Records a client known by its metadata document (`client_id` is the document's URL)
    /// as an agent of the host, or updates nothing if it is already one; returns it.
    #[tracing::instrument(name = "control.oauth.metadata_client", skip_all, fields(%host_id))]
    pub async fn ensure_metadata_client(
        &self,
        context: &Context,
        host_id: &str,
        client_id: &str,
        client: NewOAuthClient,
    ) -> Result<OAuthClientView, ControlError> {
        if let Some(existing) = self.oauth_client(host_id, client_id).await? {
            return Ok(existing);
        }
        let mut writes = Writes::new(OAUTH_WRITER, None);
        self.record_client(context, &mut writes, host_id, &new_id(), client_id, client)
            .await
    }

    /// Records a new agent of the host holding `client_id`; returns it once the read models
    /// show it.
    async fn record_client(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        agent_id: &str,
        client_id: &str,
        client: NewOAuthClient,
    ) -> Result<OAuthClientView, ControlError> {
        self.oauth_host(host_id).await?;
        let agent_id = agent_id.to_owned();
        let registered = AgentRegistered {
            agent_id: agent_id.clone(),
            client_id: client_id.to_owned(),
            name: client.name.clone(),
            uri: client.uri.clone(),
            agent_type: client.agent_type.clone(),
            redirect_uris: client.redirect_uris.clone(),
            human_id: None,
        };
        let agent_subject = subject(subjects::agent(host_id, &agent_id))?;
        on_reject(
            self.run::<Agent>(
                context,
                writes,
                "oauth.register",
                &agent_subject,
                &AgentCommand::Register(registered),
            )
            .await?,
            |rejected| ControlError::conflict("agent", &agent_id, rejected),
        )?;
        self.settle(writes).await?;
        Ok(OAuthClientView {
            agent_id,
            host_id: host_id.to_owned(),
            client_id: client_id.to_owned(),
            name: client.name,
            uri: client.uri,
            agent_type: client.agent_type,
            redirect_uris: client.redirect_uris,
            human_id: None,
        })
    }

    /// The live client with `client_id` in the host, if any.
    pub async fn oauth_client(
        &self,
        host_id: &str,
        client_id: &str,
    ) -> Result<Option<OAuthClientView>, ControlError> {
        check_id("host", host_id)?;
        let hash = client_id_sha256_hex(client_id);
        let Some(owner) = self
            .live::<models::AgentClientOwner>(ModelKind::AgentClient, &[host_id, &hash])
            .await?
        else {
            return Ok(None);
        };
        if check_id("agent", &owner.agent_id).is_err() {
            return Ok(None);
        }
        let agent = self
            .live::<models::Agent>(ModelKind::Agent, &[host_id, &owner.agent_id])
            .await?;
        // The hash could collide only by accident; the id itself must match.
        Ok(agent
            .filter(|agent| agent.client_id == client_id)
            .map(|agent| OAuthClientView {
                agent_id: owner.agent_id,
                host_id: host_id.to_owned(),
                client_id: agent.client_id,
                name: agent.name,
                uri: agent.uri,
                agent_type: agent.agent_type,
                redirect_uris: agent.redirect_uris,
                human_id: agent.human_id,
            }))
    }

    /// Records the first refresh token of a session at the authorization-code exchange.
    /// The inner error is the session's refusal (revoked, expired, other client, code
    /// already exchanged): an `invalid_grant` to the client.
    #[tracing::instrument(name = "control.oauth.issue_refresh_token", skip_all, fields(%host_id, %session_id))]
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_refresh_token(
        &self,
        context: &Context,
        host_id: &str,
        session_id: &str,
        client_id: &str,
        refresh_token_sha256: [u8; 32],
        resource: &str,
    ) -> Result<Result<TokenSession, SessionRejected>, ControlError> {
        let command = SessionCommand::IssueRefreshToken {
            client_id: client_id.to_owned(),
            refresh_token_sha256: refresh_token_sha256.to_vec(),
            resource: resource.to_owned(),
            at_ms: context.now_ms,
        };
        match self
            .session_command(context, host_id, session_id, "oauth.code", &command)
            .await?
        {
            Ok(Session::Open(open)) => Ok(Ok(TokenSession {
                session_id: session_id.to_owned(),
                human_id: open.human_id,
                client_id: open.client_id,
                resource: open.resource.unwrap_or_default(),
            })),
            Ok(_) => Ok(Err(SessionRejected::Revoked)),
            Err(rejected) => Ok(Err(rejected)),
        }
    }

    /// Rotates a refresh token of a session: the presented one (by hash) is spent and
    /// `refresh_token_sha256` becomes current. A token rotated out before revokes the
    /// session (`RefreshOutcome::Reused`). A `resource` the client names must be the
    /// session's. The inner error is the session's refusal.
    #[tracing::instrument(name = "control.oauth.rotate_refresh_token", skip_all, fields(%host_id, %session_id))]
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_refresh_token(
        &self,
        context: &Context,
        host_id: &str,
        session_id: &str,
        client_id: Option<&str>,
        resource: Option<&str>,
        presented_sha256: [u8; 32],
        refresh_token_sha256: [u8; 32],
    ) -> Result<Result<RefreshOutcome, SessionRejected>, ControlError> {
        // An admin's revocation of the agent on the session's server ends the session for
        // good: record it, so the client gets `invalid_grant` and runs consent again instead
        // of holding tokens the data plane refuses.
        if let Some(reason) = self.revoked_by_admin(host_id, session_id).await? {
            self.revoke_oauth_session(context, host_id, session_id, reason)
                .await?;
            return Ok(Err(SessionRejected::Revoked));
        }
        let command = SessionCommand::RotateRefreshToken {
            client_id: client_id.map(str::to_owned),
            presented_sha256: presented_sha256.to_vec(),
            refresh_token_sha256: refresh_token_sha256.to_vec(),
            resource: resource.map(str::to_owned),
            at_ms: context.now_ms,
        };
        match self
            .session_command(context, host_id, session_id, "oauth.refresh", &command)
            .await?
        {
            Ok(Session::Open(open)) => Ok(Ok(RefreshOutcome::Rotated(TokenSession {
                session_id: session_id.to_owned(),
                human_id: open.human_id,
                client_id: open.client_id,
                resource: open.resource.unwrap_or_default(),
            }))),
            Ok(_) => {
                tracing::warn!(%host_id, %session_id, "Refresh token reused; session revoked.");
                Ok(Ok(RefreshOutcome::Reused))
            }
            Err(rejected) => Ok(Err(rejected)),
        }
    }

    /// Why the session's tokens must not be renewed although the session aggregate is open:
    /// the agent was deleted or revoked on the session's server after it started.
    async fn revoked_by_admin(
        &self,
        host_id: &str,
        session_id: &str,
    ) -> Result<Option<&'static str>, ControlError> {
        if check_id("session", session_id).is_err() {
            return Ok(None);
        }
        let Some(session) = self
            .live::<models::Session>(ModelKind::Session, &[host_id, session_id])
            .await?
        else {
            return Ok(None);
        };
        if check_id("agent", &session.agent_id).is_err() {
            return Ok(Some("agent deleted"));
        }
        Ok(
            match self
                .live::<models::Agent>(ModelKind::Agent, &[host_id, &session.agent_id])
                .await?
            {
                None => Some("agent deleted"),
                Some(agent)
                    if !agent.session_survives_revocations(
                        &session.server_id,
                        session.started_sequence,
                    ) =>
                {
                    Some("agent revoked on this server by an admin")
                }
                Some(_) => None,
            },
        )
    }

    /// Revokes one session (e.g. its authorization code came back a second time); a
    /// session already revoked or unknown is left as it is.
    #[tracing::instrument(name = "control.oauth.revoke_session", skip_all, fields(%host_id, %session_id))]
    pub async fn revoke_oauth_session(
        &self,
        context: &Context,
        host_id: &str,
        session_id: &str,
        reason: &str,
    ) -> Result<(), ControlError> {
        let command = SessionCommand::Revoke {
            reason: reason.to_owned(),
        };
        match self
            .session_command(context, host_id, session_id, "oauth.revoke", &command)
            .await?
        {
            Ok(_) | Err(SessionRejected::NotFound) => Ok(()),
            Err(rejected) => Err(ControlError::unavailable(rejected)),
        }
    }

    /// Runs one session command and waits for the read models; the session's state after it,
    /// or its refusal.
    async fn session_command(
        &self,
        context: &Context,
        host_id: &str,
        session_id: &str,
        step: &str,
        command: &SessionCommand,
    ) -> Result<Result<Session, SessionRejected>, ControlError> {
        check_id("host", host_id)?;
        if check_id("session", session_id).is_err() {
            return Ok(Err(SessionRejected::NotFound));
        }
        let session_subject = subject(subjects::session(host_id, session_id))?;
        let mut writes = Writes::new(OAUTH_WRITER, None);
        match self
            .run::<Session>(context, &mut writes, step, &session_subject, command)
            .await?
        {
            Ok(done) => {
                self.settle(&writes).await?;
                Ok(Ok(done.state))
            }
            Err(ExecuteError::Rejected(rejected)) => Ok(Err(rejected)),
            Err(other) => Err(infra(other)),
        }
    }
}
