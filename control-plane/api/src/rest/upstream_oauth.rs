//! `/api/v1/upstream-oauth/callback`: where an upstream's authorization server sends the
//! admin's browser back. No bearer token (a browser redirect cannot carry one): the sealed
//! `state` is the proof (`crate::upstream_oauth`). Answers with the `authorization` to import
//! the upstream with, never with a token or a client secret.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::servers::{DiscoveredToolInfo, UpstreamInfo};
use crate::{ApiError, ApiState, upstream_oauth};

/// The upstream is authorized: import it with `authorization`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamAuthorized {
    /// Always `authorized`.
    #[schema(example = "authorized")]
    pub status: String,
    /// The host the upstream is to be imported into.
    pub host: String,
    /// The upstream MCP URL.
    pub url: String,
    /// Pass as `authorization` to `POST /api/v1/hosts/{host}/servers` (same host, URL and
    /// admin token), before `expires_at`. Sealed: it reveals nothing.
    pub authorization: String,
    /// When `authorization` expires (RFC 3339).
    pub expires_at: String,
    /// The upstream's self-description.
    pub server: UpstreamInfo,
    /// The upstream's tools, as discovered with the new token.
    pub tools: Vec<DiscoveredToolInfo>,
}

/// The upstream's authorization server redirects the admin's browser here after the admin
/// authorized the gateway (see `discover_server`'s `authorization_url`).
#[utoipa::path(
    get,
    path = "/api/v1/upstream-oauth/callback",
    tag = "servers",
    operation_id = "upstream_oauth_callback",
    security(()),
    params(
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("state" = Option<String>, Query, description = "The state the gateway sent (sealed)"),
        ("iss" = Option<String>, Query, description = "The authorization server's issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "The OAuth error, when authorization was refused"),
        ("error_description" = Option<String>, Query, description = "The error's text"),
    ),
    responses(
        (status = 200, description = "Authorized: import with `authorization`", body = UpstreamAuthorized),
        (status = 400, description = "The state is missing, forged, tampered with or expired, or the callback does not match the authorization", body = super::types::ErrorBody),
        (status = 422, description = "The authorization server refused, or the token exchange or discovery with the token failed", body = super::types::ErrorBody),
    )
)]
pub async fn callback(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let completed = upstream_oauth::complete(&state, query.as_deref().unwrap_or_default()).await?;
    let discovery = completed.discovery;
    let body = UpstreamAuthorized {
        status: "authorized".to_owned(),
        host: completed.binding.host_id,
        url: completed.binding.url,
        authorization: completed.handle,
        expires_at: humantime::format_rfc3339_seconds(completed.handle_expires_at).to_string(),
        server: UpstreamInfo {
            name: discovery.server.name,
            version: discovery.server.version,
            title: discovery.server.title,
        },
        tools: discovery.tools.into_iter().map(Into::into).collect(),
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}
