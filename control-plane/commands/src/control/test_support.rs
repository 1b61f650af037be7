//! Test-only builders: an agent registration and a consent session, written straight to the
//! log as the consent flow will, and a principal without a token lookup. Compiled for this
//! crate's tests and, with the `test-support` feature, for other crates' tests.

use portcullis_domain::agent::{Agent, AgentCommand};
use portcullis_domain::host::Host;
use portcullis_domain::session::{Session, SessionCommand};
use portcullis_proto::events::v1::{AgentRegistered, SessionStarted};
use portcullis_proto::{TrustLevel, subjects};

use portcullis_secrets::KeyRing;
use portcullis_tokens::{AccessClaims, SigningKey};

use super::idempotency::Writes;
use super::{Control, ControlError, Principal, infra, new_id, on_reject, subject};
use crate::{Context, load_state};

impl Principal {
    /// A principal for token `token_id` acting for `org_ids`, as `authenticate` would build.
    pub fn for_tests(token_id: &str, org_ids: &[&str]) -> Self {
        Self {
            token_id: token_id.to_owned(),
            org_ids: org_ids.iter().map(|o| (*o).to_owned()).collect(),
        }
    }
}

impl Control {
    /// Registers an agent in `host_id` connected by `human_id`; returns its id once the read
    /// models show it.
    pub async fn test_register_agent(
        &self,
        context: &Context,
        host_id: &str,
        name: &str,
        human_id: Option<&str>,
    ) -> Result<String, ControlError> {
        let agent_id = new_id();
        let registered = AgentRegistered {
            agent_id: agent_id.clone(),
            client_id: format!("https://{name}.example/client.json"),
            name: name.to_owned(),
            uri: format!("https://{name}.example"),
            agent_type: "sdk".to_owned(),
            redirect_uris: vec!["http://127.0.0.1:33418/callback".to_owned()],
            human_id: human_id.map(str::to_owned),
        };
        let agent_subject = subject(subjects::agent(host_id, &agent_id))?;
        let mut writes = Writes::new("test-support", None);
        on_reject(
            self.run::<Agent>(
                context,
                &mut writes,
                "test.agent",
                &agent_subject,
                &AgentCommand::Register(registered),
            )
            .await?,
            ControlError::unavailable,
        )?;
        self.settle(&writes).await?;
        Ok(agent_id)
    }

    /// Starts a consent session of `human_id` for `agent_id` on `server_id` at `level`, with
    /// the default lifetimes; returns its id once the read models show it.
    pub async fn test_start_session(
        &self,
        context: &Context,
        host_id: &str,
        human_id: &str,
        agent_id: &str,
        server_id: &str,
        level: TrustLevel,
    ) -> Result<String, ControlError> {
        let session_id = new_id();
        let started = SessionStarted {
            session_id: session_id.clone(),
            human_id: human_id.to_owned(),
            agent_id: agent_id.to_owned(),
            client_id: format!("client-{agent_id}"),
            server_id: server_id.to_owned(),
            trust_level: level.into(),
            started_at_ms: context.now_ms,
            idle_timeout_seconds: portcullis_proto::DEFAULT_SESSION_IDLE_SECONDS,
            absolute_timeout_seconds: portcullis_proto::DEFAULT_SESSION_ABSOLUTE_SECONDS,
        };
        let session_subject = subject(subjects::session(host_id, &session_id))?;
        let mut writes = Writes::new("test-support", None);
        on_reject(
            self.run::<Session>(
                context,
                &mut writes,
                "test.session",
                &session_subject,
                &SessionCommand::Start(started),
            )
            .await?,
            ControlError::unavailable,
        )?;
        self.settle(&writes).await?;
        Ok(session_id)
    }

    /// An access token for `session_id` signed with the host's newest key (which `ring` must
    /// open), as the authorization server will issue: `iss` = `issuer`, `aud` = `audience`,
    /// valid from `iat_seconds` for `ttl_seconds`.
    #[allow(clippy::too_many_arguments)]
    pub async fn test_access_token(
        &self,
        ring: &KeyRing,
        host_id: &str,
        session_id: &str,
        issuer: &str,
        audience: &str,
        iat_seconds: u64,
        ttl_seconds: u64,
    ) -> Result<String, ControlError> {
        let session = self
            .live::<portcullis_projector::models::Session>(
                portcullis_projector::ModelKind::Session,
                &[host_id, session_id],
            )
            .await?
            .ok_or_else(|| ControlError::not_found("session", session_id))?;
        let (host, _) = load_state::<Host>(self.log.as_ref(), &subject(subjects::host(host_id))?)
            .await
            .map_err(infra)?;
        let Host::Live { signing_keys, .. } = host else {
            return Err(ControlError::not_found("host", host_id));
        };
        let newest = signing_keys
            .last()
            .ok_or_else(|| ControlError::not_found("signing key of host", host_id))?;
        let key = SigningKey::open(ring, host_id, newest).map_err(ControlError::unavailable)?;
        let claims = AccessClaims {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            sub: session.human_id,
            client_id: session.client_id,
            sid: session_id.to_owned(),
            iat: iat_seconds,
            exp: iat_seconds + ttl_seconds,
            jti: new_id(),
        };
        portcullis_tokens::access::mint(&key, &claims).map_err(ControlError::unavailable)
    }
}
