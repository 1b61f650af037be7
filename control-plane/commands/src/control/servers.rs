//! Servers and their tools: import, list, get, change details (name, description, upstream
//! timeout), delete, tool add / override / remove, and refresh.
//!
//! Import reserves the key first (`server_key`), then records the server; delete records the
//! deletion first, then revokes every grant and session on the server and releases the key.
//! Each step is idempotent under the request's command ids, so a retry finishes a workflow
//! that crashed halfway.

use std::collections::BTreeMap;

use portcullis_domain::EventBody;
use portcullis_domain::grant::{Grant, GrantCommand, GrantRejected};
use portcullis_domain::reservation::{ReservationCommand, ReservationRejected, ServerKey};
use portcullis_domain::server::{
    OverrideRejected, Server, ServerCommand, ServerRejected, TimeoutChange, ToolOverride,
    admin_override, apply_overrides, check_tools,
};
use portcullis_domain::session::{Session, SessionCommand};
use portcullis_domain::validate::{
    MAX_DESCRIPTION_CHARS, derive_server_key, numbered_server_key, validate_description,
    validate_name, validate_server_key, validate_server_url, validate_upstream_timeout,
};
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1 as pb;
use portcullis_proto::subjects;

use super::idempotency::{IdempotencyKey, Writes};
use super::views::{RefreshReport, ServerView};
use super::{
    Control, ControlError, Principal, check_id, infra, load_or_unavailable, new_id, now_ms,
    on_reject, subject,
};
use crate::{Context, ExecuteError};

/// How many numbered alternatives of a derived key are tried (`key-2` … `key-20`).
const MAX_DERIVED_KEYS: u32 = 20;

/// How old a key claim whose server was never imported must be before another import may
/// take the key over (the claiming request crashed and was never retried).
const STALE_CLAIM_MS: i64 = 10 * 60 * 1000;

/// Upstream OAuth client settings as an admin gives them; the secret is sealed at once.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamOAuthInput {
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret (never stored or logged in plaintext).
    pub client_secret: String,
}

impl std::fmt::Debug for UpstreamOAuthInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOAuthInput")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What discovery found at the upstream URL (done by the discovery component before import).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiscoveredServer {
    /// The upstream's own name, if it gave one.
    pub name: Option<String>,
    /// The upstream's own description, if any.
    pub description: Option<String>,
    /// Its tools, classified (trust level and classification set) and enabled.
    pub tools: Vec<pb::Tool>,
}

/// A server to import.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportServer {
    /// The upstream MCP URL.
    pub url: String,
    /// URL-safe key, unique in the host; derived from the name (else the URL's host) when
    /// `None`, numbered (`-2`, `-3`, …) if taken.
    pub key: Option<String>,
    /// Display name; the upstream's, else the key, when `None`.
    pub name: Option<String>,
    /// Description; the upstream's, else empty, when `None`.
    pub description: Option<String>,
    /// The admin's choices per discovered tool (reported as `tools[i]`).
    pub tool_overrides: Vec<ToolOverride>,
    /// Upstream OAuth client, if the upstream needs one.
    pub oauth: Option<UpstreamOAuthInput>,
    /// How long the data plane waits for the upstream's response head, in seconds (1 to
    /// 3600); the data plane's global default when `None`.
    pub timeout_seconds: Option<u64>,
    /// What discovery found.
    pub discovered: DiscoveredServer,
}

/// A change to a server's details; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerDetailsPatch {
    /// New display name (1 to 100 characters, trimmed).
    pub name: Option<String>,
    /// New description (at most 2000 characters, trimmed).
    pub description: Option<String>,
    /// New upstream timeout, seconds (1 to 3600).
    pub timeout_seconds: Option<u64>,
    /// Back to the data plane's default upstream timeout; excludes `timeout_seconds`.
    pub clear_timeout: bool,
}

impl ServerDetailsPatch {
    fn into_command(self) -> Result<ServerCommand, ControlError> {
        let timeout = match (self.timeout_seconds, self.clear_timeout) {
            (Some(_), true) => {
                return Err(ControlError::invalid(
                    "clear_timeout",
                    "give either timeout_seconds or clear_timeout, not both",
                ));
            }
            (Some(seconds), false) => Some(TimeoutChange::Set(seconds)),
            (None, true) => Some(TimeoutChange::Clear),
            (None, false) => None,
        };
        Ok(ServerCommand::ChangeDetails {
            name: self.name,
            description: self.description,
            timeout,
        })
    }
}

/// A tool an admin adds by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTool {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// SHA-256 of its canonical input schema (32 bytes), or empty.
    pub input_schema_sha256: Vec<u8>,
    /// Its trust level.
    pub trust_level: TrustLevel,
    /// How the level was decided; `None` means the admin decided it (an override).
    pub classification: Option<pb::Classification>,
}

/// The field an import's refusal is about.
pub(super) fn server_rejected(server_id: &str, rejected: ServerRejected) -> ControlError {
    match &rejected {
        ServerRejected::InvalidKey(e) => ControlError::invalid("key", e),
        ServerRejected::InvalidUrl(e) => ControlError::invalid("url", e),
        ServerRejected::InvalidName(e) => ControlError::invalid("name", e),
        ServerRejected::InvalidDescription(e) => ControlError::invalid("description", e),
        ServerRejected::InvalidTimeout(e) => ControlError::invalid("timeout_seconds", e),
        ServerRejected::InvalidTool { problem, .. } => {
            ControlError::invalid(problem.field(), problem)
        }
        ServerRejected::DuplicateTool(_) | ServerRejected::TooManyTools => {
            ControlError::invalid("tools", rejected)
        }
        ServerRejected::ToolExists(name) => ControlError::conflict("tool", name, &rejected),
        ServerRejected::UnknownTool(name) => ControlError::not_found("tool", name),
        ServerRejected::NotFound => ControlError::not_found("server", server_id),
        ServerRejected::AlreadyExists => ControlError::conflict("server", server_id, rejected),
    }
}

/// Errors of a list of tools, named `<list>[i].<field>`.
fn tools_rejected(list: &str, rejected: ServerRejected) -> ControlError {
    match &rejected {
        ServerRejected::InvalidTool { index, problem } => {
            ControlError::invalid(format!("{list}[{index}].{}", problem.field()), problem)
        }
        _ => ControlError::invalid(list, rejected),
    }
}

/// Checks an upstream OAuth client's fields.
fn check_oauth(oauth: &UpstreamOAuthInput) -> Result<(), ControlError> {
    let client_id = oauth.client_id.trim();
    if client_id.is_empty() || client_id.len() > 512 || client_id.chars().any(char::is_control) {
        return Err(ControlError::invalid(
            "oauth.client_id",
            "must be 1 to 512 characters without control characters",
        ));
    }
    if oauth.client_secret.is_empty() || oauth.client_secret.len() > 4096 {
        return Err(ControlError::invalid(
            "oauth.client_secret",
            "must be 1 to 4096 bytes",
        ));
    }
    Ok(())
}

/// Where a server key claim stands.
pub(super) enum Claim {
    /// This request holds it for this server id.
    Ours(String),
    /// Another server holds it.
    Taken,
}

impl Control {
    /// Imports a server: checks everything, reserves its key, records it with its tools.
    #[tracing::instrument(name = "control.server.import", skip_all, fields(%host_id))]
    pub async fn import_server(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        request: ImportServer,
    ) -> Result<ServerView, ControlError> {
        self.host_for(principal, host_id).await?;

        // Everything is checked before anything is written, so the workflow below can only
        // fail for infrastructure reasons or a taken key.
        let url = validate_server_url(&request.url).map_err(|e| ControlError::invalid("url", e))?;
        if let Some(key) = &request.key {
            validate_server_key(key).map_err(|e| ControlError::invalid("key", e))?;
        }
        let name = match &request.name {
            Some(name) => Some(validate_name(name).map_err(|e| ControlError::invalid("name", e))?),
            None => request
                .discovered
                .name
                .as_deref()
                .and_then(|n| validate_name(n).ok()),
        };
        let description = match &request.description {
            Some(d) => validate_description(d, MAX_DESCRIPTION_CHARS)
                .map_err(|e| ControlError::invalid("description", e))?,
            None => request
                .discovered
                .description
                .as_deref()
                .and_then(|d| validate_description(d, MAX_DESCRIPTION_CHARS).ok())
                .unwrap_or_default(),
        };
        let discovered = check_tools(&request.discovered.tools)
            .map_err(|e| tools_rejected("discovered.tools", e))?;
        let tools = apply_overrides(discovered, &request.tool_overrides).map_err(|e| match e {
            OverrideRejected::UnknownTool { index, .. }
            | OverrideRejected::Duplicate { index, .. } => {
                ControlError::invalid(format!("tools[{index}].name"), e)
            }
        })?;
        if let Some(oauth) = &request.oauth {
            check_oauth(oauth)?;
        }
        if let Some(seconds) = request.timeout_seconds {
            validate_upstream_timeout(seconds)
                .map_err(|e| ControlError::invalid("timeout_seconds", e))?;
        }
        let candidates: Vec<String> = match &request.key {
            Some(key) => vec![key.clone()],
            None => {
                let base = derive_server_key(name.as_deref(), &url);
                std::iter::once(base.clone())
                    .chain((2..=MAX_DERIVED_KEYS).map(|n| numbered_server_key(&base, n)))
                    .collect()
            }
        };

        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let mut claimed = None;
        for key in &candidates {
            if let Claim::Ours(server_id) = self
                .claim_server_key(context, &mut writes, host_id, key)
                .await?
            {
                claimed = Some((key.clone(), server_id));
                break;
            }
        }
        let Some((key, server_id)) = claimed else {
            let key = candidates.first().map_or("", String::as_str);
            return Err(ControlError::conflict(
                "server key",
                key,
                "already used by another server in this host",
            ));
        };

        let upstream_auth = match &request.oauth {
            None => None,
            Some(oauth) => match self.seal_oauth(host_id, &server_id, oauth) {
                Ok(auth) => Some(auth),
                Err(error) => {
                    // Nothing was imported under the claim: give the key back.
                    self.release_server_key(context, &mut writes, host_id, &key, &server_id)
                        .await?;
                    return Err(error);
                }
            },
        };
        let server_subject = subject(subjects::server(host_id, &server_id))?;
        let import = ServerCommand::Import {
            server_id: server_id.clone(),
            key: key.clone(),
            url,
            name: name.unwrap_or_else(|| key.clone()),
            description,
            upstream_auth,
            timeout_seconds: request.timeout_seconds,
            tools,
        };
        match self
            .run::<Server>(
                context,
                &mut writes,
                "server.import",
                &server_subject,
                &import,
            )
            .await?
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(rejected)) => {
                // Refused outright, so the server will never exist: the key goes back.
                self.release_server_key(context, &mut writes, host_id, &key, &server_id)
                    .await?;
                return Err(server_rejected(&server_id, rejected));
            }
            // Unknown whether it was recorded: keep the claim; a retry finishes the import.
            Err(other) => return Err(infra(other)),
        }
        self.settle(&writes).await?;
        self.get_server(principal, host_id, &server_id).await
    }

    /// Claims `key` for a new server id; takes over a claim whose server is gone.
    pub(super) async fn claim_server_key(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        key: &str,
    ) -> Result<Claim, ControlError> {
        let key_subject = subject(subjects::server_key(host_id, key))?;
        let step = "server.claim";
        for _ in 0..2 {
            let fresh = new_id();
            let claim = ReservationCommand::Claim {
                owner: fresh.clone(),
            };
            let holder = match self
                .run::<ServerKey>(context, writes, step, &key_subject, &claim)
                .await?
            {
                Ok(done) => {
                    let mine = if done.appended {
                        fresh
                    } else {
                        // A retry: the server id is the one the first attempt claimed for.
                        let command_id = writes.command_id(step, &key_subject)?;
                        match self.recorded(&key_subject, &command_id).await? {
                            Some(EventBody::ServerKeyClaimed(claimed)) => claimed.server_id,
                            _ => fresh,
                        }
                    };
                    match done.state.0.owner() {
                        Some(owner) if owner == mine => return Ok(Claim::Ours(mine)),
                        _ => return Ok(Claim::Taken),
                    }
                }
                Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother { owner })) => owner,
                Err(other) => return Err(infra(other)),
            };
            // Held by another server: take it over only if that server is gone for good, or
            // was never imported and its claim is long stale.
            let server_subject = subject(subjects::server(host_id, &holder))?;
            let (server, _) = load_or_unavailable::<Server>(self, &server_subject).await?;
            let abandoned = match server {
                Server::Deleted => true,
                Server::Live(_) => false,
                Server::Absent => self
                    .last_event_at_ms(&key_subject)
                    .await?
                    .is_some_and(|at| now_ms().saturating_sub(at) > STALE_CLAIM_MS),
            };
            if !abandoned {
                return Ok(Claim::Taken);
            }
            tracing::info!(%host_id, %key, server_id = %holder, "Releasing an abandoned server key.");
            self.release_server_key(context, writes, host_id, key, &holder)
                .await?;
        }
        Ok(Claim::Taken)
    }

    /// Releases `key` if `server_id` holds it.
    pub(super) async fn release_server_key(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        key: &str,
        server_id: &str,
    ) -> Result<(), ControlError> {
        let key_subject = subject(subjects::server_key(host_id, key))?;
        let release = ReservationCommand::Release {
            owner: server_id.to_owned(),
        };
        match self
            .run::<ServerKey>(
                context,
                writes,
                &format!("server.release.{server_id}"),
                &key_subject,
                &release,
            )
            .await?
        {
            Ok(_) | Err(ExecuteError::Rejected(ReservationRejected::HeldByAnother { .. })) => {
                Ok(())
            }
            Err(other) => Err(infra(other)),
        }
    }

    /// Seals the client secret, bound to this host and server.
    fn seal_oauth(
        &self,
        host_id: &str,
        server_id: &str,
        oauth: &UpstreamOAuthInput,
    ) -> Result<pb::UpstreamAuth, ControlError> {
        let client_id = oauth.client_id.trim();
        let associated = super::secrets::oauth_client_secret_aad(host_id, server_id);
        let sealed = self
            .sealer
            .seal(oauth.client_secret.as_bytes(), associated.as_bytes())
            .map_err(ControlError::unavailable)?;
        Ok(pb::UpstreamAuth {
            mode: Some(pb::upstream_auth::Mode::Oauth(pb::UpstreamOAuth {
                client_id: client_id.to_owned(),
                sealed_client_secret: sealed.sealed,
                key_id: sealed.key_id,
            })),
        })
    }

    /// The host's servers, sorted by id.
    pub async fn list_servers(
        &self,
        principal: &Principal,
        host_id: &str,
    ) -> Result<Vec<ServerView>, ControlError> {
        self.host_for(principal, host_id).await?;
        Ok(self
            .list::<models::Server>(ModelKind::Server, &[host_id])
            .await?
            .into_iter()
            .filter_map(|(rest, server)| match rest.as_slice() {
                [server_id] => Some(ServerView::new(host_id, server_id, server)),
                _ => None,
            })
            .collect())
    }

    /// One server of the host.
    pub async fn get_server(
        &self,
        principal: &Principal,
        host_id: &str,
        server_id: &str,
    ) -> Result<ServerView, ControlError> {
        self.host_for(principal, host_id).await?;
        let server = self.server_in(host_id, server_id).await?;
        Ok(ServerView::new(host_id, server_id, server))
    }

    /// The server holding `key` in the host (the REST API addresses servers by key).
    pub async fn find_server_by_key(
        &self,
        principal: &Principal,
        host_id: &str,
        key: &str,
    ) -> Result<ServerView, ControlError> {
        self.host_for(principal, host_id).await?;
        check_id("server key", key)?;
        let owner = self
            .live::<models::ServerKeyOwner>(ModelKind::ServerKey, &[host_id, key])
            .await?
            .ok_or_else(|| ControlError::not_found("server", key))?;
        let server = self
            .live::<models::Server>(ModelKind::Server, &[host_id, &owner.server_id])
            .await?
            .ok_or_else(|| ControlError::not_found("server", key))?;
        Ok(ServerView::new(host_id, &owner.server_id, server))
    }

    /// The live server read model, or `NotFound`. The host must have been checked.
    pub(super) async fn server_in(
        &self,
        host_id: &str,
        server_id: &str,
    ) -> Result<models::Server, ControlError> {
        check_id("server", server_id)?;
        self.live::<models::Server>(ModelKind::Server, &[host_id, server_id])
            .await?
            .ok_or_else(|| ControlError::not_found("server", server_id))
    }

    /// Runs one server command and returns the server as it then reads.
    #[allow(clippy::too_many_arguments)]
    async fn server_command(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        step: &str,
        command: ServerCommand,
    ) -> Result<ServerView, ControlError> {
        self.host_for(principal, host_id).await?;
        self.server_in(host_id, server_id).await?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let server_subject = subject(subjects::server(host_id, server_id))?;
        on_reject(
            self.run::<Server>(context, &mut writes, step, &server_subject, &command)
                .await?,
            |rejected| server_rejected(server_id, rejected),
        )?;
        self.settle(&writes).await?;
        self.get_server(principal, host_id, server_id).await
    }

    /// Changes a server's name, description and/or upstream timeout.
    #[tracing::instrument(name = "control.server.update", skip_all, fields(%host_id, %server_id))]
    pub async fn update_server(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        patch: ServerDetailsPatch,
    ) -> Result<ServerView, ControlError> {
        let command = patch.into_command()?;
        self.server_command(
            principal,
            context,
            idempotency_key,
            host_id,
            server_id,
            "server.details",
            command,
        )
        .await
    }

    /// Adds a tool by hand.
    #[tracing::instrument(name = "control.tool.add", skip_all, fields(%host_id, %server_id))]
    pub async fn add_tool(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        tool: NewTool,
    ) -> Result<ServerView, ControlError> {
        let tool = pb::Tool {
            name: tool.name,
            description: tool.description,
            input_schema_sha256: tool.input_schema_sha256,
            trust_level: tool.trust_level.into(),
            enabled: true,
            classification: Some(tool.classification.unwrap_or_else(admin_override)),
        };
        self.server_command(
            principal,
            context,
            idempotency_key,
            host_id,
            server_id,
            "tool.add",
            ServerCommand::AddTool { tool },
        )
        .await
    }

    /// An admin's override of a tool's trust level and/or enabled flag.
    #[tracing::instrument(name = "control.tool.update", skip_all, fields(%host_id, %server_id))]
    #[allow(clippy::too_many_arguments)]
    pub async fn update_tool(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        tool_name: &str,
        trust_level: Option<TrustLevel>,
        enabled: Option<bool>,
    ) -> Result<ServerView, ControlError> {
        let command = ServerCommand::ChangeTool {
            name: tool_name.to_owned(),
            trust_level,
            enabled,
        };
        self.server_command(
            principal,
            context,
            idempotency_key,
            host_id,
            server_id,
            "tool.update",
            command,
        )
        .await
    }

    /// Removes a tool.
    #[tracing::instrument(name = "control.tool.remove", skip_all, fields(%host_id, %server_id))]
    pub async fn remove_tool(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        tool_name: &str,
    ) -> Result<ServerView, ControlError> {
        let command = ServerCommand::RemoveTool {
            name: tool_name.to_owned(),
        };
        self.server_command(
            principal,
            context,
            idempotency_key,
            host_id,
            server_id,
            "tool.remove",
            command,
        )
        .await
    }

    /// Applies a new discovery of the server's tools: adds new ones, updates changed ones
    /// (keeping admin overrides and enabled flags), removes the ones no longer listed.
    #[tracing::instrument(name = "control.server.refresh", skip_all, fields(%host_id, %server_id))]
    pub async fn refresh_server(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
        discovered: Vec<pb::Tool>,
    ) -> Result<RefreshReport, ControlError> {
        self.host_for(principal, host_id).await?;
        self.server_in(host_id, server_id).await?;
        let discovered = check_tools(&discovered).map_err(|e| tools_rejected("tools", e))?;
        let server_subject = subject(subjects::server(host_id, server_id))?;
        let (state, _) = load_or_unavailable::<Server>(self, &server_subject).await?;
        let Server::Live(live) = state else {
            return Err(ControlError::not_found("server", server_id));
        };
        let plan = live.plan_refresh(&discovered);
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let by_name: BTreeMap<&str, &pb::Tool> =
            discovered.iter().map(|t| (t.name.as_str(), t)).collect();
        for name in plan.added.iter().chain(&plan.changed) {
            let Some(tool) = by_name.get(name.as_str()) else {
                continue;
            };
            let command = ServerCommand::RefreshTool {
                discovered: (*tool).clone(),
            };
            on_reject(
                self.run::<Server>(
                    context,
                    &mut writes,
                    &format!("server.refresh.put.{name}"),
                    &server_subject,
                    &command,
                )
                .await?,
                |rejected| server_rejected(server_id, rejected),
            )?;
        }
        for name in &plan.removed {
            let command = ServerCommand::DropTool { name: name.clone() };
            on_reject(
                self.run::<Server>(
                    context,
                    &mut writes,
                    &format!("server.refresh.drop.{name}"),
                    &server_subject,
                    &command,
                )
                .await?,
                |rejected| server_rejected(server_id, rejected),
            )?;
        }
        self.settle(&writes).await?;
        Ok(RefreshReport {
            server: self.get_server(principal, host_id, server_id).await?,
            added: plan.added,
            changed: plan.changed,
            removed: plan.removed,
        })
    }

    /// Deletes a server for good: it goes, every grant on it is revoked, every session on it
    /// is revoked, and its key is released for reuse (a reimport is a new server, with no
    /// grants).
    #[tracing::instrument(name = "control.server.delete", skip_all, fields(%host_id, %server_id))]
    pub async fn delete_server(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        server_id: &str,
    ) -> Result<(), ControlError> {
        self.host_for(principal, host_id).await?;
        check_id("server", server_id)?;
        let server_subject = subject(subjects::server(host_id, server_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        let deleted = self
            .run::<Server>(
                context,
                &mut writes,
                "server.delete",
                &server_subject,
                &ServerCommand::Delete,
            )
            .await?;
        // A server deleted before (by a request that may have crashed halfway) still gets
        // its grants, sessions and key cleaned up; the answer is then `NotFound`.
        let already_deleted = match deleted {
            Ok(_) => false,
            Err(ExecuteError::Rejected(ServerRejected::NotFound)) => {
                let (state, version) = load_or_unavailable::<Server>(self, &server_subject).await?;
                if state != Server::Deleted {
                    return Err(ControlError::not_found("server", server_id));
                }
                writes.note(version.0);
                true
            }
            Err(ExecuteError::Rejected(rejected)) => {
                return Err(server_rejected(server_id, rejected));
            }
            Err(other) => return Err(infra(other)),
        };
        // The key the server held, from its history (the read model is a tombstone now).
        let key = match self
            .find_in_history(&server_subject, |body| match body {
                EventBody::ServerImported(imported) => Some(imported.key),
                _ => None,
            })
            .await?
        {
            Some(key) => key,
            None => return Err(ControlError::not_found("server", server_id)),
        };
        // Everything recorded before the deletion is in the read models once this returns,
        // so the lists below miss no grant or session given before it.
        self.settle(&writes).await?;

        for (rest, grant) in self
            .list::<models::Grant>(ModelKind::Grant, &[host_id])
            .await?
        {
            if grant.server_id != server_id || rest.len() != 2 {
                continue;
            }
            let grant_subject = subject(subjects::grant(host_id, &grant.human_id, server_id))?;
            match self
                .run::<Grant>(
                    context,
                    &mut writes,
                    "server.delete.grant",
                    &grant_subject,
                    &GrantCommand::Revoke,
                )
                .await?
            {
                Ok(_) | Err(ExecuteError::Rejected(GrantRejected::NotFound)) => {}
                Err(other) => return Err(infra(other)),
            }
        }
        self.revoke_sessions(context, &mut writes, host_id, "server deleted", |s| {
            s.server_id == server_id
        })
        .await?;
        self.release_server_key(context, &mut writes, host_id, &key, server_id)
            .await?;
        self.settle(&writes).await?;
        if already_deleted {
            return Err(ControlError::not_found("server", server_id));
        }
        Ok(())
    }

    /// Revokes every open session of the host that `matches`.
    pub(super) async fn revoke_sessions(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        reason: &str,
        matches: impl Fn(&models::Session) -> bool,
    ) -> Result<(), ControlError> {
        for (rest, session) in self
            .list::<models::Session>(ModelKind::Session, &[host_id])
            .await?
        {
            let [session_id] = rest.as_slice() else {
                continue;
            };
            if session.revoked.is_some() || !matches(&session) {
                continue;
            }
            let session_subject = subject(subjects::session(host_id, session_id))?;
            let revoke = SessionCommand::Revoke {
                reason: reason.to_owned(),
            };
            match self
                .run::<Session>(context, writes, "session.revoke", &session_subject, &revoke)
                .await?
            {
                Ok(_) | Err(ExecuteError::Rejected(_)) => {}
                Err(other) => return Err(infra(other)),
            }
        }
        Ok(())
    }
}
