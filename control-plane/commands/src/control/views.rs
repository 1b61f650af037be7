//! What control operations return: plain, serializable views built from read models.
//!
//! No secret is ever part of a view (upstream OAuth shows the client id and key id only).

use std::collections::BTreeMap;

use portcullis_projector::models::{self, HostSettings, UpstreamAuth};
use portcullis_proto::TrustLevel;
use serde::Serialize;

/// An organization the admin belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrganizationView {
    /// Its id.
    pub org_id: String,
    /// Display name.
    pub name: String,
}

/// A host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostView {
    /// The subdomain, e.g. `acme-pink-panda-6942`.
    pub host_id: String,
    /// The owning organization.
    pub org_id: String,
    /// The admin-chosen prefix.
    pub prefix: String,
    /// Whether it is its organization's default host.
    pub is_default: bool,
    /// Its settings, defaults resolved.
    pub settings: HostSettings,
}

impl HostView {
    pub(crate) fn new(host_id: &str, host: models::Host) -> Self {
        Self {
            host_id: host_id.to_owned(),
            org_id: host.org_id,
            prefix: host.prefix,
            is_default: host.is_default,
            settings: host.settings,
        }
    }
}

/// An imported server and its tools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerView {
    /// Its id.
    pub server_id: String,
    /// Its host.
    pub host_id: String,
    /// URL-safe key, unique in the host.
    pub key: String,
    /// Upstream URL.
    pub url: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// How the gateway authenticates upstream (never the secret).
    pub upstream_auth: UpstreamAuth,
    /// How long the data plane waits for the upstream's response head, in seconds; `None`
    /// for the data plane's global default.
    pub timeout_seconds: Option<u64>,
    /// Tools by name.
    pub tools: BTreeMap<String, models::Tool>,
}

impl ServerView {
    pub(crate) fn new(host_id: &str, server_id: &str, server: models::Server) -> Self {
        Self {
            server_id: server_id.to_owned(),
            host_id: host_id.to_owned(),
            key: server.key,
            url: server.url,
            name: server.name,
            description: server.description,
            upstream_auth: server.upstream_auth,
            timeout_seconds: server.timeout_seconds,
            tools: server.tools,
        }
    }
}

/// What a refresh changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// The server after the refresh.
    pub server: ServerView,
    /// Tools that appeared upstream.
    pub added: Vec<String>,
    /// Tools whose description, schema or automatic level changed (admin overrides kept).
    pub changed: Vec<String>,
    /// Tools the upstream no longer lists.
    pub removed: Vec<String>,
}

/// A human.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanView {
    /// Their id.
    pub human_id: String,
    /// Their host.
    pub host_id: String,
    /// Normalized email.
    pub email: String,
    /// Added by an admin before first sign-in.
    pub pre_authorized: bool,
}

/// A human with their grants and the agents they connected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HumanDetail {
    /// The human.
    pub human: HumanView,
    /// Their grants, by server id.
    pub grants: Vec<GrantView>,
    /// Agents they registered or hold a live session with, by agent id.
    pub agent_ids: Vec<String>,
}

/// A grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantView {
    /// The human.
    pub human_id: String,
    /// The server.
    pub server_id: String,
    /// The ceiling the human may delegate.
    pub max_trust_level: TrustLevel,
}

/// An agent, its caps, and what it can do on each server it is connected to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentView {
    /// Its id.
    pub agent_id: String,
    /// Its host.
    pub host_id: String,
    /// OAuth client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// The client's URI.
    pub uri: String,
    /// The kind of client.
    pub agent_type: String,
    /// Its registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The human who connected it, once known.
    pub human_id: Option<String>,
    /// That human's email, if they still exist.
    pub human_email: Option<String>,
    /// Admin caps by server id.
    pub caps: BTreeMap<String, TrustLevel>,
    /// Servers on which it holds a live session, by server id.
    pub servers: Vec<AgentServerView>,
}

/// An agent's standing on one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentServerView {
    /// The server.
    pub server_id: String,
    /// Its key, if the server still exists.
    pub server_key: Option<String>,
    /// The highest level consented in a live session.
    pub consented: TrustLevel,
    /// The human's grant ceiling, if the grant is in force.
    pub grant: Option<TrustLevel>,
    /// The admin's cap, if any.
    pub cap: Option<TrustLevel>,
    /// What a call may use: the least of consent, grant and cap; `None` without a grant.
    pub effective: Option<TrustLevel>,
    /// Its live sessions there.
    pub session_ids: Vec<String>,
}
