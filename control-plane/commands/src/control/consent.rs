//! The consent flow's reads and its workflows: which servers a human may choose (their
//! grants, with each server's tools), adding a server by URL when the host allows dynamic
//! MCPs (recorded like an import, with the human's own grant at High), and accepting a
//! consent (a session at the chosen trust level, the agent connected to the human).
//!
//! No admin principal: confined to the host the HTTP layer resolved. The ceiling is checked
//! again here, from the grant as it is now, whatever the page showed.

use portcullis_domain::agent::{Agent, AgentCommand, AgentRejected};
use portcullis_domain::grant::{Grant, GrantCommand};
use portcullis_domain::server::{Server, ServerCommand, apply_overrides, check_tools};
use portcullis_domain::session::{Session, SessionCommand};
use portcullis_domain::validate::{
    MAX_DESCRIPTION_CHARS, validate_description, validate_name, validate_server_url,
};
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::events::v1::SessionStarted;
use portcullis_proto::{TrustLevel, subjects};
use sha2::{Digest, Sha256};

use super::accounts::CONSENT_WRITER;
use super::idempotency::Writes;
use super::servers::{Claim, DiscoveredServer, server_rejected};
use super::{Control, ControlError, check_id, infra, new_id, on_reject, subject};
use crate::{Context, ExecuteError};

/// How the key of a server a human added by URL begins.
const DYNAMIC_SERVER_KEY_PREFIX: &str = "dyn-";

/// The key of the server a human adds by URL: `dyn-` and the first 10 hex digits of the
/// SHA-256 of the checked URL, so the same URL added again in the host is the same server.
fn dynamic_server_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("{DYNAMIC_SERVER_KEY_PREFIX}{hex}")
}

/// A server the human may consent to, with the ceiling of their grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentServer {
    /// The server.
    pub server_id: String,
    /// Its catalog (key, name, URL, tools).
    pub server: models::Server,
    /// The grant's ceiling.
    pub max_trust_level: TrustLevel,
}

/// What the consent pages need of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentHost {
    /// Whether it is its organization's default host.
    pub is_default: bool,
    /// Its settings, defaults resolved.
    pub settings: models::HostSettings,
}

/// An accepted consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptConsent {
    /// The signed-in human.
    pub human_id: String,
    /// The agent (OAuth client) asking.
    pub agent_id: String,
    /// Its client id.
    pub client_id: String,
    /// The chosen server.
    pub server_id: String,
    /// The chosen trust level.
    pub trust_level: TrustLevel,
}

impl Control {
    /// The host as the consent pages need it; `NotFound` when absent or deleted.
    pub async fn consent_host(&self, host_id: &str) -> Result<ConsentHost, ControlError> {
        check_id("host", host_id)?;
        let host = self
            .live::<models::Host>(ModelKind::Host, &[host_id])
            .await?
            .ok_or_else(|| ControlError::not_found("host", host_id))?;
        Ok(ConsentHost {
            is_default: host.is_default,
            settings: host.settings,
        })
    }

    /// The servers `human_id` holds a grant on, by name.
    pub async fn consent_servers(
        &self,
        host_id: &str,
        human_id: &str,
    ) -> Result<Vec<ConsentServer>, ControlError> {
        check_id("host", host_id)?;
        check_id("human", human_id)?;
        let mut servers = Vec::new();
        for (_, grant) in self
            .list::<models::Grant>(ModelKind::Grant, &[host_id, human_id])
            .await?
        {
            if check_id("server", &grant.server_id).is_err() {
                continue;
            }
            if let Some(server) = self
                .live::<models::Server>(ModelKind::Server, &[host_id, &grant.server_id])
                .await?
            {
                servers.push(ConsentServer {
                    server_id: grant.server_id,
                    server,
                    max_trust_level: grant.max_trust_level,
                });
            }
        }
        servers.sort_by(|a, b| a.server.name.cmp(&b.server.name));
        Ok(servers)
    }

    /// Records an accepted consent: a new session at the chosen level (lifetimes from the
    /// host's settings) and the agent connected to the human. `Invalid` when the human holds
    /// no grant on the server now or the level is above its ceiling; `NotFound` for an agent
    /// that is gone. Returns the session id once the read models show it.
    #[tracing::instrument(name = "control.consent.accept", skip_all, fields(%host_id))]
    pub async fn accept_consent(
        &self,
        context: &Context,
        host_id: &str,
        consent: &AcceptConsent,
    ) -> Result<String, ControlError> {
        let host = self.consent_host(host_id).await?;
        check_id("human", &consent.human_id)?;
        check_id("agent", &consent.agent_id)?;
        check_id("server", &consent.server_id)?;
        let ceiling = self
            .live::<models::Grant>(
                ModelKind::Grant,
                &[host_id, &consent.human_id, &consent.server_id],
            )
            .await?
            .map(|grant| grant.max_trust_level)
            .ok_or_else(|| {
                ControlError::invalid("server", "you have no access to this server any more")
            })?;
        if consent.trust_level > ceiling {
            return Err(ControlError::invalid(
                "trust_level",
                format!(
                    "{} is above the {} your admin allows on this server",
                    level_name(consent.trust_level),
                    level_name(ceiling)
                ),
            ));
        }
        let mut writes = Writes::new(CONSENT_WRITER, None);
        let agent_subject = subject(subjects::agent(host_id, &consent.agent_id))?;
        on_reject(
            self.run::<Agent>(
                context,
                &mut writes,
                "consent.connect",
                &agent_subject,
                &AgentCommand::Connect {
                    human_id: consent.human_id.clone(),
                },
            )
            .await?,
            |rejected| match rejected {
                AgentRejected::NotFound => ControlError::not_found("agent", &consent.agent_id),
                other => ControlError::conflict("agent", &consent.agent_id, other),
            },
        )?;
        let session_id = new_id();
        let started = SessionStarted {
            session_id: session_id.clone(),
            human_id: consent.human_id.clone(),
            agent_id: consent.agent_id.clone(),
            client_id: consent.client_id.clone(),
            server_id: consent.server_id.clone(),
            trust_level: consent.trust_level.into(),
            started_at_ms: context.now_ms,
            idle_timeout_seconds: host.settings.session_idle_seconds,
            absolute_timeout_seconds: host.settings.session_absolute_seconds,
        };
        let session_subject = subject(subjects::session(host_id, &session_id))?;
        on_reject(
            self.run::<Session>(
                context,
                &mut writes,
                "consent.session",
                &session_subject,
                &SessionCommand::Start(started),
            )
            .await?,
            |rejected| ControlError::conflict("session", &session_id, rejected),
        )?;
        self.settle(&writes).await?;
        Ok(session_id)
    }
}

impl Control {
    /// Adds the server at `url` for the human, as the consent flow's "Server URL": the host
    /// must allow dynamic MCPs. Recorded like an admin's import (key reserved first, tools as
    /// discovery classified them, by the product rule) under the key
    /// [`dynamic_server_key`], and the human gets a grant with ceiling High on it: they set
    /// their own trust level. The same URL added again in the host reuses that server and
    /// only makes sure the human holds a grant (an existing grant is kept as it is).
    /// `Invalid` (field `server_url`) when dynamic MCPs are off or the URL or what discovery
    /// found cannot be recorded; `Conflict` when the key is held by another URL or by an
    /// addition still under way.
    #[tracing::instrument(name = "control.consent.add_server", skip_all, fields(%host_id, %human_id))]
    pub async fn import_dynamic_server(
        &self,
        context: &Context,
        host_id: &str,
        human_id: &str,
        url: &str,
        discovered: DiscoveredServer,
    ) -> Result<ConsentServer, ControlError> {
        let host = self.consent_host(host_id).await?;
        check_id("human", human_id)?;
        if !host.settings.dynamic_mcps {
            return Err(ControlError::invalid(
                "server_url",
                "this gateway does not let you add MCP servers by URL; ask your admin",
            ));
        }
        let url = validate_server_url(url).map_err(|e| ControlError::invalid("server_url", e))?;
        let key = dynamic_server_key(&url);
        let mut writes = Writes::new(CONSENT_WRITER, None);

        let server_id = match self.dynamic_server(host_id, &key, &url).await? {
            Some(server_id) => server_id,
            None => {
                self.record_dynamic_server(context, &mut writes, host_id, &key, &url, discovered)
                    .await?
            }
        };

        let grant_subject = subject(subjects::grant(host_id, human_id, &server_id))?;
        let held = self
            .live::<models::Grant>(ModelKind::Grant, &[host_id, human_id, &server_id])
            .await?
            .is_some();
        if !held {
            let put = GrantCommand::Put {
                human_id: human_id.to_owned(),
                server_id: server_id.clone(),
                max_trust_level: TrustLevel::High,
            };
            on_reject(
                self.run::<Grant>(
                    context,
                    &mut writes,
                    "consent.dynamic.grant",
                    &grant_subject,
                    &put,
                )
                .await?,
                |_| ControlError::not_found("grant", &format!("{human_id}/{server_id}")),
            )?;
        }
        self.settle(&writes).await?;
        self.consent_servers(host_id, human_id)
            .await?
            .into_iter()
            .find(|s| s.server_id == server_id)
            .ok_or_else(|| ControlError::not_found("server", &server_id))
    }

    /// The live server holding `key` in the host, if it is the one for `url`; `Conflict` when
    /// the key is held by a server for another URL.
    async fn dynamic_server(
        &self,
        host_id: &str,
        key: &str,
        url: &str,
    ) -> Result<Option<String>, ControlError> {
        let Some(owner) = self
            .live::<models::ServerKeyOwner>(ModelKind::ServerKey, &[host_id, key])
            .await?
        else {
            return Ok(None);
        };
        match self
            .live::<models::Server>(ModelKind::Server, &[host_id, &owner.server_id])
            .await?
        {
            Some(server) if server.url == url => Ok(Some(owner.server_id)),
            Some(_) => Err(ControlError::conflict(
                "server key",
                key,
                "already used by another server in this host",
            )),
            None => Ok(None),
        }
    }

    /// Reserves `key` and records the server at `url` with what discovery found; returns its
    /// id. A server another request recorded for the same URL meanwhile is reused.
    async fn record_dynamic_server(
        &self,
        context: &Context,
        writes: &mut Writes,
        host_id: &str,
        key: &str,
        url: &str,
        discovered: DiscoveredServer,
    ) -> Result<String, ControlError> {
        // Checked before anything is written, as an admin's import is.
        let tools = check_tools(&discovered.tools)
            .map_err(|e| ControlError::invalid("server_url", format!("the server's tools: {e}")))?;
        let tools = apply_overrides(tools, &[])
            .map_err(|e| ControlError::invalid("server_url", format!("the server's tools: {e}")))?;
        // The upstream's own name, else its URL, else the key.
        let name = discovered
            .name
            .as_deref()
            .and_then(|n| validate_name(n).ok())
            .or_else(|| validate_name(url).ok())
            .unwrap_or_else(|| key.to_owned());
        let description = discovered
            .description
            .as_deref()
            .and_then(|d| validate_description(d, MAX_DESCRIPTION_CHARS).ok())
            .unwrap_or_default();

        let server_id = match self.claim_server_key(context, writes, host_id, key).await? {
            Claim::Ours(server_id) => server_id,
            Claim::Taken => {
                // Another human's request may have added the same URL just now.
                self.settle(writes).await?;
                return self
                    .dynamic_server(host_id, key, url)
                    .await?
                    .ok_or_else(|| {
                        ControlError::conflict(
                            "server key",
                            key,
                            "this server is being added by another request; try again",
                        )
                    });
            }
        };
        let server_subject = subject(subjects::server(host_id, &server_id))?;
        let import = ServerCommand::Import {
            server_id: server_id.clone(),
            key: key.to_owned(),
            url: url.to_owned(),
            name,
            description,
            upstream_auth: None,
            timeout_seconds: None,
            tools,
        };
        match self
            .run::<Server>(
                context,
                writes,
                "consent.dynamic.import",
                &server_subject,
                &import,
            )
            .await?
        {
            Ok(_) => Ok(server_id),
            Err(ExecuteError::Rejected(rejected)) => {
                // Refused outright, so the server will never exist: the key goes back.
                self.release_server_key(context, writes, host_id, key, &server_id)
                    .await?;
                Err(server_rejected(&server_id, rejected))
            }
            // Unknown whether it was recorded: the claim stays; adding the URL again reuses it
            // once its claim is stale.
            Err(other) => Err(infra(other)),
        }
    }
}

/// How the pages name a level.
pub fn level_name(level: TrustLevel) -> &'static str {
    match level {
        TrustLevel::Low => "Low",
        TrustLevel::Medium => "Medium",
        TrustLevel::High => "High",
    }
}

impl Control {
    /// The default host of organization `org_id`, if it has one.
    pub async fn default_host_of(&self, org_id: &str) -> Result<Option<String>, ControlError> {
        check_id("organization", org_id)?;
        Ok(self
            .live::<models::Organization>(ModelKind::Organization, &[org_id])
            .await?
            .and_then(|org| org.default_host_id))
    }
}
