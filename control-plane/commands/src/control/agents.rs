//! Agents: list, get (with their servers and levels), cap per server, clear a cap, revoke on
//! a server, delete. Agents themselves are registered by the consent flow.

use std::collections::BTreeMap;

use portcullis_domain::agent::{Agent, AgentCommand, AgentRejected};
use portcullis_projector::ModelKind;
use portcullis_projector::models;
use portcullis_proto::TrustLevel;
use portcullis_proto::subjects;

use super::idempotency::{IdempotencyKey, Writes};
use super::views::{AgentServerView, AgentView};
use super::{Control, ControlError, Principal, check_id, now_ms, on_reject, subject};
use crate::Context;

impl Control {
    /// The host's agents (of one human, if given), sorted by id.
    pub async fn list_agents(
        &self,
        principal: &Principal,
        host_id: &str,
        human_id: Option<&str>,
    ) -> Result<Vec<AgentView>, ControlError> {
        self.host_for(principal, host_id).await?;
        let agents = self
            .list::<models::Agent>(ModelKind::Agent, &[host_id])
            .await?
            .into_iter()
            .filter_map(|(rest, agent)| match rest.as_slice() {
                [agent_id] => Some((agent_id.clone(), agent)),
                _ => None,
            })
            .filter(|(_, agent)| human_id.is_none() || agent.human_id.as_deref() == human_id)
            .collect();
        self.agent_views(host_id, agents).await
    }

    /// One agent, with its servers and levels.
    pub async fn get_agent(
        &self,
        principal: &Principal,
        host_id: &str,
        agent_id: &str,
    ) -> Result<AgentView, ControlError> {
        self.host_for(principal, host_id).await?;
        let agent = self.agent_in(host_id, agent_id).await?;
        self.agent_views(host_id, vec![(agent_id.to_owned(), agent)])
            .await?
            .pop()
            .ok_or_else(|| ControlError::not_found("agent", agent_id))
    }

    async fn agent_in(&self, host_id: &str, agent_id: &str) -> Result<models::Agent, ControlError> {
        check_id("agent", agent_id)?;
        self.live::<models::Agent>(ModelKind::Agent, &[host_id, agent_id])
            .await?
            .ok_or_else(|| ControlError::not_found("agent", agent_id))
    }

    /// Views of `agents`, joining their live sessions, grants, caps and servers.
    async fn agent_views(
        &self,
        host_id: &str,
        agents: Vec<(String, models::Agent)>,
    ) -> Result<Vec<AgentView>, ControlError> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let sessions: Vec<(String, models::Session)> = self
            .list::<models::Session>(ModelKind::Session, &[host_id])
            .await?
            .into_iter()
            .filter_map(|(rest, session)| match rest.as_slice() {
                [session_id] if session.is_live_at(now) => Some((session_id.clone(), session)),
                _ => None,
            })
            .collect();
        let mut views = Vec::with_capacity(agents.len());
        for (agent_id, agent) in agents {
            let mut servers: BTreeMap<String, AgentServerView> = BTreeMap::new();
            for (session_id, session) in &sessions {
                if session.agent_id != agent_id
                    || !agent
                        .session_survives_revocations(&session.server_id, session.started_sequence)
                {
                    continue;
                }
                let grant = self
                    .grant_level(host_id, &session.human_id, &session.server_id)
                    .await?;
                let cap = agent.caps.get(&session.server_id).copied();
                let effective = grant.map(|grant| {
                    let level = session.trust_level.min(grant);
                    cap.map_or(level, |cap| level.min(cap))
                });
                let view = match servers.get_mut(&session.server_id) {
                    Some(view) => view,
                    None => {
                        let server_key = if check_id("server", &session.server_id).is_ok() {
                            self.live::<models::Server>(
                                ModelKind::Server,
                                &[host_id, &session.server_id],
                            )
                            .await?
                            .map(|server| server.key)
                        } else {
                            None
                        };
                        servers
                            .entry(session.server_id.clone())
                            .or_insert(AgentServerView {
                                server_id: session.server_id.clone(),
                                server_key,
                                consented: session.trust_level,
                                grant,
                                cap,
                                effective,
                                session_ids: Vec::new(),
                            })
                    }
                };
                view.consented = view.consented.max(session.trust_level);
                view.grant = max_level(view.grant, grant);
                view.effective = max_level(view.effective, effective);
                view.session_ids.push(session_id.clone());
            }
            let human_email = match &agent.human_id {
                Some(human_id) if check_id("human", human_id).is_ok() => self
                    .live::<models::Human>(ModelKind::Human, &[host_id, human_id])
                    .await?
                    .map(|human| human.email),
                _ => None,
            };
            views.push(AgentView {
                agent_id,
                host_id: host_id.to_owned(),
                client_id: agent.client_id,
                name: agent.name,
                uri: agent.uri,
                agent_type: agent.agent_type,
                redirect_uris: agent.redirect_uris,
                human_id: agent.human_id,
                human_email,
                caps: agent.caps,
                servers: servers.into_values().collect(),
            });
        }
        Ok(views)
    }

    async fn grant_level(
        &self,
        host_id: &str,
        human_id: &str,
        server_id: &str,
    ) -> Result<Option<TrustLevel>, ControlError> {
        if check_id("human", human_id).is_err() || check_id("server", server_id).is_err() {
            return Ok(None);
        }
        Ok(self
            .live::<models::Grant>(ModelKind::Grant, &[host_id, human_id, server_id])
            .await?
            .map(|grant| grant.max_trust_level))
    }

    /// Runs one agent command and returns the agent as it then reads.
    #[allow(clippy::too_many_arguments)]
    async fn agent_command(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        agent_id: &str,
        step: &str,
        command: AgentCommand,
    ) -> Result<Option<AgentView>, ControlError> {
        self.host_for(principal, host_id).await?;
        self.agent_in(host_id, agent_id).await?;
        let agent_subject = subject(subjects::agent(host_id, agent_id))?;
        let mut writes = Writes::new(&principal.token_id, idempotency_key);
        on_reject(
            self.run::<Agent>(context, &mut writes, step, &agent_subject, &command)
                .await?,
            |rejected| match rejected {
                AgentRejected::NotFound => ControlError::not_found("agent", agent_id),
                AgentRejected::AlreadyExists => ControlError::conflict("agent", agent_id, rejected),
            },
        )?;
        if matches!(command, AgentCommand::Delete) {
            self.settle(&writes).await?;
            self.revoke_sessions(context, &mut writes, host_id, "agent deleted", |s| {
                s.agent_id == agent_id
            })
            .await?;
            self.settle(&writes).await?;
            return Ok(None);
        }
        self.settle(&writes).await?;
        self.get_agent(principal, host_id, agent_id).await.map(Some)
    }

    /// Caps the agent's trust on a server (an admin override).
    #[tracing::instrument(name = "control.agent.put_cap", skip_all, fields(%host_id, %agent_id, %server_id))]
    #[allow(clippy::too_many_arguments)]
    pub async fn put_agent_cap(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        agent_id: &str,
        server_id: &str,
        max_trust_level: TrustLevel,
    ) -> Result<AgentView, ControlError> {
        self.host_for(principal, host_id).await?;
        self.server_in(host_id, server_id).await?;
        let command = AgentCommand::SetCap {
            server_id: server_id.to_owned(),
            max_trust_level,
        };
        self.agent_command(
            principal,
            context,
            idempotency_key,
            host_id,
            agent_id,
            "agent.cap",
            command,
        )
        .await?
        .ok_or_else(|| ControlError::not_found("agent", agent_id))
    }

    /// Clears the agent's cap on a server (nothing happens without one).
    #[tracing::instrument(name = "control.agent.delete_cap", skip_all, fields(%host_id, %agent_id, %server_id))]
    pub async fn delete_agent_cap(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        agent_id: &str,
        server_id: &str,
    ) -> Result<AgentView, ControlError> {
        check_id("server", server_id)?;
        let command = AgentCommand::ClearCap {
            server_id: server_id.to_owned(),
        };
        self.agent_command(
            principal,
            context,
            idempotency_key,
            host_id,
            agent_id,
            "agent.uncap",
            command,
        )
        .await?
        .ok_or_else(|| ControlError::not_found("agent", agent_id))
    }

    /// Ends every session the agent holds on a server (the human may consent again later).
    #[tracing::instrument(name = "control.agent.revoke_server", skip_all, fields(%host_id, %agent_id, %server_id))]
    pub async fn revoke_agent_server(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        agent_id: &str,
        server_id: &str,
    ) -> Result<AgentView, ControlError> {
        check_id("server", server_id)?;
        let command = AgentCommand::RevokeServer {
            server_id: server_id.to_owned(),
        };
        self.agent_command(
            principal,
            context,
            idempotency_key,
            host_id,
            agent_id,
            "agent.revoke",
            command,
        )
        .await?
        .ok_or_else(|| ControlError::not_found("agent", agent_id))
    }

    /// Deletes an agent and revokes all its sessions.
    #[tracing::instrument(name = "control.agent.delete", skip_all, fields(%host_id, %agent_id))]
    pub async fn delete_agent(
        &self,
        principal: &Principal,
        context: &Context,
        idempotency_key: Option<&IdempotencyKey>,
        host_id: &str,
        agent_id: &str,
    ) -> Result<(), ControlError> {
        self.agent_command(
            principal,
            context,
            idempotency_key,
            host_id,
            agent_id,
            "agent.delete",
            AgentCommand::Delete,
        )
        .await
        .map(|_| ())
    }
}

fn max_level(a: Option<TrustLevel>, b: Option<TrustLevel>) -> Option<TrustLevel> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
