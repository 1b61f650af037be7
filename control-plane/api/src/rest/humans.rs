//! `/api/v1/hosts/{host}/humans`: pre-authorize humans by email, list them, see one with
//! their grants and agents, remove them, and put or revoke their grants (by server key).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_commands::control::{ControlError, HumanView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson, ApiPath};
use super::types::{Created, TrustLevel, no_content};
use crate::{ApiError, ApiState};

/// A human of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct Human {
    /// Normalized email; addresses the human in this API.
    pub email: String,
    /// Their internal id.
    pub id: String,
    /// Added by an admin before their first sign-in.
    pub pre_authorized: bool,
}

impl From<HumanView> for Human {
    fn from(view: HumanView) -> Self {
        Human {
            email: view.email,
            id: view.human_id,
            pre_authorized: view.pre_authorized,
        }
    }
}

/// The humans of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct HumanList {
    /// Sorted by email.
    pub humans: Vec<Human>,
}

/// A human with their grants and the agents they connected.
#[derive(Debug, Serialize, ToSchema)]
pub struct HumanDetail {
    /// Normalized email.
    pub email: String,
    /// Their internal id.
    pub id: String,
    /// Added by an admin before their first sign-in.
    pub pre_authorized: bool,
    /// Their grants, sorted by server key.
    pub grants: Vec<Grant>,
    /// Agents they registered or hold a live session with.
    pub agents: Vec<ConnectedAgent>,
    /// Their latest authorization decisions (at most `RECENT_ACTIVITY`), newest first.
    pub recent_activity: Vec<super::audit::AuditRecord>,
}

/// How many audit records a human's detail shows.
pub const RECENT_ACTIVITY: usize = 10;

/// What a human may delegate on one server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Grant {
    /// The server's key (absent if the server no longer exists).
    pub server_key: Option<String>,
    /// The server's id.
    pub server_id: String,
    /// The highest level the human may delegate to an agent.
    pub max_trust_level: TrustLevel,
}

/// An agent a human connected.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAgent {
    /// The agent's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its OAuth client id.
    pub client_id: String,
}

/// A human to pre-authorize.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHumanRequest {
    /// Their email (normalized: trimmed, lower-cased).
    #[schema(format = Email, min_length = 3, max_length = 254, example = "ada@example.com")]
    pub email: String,
}

/// A grant's ceiling.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGrantRequest {
    /// The highest level the human may delegate to an agent on the server.
    pub max_trust_level: TrustLevel,
}

/// Pre-authorizes a human by email.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/humans",
    tag = "humans",
    operation_id = "add_human",
    params(("host" = String, Path, description = "The host's id")),
    request_body = AddHumanRequest,
    responses((status = 201, description = "Added", body = Human))
)]
pub async fn add(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(request): ApiJson<AddHumanRequest>,
) -> Result<Created<Human>, ApiError> {
    let human = state
        .control
        .add_human(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &request.email,
        )
        .await?;
    Ok(Created(human.into()))
}

/// Lists the host's humans.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/humans",
    tag = "humans",
    operation_id = "list_humans",
    params(("host" = String, Path, description = "The host's id")),
    responses((status = 200, description = "The host's humans", body = HumanList))
)]
pub async fn list(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<HumanList>, ApiError> {
    let mut humans = state.control.list_humans(&admin.principal, &host).await?;
    humans.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(Json(HumanList {
        humans: humans.into_iter().map(Human::from).collect(),
    }))
}

/// One human, with their grants and the agents they connected.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/humans/{email}",
    tag = "humans",
    operation_id = "get_human",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("email" = String, Path, description = "The human's email (any case)"),
    ),
    responses((status = 200, description = "The human", body = HumanDetail))
)]
pub async fn get(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, email)): ApiPath<(String, String)>,
) -> Result<Json<HumanDetail>, ApiError> {
    let principal = &admin.principal;
    let human = state
        .control
        .find_human_by_email(principal, &host, &email)
        .await?;
    let detail = state
        .control
        .get_human(principal, &host, &human.human_id)
        .await?;
    let keys: BTreeMap<String, String> = state
        .control
        .list_servers(principal, &host)
        .await?
        .into_iter()
        .map(|server| (server.server_id, server.key))
        .collect();
    let mut grants: Vec<Grant> = detail
        .grants
        .into_iter()
        .map(|grant| Grant {
            server_key: keys.get(&grant.server_id).cloned(),
            server_id: grant.server_id,
            max_trust_level: grant.max_trust_level.into(),
        })
        .collect();
    grants.sort_by(|a, b| (&a.server_key, &a.server_id).cmp(&(&b.server_key, &b.server_id)));
    let mut agents = Vec::with_capacity(detail.agent_ids.len());
    for agent_id in &detail.agent_ids {
        match state.control.get_agent(principal, &host, agent_id).await {
            Ok(agent) => agents.push(ConnectedAgent {
                id: agent.agent_id,
                name: agent.name,
                client_id: agent.client_id,
            }),
            // Deleted meanwhile, or an id the read model cannot hold: not connected.
            Err(ControlError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let recent_activity = match &state.audit {
        Some(audit) => {
            let filter = portcullis_store::AuditFilter {
                human_id: Some(detail.human.human_id.clone()),
                ..portcullis_store::AuditFilter::host(host.clone())
            };
            audit
                .query(filter, RECENT_ACTIVITY, None)
                .await
                .map_err(ControlError::unavailable)?
                .records
                .into_iter()
                .map(super::audit::record)
                .collect()
        }
        None => Vec::new(),
    };
    Ok(Json(HumanDetail {
        email: detail.human.email,
        id: detail.human.human_id,
        pre_authorized: detail.human.pre_authorized,
        grants,
        agents,
        recent_activity,
    }))
}

/// Removes a human: every grant and session of theirs is revoked.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/humans/{email}",
    tag = "humans",
    operation_id = "delete_human",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("email" = String, Path, description = "The human's email (any case)"),
    ),
    responses((status = 204, description = "Removed"))
)]
pub async fn delete(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, email)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let human = state
        .control
        .find_human_by_email(&admin.principal, &host, &email)
        .await?;
    state
        .control
        .delete_human(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &human.human_id,
        )
        .await?;
    Ok(no_content())
}

/// Grants a human a ceiling on a server, or changes it.
#[utoipa::path(
    put,
    path = "/api/v1/hosts/{host}/humans/{email}/grants/{server_key}",
    tag = "humans",
    operation_id = "put_grant",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("email" = String, Path, description = "The human's email (any case)"),
        ("server_key" = String, Path, description = "The server's key"),
    ),
    request_body = PutGrantRequest,
    responses((status = 200, description = "The grant", body = Grant))
)]
pub async fn put_grant(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, email, server_key)): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<PutGrantRequest>,
) -> Result<Json<Grant>, ApiError> {
    let human = state
        .control
        .find_human_by_email(&admin.principal, &host, &email)
        .await?;
    let server = state
        .control
        .find_server_by_key(&admin.principal, &host, &server_key)
        .await?;
    let grant = state
        .control
        .put_grant(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &human.human_id,
            &server.server_id,
            request.max_trust_level.into(),
        )
        .await?;
    Ok(Json(Grant {
        server_key: Some(server.key),
        server_id: grant.server_id,
        max_trust_level: grant.max_trust_level.into(),
    }))
}

/// Revokes a human's grant on a server (and so their agents' access to it).
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/humans/{email}/grants/{server_key}",
    tag = "humans",
    operation_id = "delete_grant",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("email" = String, Path, description = "The human's email (any case)"),
        ("server_key" = String, Path, description = "The server's key"),
    ),
    responses((status = 204, description = "Revoked"))
)]
pub async fn delete_grant(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, email, server_key)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let human = state
        .control
        .find_human_by_email(&admin.principal, &host, &email)
        .await?;
    let server = state
        .control
        .find_server_by_key(&admin.principal, &host, &server_key)
        .await?;
    state
        .control
        .delete_grant(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &human.human_id,
            &server.server_id,
        )
        .await?;
    Ok(no_content())
}
