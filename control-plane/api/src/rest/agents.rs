//! `/api/v1/hosts/{host}/agents`: the agents humans connected (the consent flow registers
//! them), what each may do on each server, and the admin's controls: pre-register a client,
//! cap an agent on a server, revoke it there, delete it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_commands::control::AgentView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson, ApiPath};
use super::types::{Created, TrustLevel, no_content};
use crate::flows::{self, PreRegistration};
use crate::{ApiError, ApiState};

/// An agent (an MCP client a human connected).
#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// OAuth client id.
    pub client_id: String,
    /// The client's URI.
    pub uri: String,
    /// The kind of client (`pre-registered` for one an admin registered).
    #[serde(rename = "type")]
    pub agent_type: String,
    /// Its registered OAuth redirect URIs.
    pub redirect_uris: Vec<String>,
    /// The email of the human who connected it, if known and still present.
    pub human_email: Option<String>,
    /// The id of the human who connected it, once known.
    pub human_id: Option<String>,
}

impl From<&AgentView> for Agent {
    fn from(view: &AgentView) -> Self {
        Agent {
            id: view.agent_id.clone(),
            name: view.name.clone(),
            client_id: view.client_id.clone(),
            uri: view.uri.clone(),
            agent_type: view.agent_type.clone(),
            redirect_uris: view.redirect_uris.clone(),
            human_email: view.human_email.clone(),
            human_id: view.human_id.clone(),
        }
    }
}

/// The agents of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    /// Sorted by id.
    pub agents: Vec<Agent>,
}

/// An agent with its caps and its standing on each server.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDetail {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// The admin's caps, by server.
    pub caps: Vec<Cap>,
    /// The servers on which it holds a live session.
    pub servers: Vec<AgentServer>,
}

/// An admin's cap on an agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cap {
    /// The server's key (absent if the server no longer exists).
    pub server_key: Option<String>,
    /// The server's id.
    pub server_id: String,
    /// The highest level the agent may use there.
    pub max_trust_level: TrustLevel,
}

/// An agent's standing on one server.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentServer {
    /// The server's key (absent if the server no longer exists).
    pub server_key: Option<String>,
    /// The server's id.
    pub server_id: String,
    /// The highest level consented in a live session.
    pub consented: TrustLevel,
    /// The human's grant ceiling, if the grant is in force.
    pub grant: Option<TrustLevel>,
    /// The admin's cap, if any.
    pub cap: Option<TrustLevel>,
    /// What a call may use: the least of consent, grant and cap; absent without a grant.
    pub effective: Option<TrustLevel>,
    /// Its live sessions there.
    pub session_ids: Vec<String>,
}

impl AgentDetail {
    fn new(view: AgentView, keys: &BTreeMap<String, String>) -> Self {
        AgentDetail {
            agent: Agent::from(&view),
            caps: view
                .caps
                .into_iter()
                .map(|(server_id, level)| Cap {
                    server_key: keys.get(&server_id).cloned(),
                    server_id,
                    max_trust_level: level.into(),
                })
                .collect(),
            servers: view
                .servers
                .into_iter()
                .map(|server| AgentServer {
                    server_key: server.server_key,
                    server_id: server.server_id,
                    consented: server.consented.into(),
                    grant: server.grant.map(Into::into),
                    cap: server.cap.map(Into::into),
                    effective: server.effective.map(Into::into),
                    session_ids: server.session_ids,
                })
                .collect(),
        }
    }
}

/// An OAuth client to pre-register: a public client (PKCE, no secret) with a generated
/// client id, for MCP clients configured with a fixed client id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    /// Display name, shown on the consent page and in the Agents list (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200, example = "Acme CLI")]
    pub name: String,
    /// The client's home page: `https:`, or `http:` on loopback.
    pub uri: Option<String>,
    /// 1 to 10 redirect URIs, checked as in dynamic registration: `https:` and private-use
    /// schemes (`cursor://…`) match exactly; `http:` only on loopback, matched on any port.
    #[schema(min_items = 1, max_items = 10, example = json!(["http://127.0.0.1/callback"]))]
    pub redirect_uris: Vec<String>,
}

/// Pre-registers an OAuth client: an agent with a generated `client_id` and the given
/// redirect URIs. It authorizes with PKCE as a public client, like a registered one.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/agents",
    tag = "agents",
    operation_id = "register_agent",
    params(("host" = String, Path, description = "The host's id")),
    request_body = RegisterAgentRequest,
    responses((status = 201, description = "Registered", body = AgentDetail))
)]
pub async fn register(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(request): ApiJson<RegisterAgentRequest>,
) -> Result<Created<AgentDetail>, ApiError> {
    let agent = flows::preregister_client(
        &state,
        &admin.principal,
        &admin.context,
        admin.key(),
        &host,
        PreRegistration {
            name: request.name,
            uri: request.uri.unwrap_or_default(),
            redirect_uris: request.redirect_uris,
        },
    )
    .await?;
    let keys = server_keys(&state, &admin, &host).await?;
    Ok(Created(AgentDetail::new(agent, &keys)))
}

/// A cap on an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCapRequest {
    /// The highest level the agent may use on the server, whatever was consented.
    pub max_trust_level: TrustLevel,
}

/// Server ids to keys, for the host's live servers.
async fn server_keys(
    state: &ApiState,
    admin: &Admin,
    host: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(state
        .control
        .list_servers(&admin.principal, host)
        .await?
        .into_iter()
        .map(|server| (server.server_id, server.key))
        .collect())
}

/// Lists the host's agents.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/agents",
    tag = "agents",
    operation_id = "list_agents",
    params(("host" = String, Path, description = "The host's id")),
    responses((status = 200, description = "The host's agents", body = AgentList))
)]
pub async fn list(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<AgentList>, ApiError> {
    let agents = state
        .control
        .list_agents(&admin.principal, &host, None)
        .await?;
    Ok(Json(AgentList {
        agents: agents.iter().map(Agent::from).collect(),
    }))
}

/// One agent, with its caps and its standing on each server.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/agents/{agent_id}",
    tag = "agents",
    operation_id = "get_agent",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("agent_id" = String, Path, description = "The agent's id"),
    ),
    responses((status = 200, description = "The agent", body = AgentDetail))
)]
pub async fn get(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, agent_id)): ApiPath<(String, String)>,
) -> Result<Json<AgentDetail>, ApiError> {
    let agent = state
        .control
        .get_agent(&admin.principal, &host, &agent_id)
        .await?;
    let keys = server_keys(&state, &admin, &host).await?;
    Ok(Json(AgentDetail::new(agent, &keys)))
}

/// Deletes an agent and revokes all its sessions.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/agents/{agent_id}",
    tag = "agents",
    operation_id = "delete_agent",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("agent_id" = String, Path, description = "The agent's id"),
    ),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, agent_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .delete_agent(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &agent_id,
        )
        .await?;
    Ok(no_content())
}

/// Caps what the agent may use on a server, whatever its human consented.
#[utoipa::path(
    put,
    path = "/api/v1/hosts/{host}/agents/{agent_id}/servers/{server_key}",
    tag = "agents",
    operation_id = "cap_agent",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("agent_id" = String, Path, description = "The agent's id"),
        ("server_key" = String, Path, description = "The server's key"),
    ),
    request_body = PutCapRequest,
    responses((status = 200, description = "The agent as capped", body = AgentDetail))
)]
pub async fn put_cap(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, agent_id, server_key)): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<PutCapRequest>,
) -> Result<Json<AgentDetail>, ApiError> {
    let server = state
        .control
        .find_server_by_key(&admin.principal, &host, &server_key)
        .await?;
    let agent = state
        .control
        .put_agent_cap(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &agent_id,
            &server.server_id,
            request.max_trust_level.into(),
        )
        .await?;
    let keys = server_keys(&state, &admin, &host).await?;
    Ok(Json(AgentDetail::new(agent, &keys)))
}

/// Revokes the agent on a server: every session it holds there ends (its human may consent
/// again later; a cap stays).
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/agents/{agent_id}/servers/{server_key}",
    tag = "agents",
    operation_id = "revoke_agent_server",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("agent_id" = String, Path, description = "The agent's id"),
        ("server_key" = String, Path, description = "The server's key"),
    ),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke_server(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, agent_id, server_key)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let server = state
        .control
        .find_server_by_key(&admin.principal, &host, &server_key)
        .await?;
    state
        .control
        .revoke_agent_server(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &agent_id,
            &server.server_id,
        )
        .await?;
    Ok(no_content())
}
