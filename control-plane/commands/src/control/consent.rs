//! The consent flow's reads and its one workflow: which servers a human may choose (their
//! grants, with each server's tools), and accepting a consent (a session at the chosen trust
//! level, the agent connected to the human).
//!
//! No admin principal: confined to the host the HTTP layer resolved. The ceiling is checked
//! again here, from the grant as it is now, whatever the page showed.

use portcullis_domain::agent::{Agent, AgentCommand, AgentRejected};
use portcullis_domain::session::{Session, SessionCommand};
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::events::v1::SessionStarted;
use portcullis_proto::{TrustLevel, subjects};

use super::accounts::CONSENT_WRITER;
use super::idempotency::Writes;
use super::{Control, ControlError, check_id, new_id, on_reject, subject};
use crate::Context;

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
