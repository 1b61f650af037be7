//! `/api/v1/hosts/{host}/servers`: discover an upstream, import it, list, get, change, delete
//! and refresh servers (addressed by key), and add, change and remove their tools.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_commands::control::{
    HostView, NewTool, RefreshReport, ServerDetailsPatch, ServerView, UpstreamOAuthInput,
};
use portcullis_domain::server::ToolOverride;
use portcullis_projector::models;
use portcullis_upstream::{DiscoveredTool, Discovery, Secret};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson, ApiPath};
use super::types::{Created, TrustLevel, no_content};
use crate::flows::{self, DiscoverOutcome, ImportRequest};
use crate::upstream_oauth::Start;
use crate::{ApiError, ApiState};

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

/// An imported server and its tools.
#[derive(Debug, Serialize, ToSchema)]
pub struct Server {
    /// Its key: URL-safe, unique in the host; addresses it in this API and in its MCP URL.
    pub key: String,
    /// Its internal id.
    pub id: String,
    /// The upstream MCP URL.
    pub url: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The server's own MCP URL at the gateway, `<host>/mcp/<key>`.
    pub mcp_url: String,
    /// How the gateway authenticates upstream (never the secret).
    pub upstream_auth: UpstreamAuth,
    /// How long the data plane waits for the upstream's response head, in seconds; `null`
    /// means the data plane's global default (`--upstream-timeout`).
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_seconds: Option<u64>,
    /// Its tools, sorted by name.
    pub tools: Vec<Tool>,
}

impl Server {
    /// The wire form of a server view of `host`.
    pub fn new(view: ServerView, host: &HostView, state: &ApiState) -> Self {
        Server {
            mcp_url: state
                .public_urls
                .server_mcp_url(&host.host_id, host.is_default, &view.key),
            key: view.key,
            id: view.server_id,
            url: view.url,
            name: view.name,
            description: view.description,
            upstream_auth: view.upstream_auth.into(),
            timeout_seconds: view.timeout_seconds,
            tools: view
                .tools
                .into_iter()
                .map(|(name, tool)| Tool::new(name, tool))
                .collect(),
        }
    }
}

/// How the gateway authenticates to an upstream.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamAuth {
    /// `none`, or `oauth` with a pre-registered client.
    pub kind: UpstreamAuthKind,
    /// The OAuth client id (`oauth` only).
    pub client_id: Option<String>,
    /// The id of the master key that sealed the client secret (`oauth` only).
    pub key_id: Option<String>,
}

/// How the gateway authenticates to an upstream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamAuthKind {
    /// No authentication.
    None,
    /// OAuth.
    Oauth,
}

impl From<models::UpstreamAuth> for UpstreamAuth {
    fn from(auth: models::UpstreamAuth) -> Self {
        match auth {
            models::UpstreamAuth::None => UpstreamAuth {
                kind: UpstreamAuthKind::None,
                client_id: None,
                key_id: None,
            },
            models::UpstreamAuth::Oauth { client_id, key_id } => UpstreamAuth {
                kind: UpstreamAuthKind::Oauth,
                client_id: Some(client_id),
                key_id: Some(key_id),
            },
        }
    }
}

/// One tool of a server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Lower-case hex SHA-256 of its canonical input schema (empty for a tool added by hand
    /// without one).
    pub input_schema_sha256: String,
    /// The trust level a caller needs.
    pub trust_level: TrustLevel,
    /// Disabled tools are never callable.
    pub enabled: bool,
    /// How the trust level was decided.
    pub classification: Classification,
}

impl Tool {
    fn new(name: String, tool: models::Tool) -> Self {
        Tool {
            name,
            description: tool.description,
            input_schema_sha256: tool.input_schema_sha256,
            trust_level: tool.trust_level.into(),
            enabled: tool.enabled,
            classification: tool.classification.into(),
        }
    }
}

/// How a tool's trust level was decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct Classification {
    /// `auto` (by the classifier) or `admin_override`.
    pub kind: ClassificationKind,
    /// The name keyword that matched (`auto` only; empty when none did).
    pub matched_keyword: Option<String>,
    /// The classifier's explanation (`auto` only).
    pub reason: Option<String>,
}

/// Who decided a tool's trust level.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationKind {
    /// The classifier.
    Auto,
    /// An admin.
    AdminOverride,
}

impl From<models::Classification> for Classification {
    fn from(classification: models::Classification) -> Self {
        match classification {
            models::Classification::Auto {
                matched_keyword,
                reason,
            } => Classification {
                kind: ClassificationKind::Auto,
                matched_keyword: Some(matched_keyword),
                reason: Some(reason),
            },
            models::Classification::AdminOverride => Classification {
                kind: ClassificationKind::AdminOverride,
                matched_keyword: None,
                reason: None,
            },
        }
    }
}

/// The servers of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    /// Sorted by key.
    pub servers: Vec<Server>,
}

/// What a refresh changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResult {
    /// The server after the refresh.
    pub server: Server,
    /// Tools that appeared upstream.
    pub added: Vec<String>,
    /// Tools whose description, schema or automatic level changed (admin overrides kept).
    pub changed: Vec<String>,
    /// Tools the upstream no longer lists (removed).
    pub removed: Vec<String>,
}

/// An upstream to discover.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The upstream's MCP (Streamable HTTP) URL.
    #[schema(example = "https://mcp.example.com/mcp")]
    pub url: String,
    /// A client registered by hand at the upstream's authorization server, for an upstream
    /// that wants OAuth and offers no dynamic client registration.
    pub oauth: Option<OAuthClient>,
}

/// What discovery found: the upstream's tools, or that it wants OAuth first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DiscoverResult {
    /// The upstream answered; its tools with suggested trust levels.
    Discovered {
        /// The URL discovered.
        url: String,
        /// The MCP protocol version the upstream chose.
        protocol_version: String,
        /// The upstream's self-description.
        server: UpstreamInfo,
        /// The upstream's instructions, if any.
        instructions: Option<String>,
        /// Every tool, in the upstream's order.
        tools: Vec<DiscoveredToolInfo>,
    },
    /// The upstream wants an OAuth access token: open `authorization_url` in a browser; the
    /// authorization server sends it back to `/api/v1/upstream-oauth/callback`, which answers
    /// with the `authorization` to import with.
    AuthorizationRequired {
        /// The URL discovered.
        url: String,
        /// Its RFC 9728 protected-resource metadata URL, if it gave one.
        resource_metadata: Option<String>,
        /// Where the admin authorizes the gateway (absent when the deployment cannot run the
        /// browser flow; `message` says why).
        authorization_url: Option<String>,
        /// Why there is no `authorization_url`.
        message: Option<String>,
    },
}

/// An upstream's `serverInfo`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamInfo {
    /// `name` (empty if it sent none).
    pub name: String,
    /// `version`.
    pub version: Option<String>,
    /// `title`.
    pub title: Option<String>,
}

/// A discovered tool with the classifier's suggestion.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredToolInfo {
    /// The tool's name.
    pub name: String,
    /// Its title, if any.
    pub title: Option<String>,
    /// Its description, if any.
    pub description: Option<String>,
    /// Its `inputSchema` as sent.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    /// Lower-case hex SHA-256 of the canonical input schema.
    pub input_schema_sha256: String,
    /// The upstream's annotations (hints, untrusted).
    pub annotations: Option<Annotations>,
    /// The trust level the classifier suggests.
    pub suggested_trust_level: TrustLevel,
    /// The name keyword behind the suggestion, if any.
    pub matched_keyword: Option<String>,
    /// Why the classifier chose the level.
    pub classification_reason: String,
}

/// MCP tool annotations: hints from the upstream, untrusted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Annotations {
    /// `title`.
    pub title: Option<String>,
    /// `readOnlyHint`.
    pub read_only_hint: Option<bool>,
    /// `destructiveHint`.
    pub destructive_hint: Option<bool>,
    /// `idempotentHint`.
    pub idempotent_hint: Option<bool>,
    /// `openWorldHint`.
    pub open_world_hint: Option<bool>,
}

impl From<DiscoveredTool> for DiscoveredToolInfo {
    fn from(tool: DiscoveredTool) -> Self {
        DiscoveredToolInfo {
            name: tool.name,
            title: tool.title,
            description: tool.description,
            input_schema: tool.input_schema,
            input_schema_sha256: tool.input_schema_sha256,
            annotations: tool.annotations.map(|a| Annotations {
                title: a.title,
                read_only_hint: a.read_only_hint,
                destructive_hint: a.destructive_hint,
                idempotent_hint: a.idempotent_hint,
                open_world_hint: a.open_world_hint,
            }),
            suggested_trust_level: tool.suggested_level.into(),
            matched_keyword: tool.matched_keyword.map(str::to_owned),
            classification_reason: tool.classification_reason,
        }
    }
}

impl From<Discovery> for DiscoverResult {
    fn from(discovery: Discovery) -> Self {
        DiscoverResult::Discovered {
            url: discovery.url,
            protocol_version: discovery.protocol_version,
            server: UpstreamInfo {
                name: discovery.server.name,
                version: discovery.server.version,
                title: discovery.server.title,
            },
            instructions: discovery.instructions,
            tools: discovery.tools.into_iter().map(Into::into).collect(),
        }
    }
}

/// A server to import: its upstream is discovered, then recorded with the admin's choices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportServerRequest {
    /// The upstream's MCP (Streamable HTTP) URL.
    #[schema(max_length = 2048, example = "https://mcp.example.com/mcp")]
    pub url: String,
    /// Key in the host (1 to 48 of `a-z`, `0-9`, `-`, `_`, starting with a letter or digit);
    /// derived from the name (else the URL) when absent, numbered if taken.
    #[schema(min_length = 1, max_length = 48, pattern = "^[a-z0-9][a-z0-9_-]*$")]
    pub key: Option<String>,
    /// Display name; the upstream's when absent.
    pub name: Option<String>,
    /// Description; the upstream's when absent.
    pub description: Option<String>,
    /// Choices about discovered tools (others keep the suggested level, enabled).
    pub tools: Option<Vec<ToolChoice>>,
    /// A pre-registered OAuth client for the upstream.
    pub oauth: Option<OAuthClient>,
    /// The `authorization` the upstream OAuth callback answered with (for this host, URL
    /// and admin token): the upstream is discovered with its token, and its client (secret
    /// sealed) is recorded with the server. Excludes `oauth`.
    #[schema(format = Password)]
    pub authorization: Option<String>,
    /// How long the data plane waits for the upstream's response head, in seconds (1 to
    /// 3600); the data plane's global default (`--upstream-timeout`) when absent.
    #[schema(minimum = 1, maximum = 3600, example = 120)]
    pub timeout_seconds: Option<u64>,
}

/// An admin's choice about one discovered tool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolChoice {
    /// The discovered tool's name.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    /// Its trust level (an admin override of the suggestion).
    pub trust_level: Option<TrustLevel>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
}

/// A pre-registered OAuth client of the upstream.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: String,
    /// The client secret (sealed at once, never returned).
    #[schema(format = Password)]
    pub client_secret: String,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A change to a server's details; absent fields keep their values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateServerRequest {
    /// New display name (1 to 100 characters, trimmed).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// New description (at most 2000 characters).
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// New upstream timeout: how long the data plane waits for the upstream's response
    /// head, in seconds (1 to 3600).
    #[schema(minimum = 1, maximum = 3600, example = 120)]
    pub timeout_seconds: Option<u64>,
    /// `true`: back to the data plane's global default timeout. Refused together with
    /// `timeout_seconds`.
    pub clear_timeout: Option<bool>,
}

/// A tool added by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToolRequest {
    /// Its name, as the upstream calls it (no whitespace).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The trust level a caller needs.
    pub trust_level: TrustLevel,
}

/// An admin's override of a tool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateToolRequest {
    /// The trust level a caller needs.
    pub trust_level: Option<TrustLevel>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// Connects to an upstream and lists its tools with suggested trust levels, without recording
/// anything.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/servers/discover",
    tag = "servers",
    operation_id = "discover_server",
    params(("host" = String, Path, description = "The host's id")),
    request_body = DiscoverRequest,
    responses(
        (status = 200, description = "The upstream's tools, or `authorization_required` with the URL where the admin authorizes the gateway", body = DiscoverResult),
        (status = 422, description = "The upstream cannot be reached, timed out, or is not an MCP server (`details.reason` says which)", body = super::types::ErrorBody),
    )
)]
pub async fn discover(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(request): ApiJson<DiscoverRequest>,
) -> Result<Json<DiscoverResult>, ApiError> {
    let oauth = request.oauth.map(|oauth| UpstreamOAuthInput {
        client_id: oauth.client_id,
        client_secret: oauth.client_secret,
    });
    let outcome = flows::discover(&state, &admin.principal, &host, &request.url, oauth).await?;
    Ok(Json(match outcome {
        DiscoverOutcome::Discovered(discovery) => discovery.into(),
        DiscoverOutcome::AuthorizationRequired {
            url,
            resource_metadata,
            start,
        } => {
            let (authorization_url, message) = match start {
                Start::Browser { authorization_url } => (Some(authorization_url), None),
                Start::Unavailable { message } => (None, Some(message)),
            };
            DiscoverResult::AuthorizationRequired {
                url,
                resource_metadata,
                authorization_url,
                message,
            }
        }
    }))
}

/// Imports a server: discovers its upstream and records it with the admin's choices.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/servers",
    tag = "servers",
    operation_id = "import_server",
    params(("host" = String, Path, description = "The host's id")),
    request_body = ImportServerRequest,
    responses(
        (status = 201, description = "Imported", body = Server),
        (status = 422, description = "The upstream cannot be reached, timed out, wants OAuth, or is not an MCP server (`details.reason` says which)", body = super::types::ErrorBody),
    )
)]
pub async fn import(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(request): ApiJson<ImportServerRequest>,
) -> Result<Created<Server>, ApiError> {
    let host = state.control.get_host(&admin.principal, &host).await?;
    let import = ImportRequest {
        url: request.url,
        key: request.key,
        name: request.name,
        description: request.description,
        tools: request
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(|choice| ToolOverride {
                name: choice.name,
                trust_level: choice.trust_level.map(Into::into),
                enabled: choice.enabled,
            })
            .collect(),
        oauth: request.oauth.map(|oauth| UpstreamOAuthInput {
            client_id: oauth.client_id,
            client_secret: oauth.client_secret,
        }),
        authorization: request.authorization.map(Secret::new),
        timeout_seconds: request.timeout_seconds,
    };
    let server = flows::import(
        &state,
        &admin.principal,
        &admin.context,
        admin.key(),
        &host.host_id,
        import,
    )
    .await?;
    Ok(Created(Server::new(server, &host, &state)))
}

/// Lists the host's servers.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/servers",
    tag = "servers",
    operation_id = "list_servers",
    params(("host" = String, Path, description = "The host's id")),
    responses((status = 200, description = "The host's servers", body = ServerList))
)]
pub async fn list(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<ServerList>, ApiError> {
    let host = state.control.get_host(&admin.principal, &host).await?;
    let mut servers = state
        .control
        .list_servers(&admin.principal, &host.host_id)
        .await?;
    servers.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Json(ServerList {
        servers: servers
            .into_iter()
            .map(|server| Server::new(server, &host, &state))
            .collect(),
    }))
}

/// The host and the server with `key` in it.
async fn host_and_server(
    state: &ApiState,
    admin: &Admin,
    host: &str,
    key: &str,
) -> Result<(HostView, ServerView), ApiError> {
    let host = state.control.get_host(&admin.principal, host).await?;
    let server = state
        .control
        .find_server_by_key(&admin.principal, &host.host_id, key)
        .await?;
    Ok((host, server))
}

/// One server.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/servers/{key}",
    tag = "servers",
    operation_id = "get_server",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
    ),
    responses((status = 200, description = "The server", body = Server))
)]
pub async fn get(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key)): ApiPath<(String, String)>,
) -> Result<Json<Server>, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    Ok(Json(Server::new(server, &host, &state)))
}

/// Changes a server's name, description and/or upstream timeout.
#[utoipa::path(
    patch,
    path = "/api/v1/hosts/{host}/servers/{key}",
    tag = "servers",
    operation_id = "update_server",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
    ),
    request_body = UpdateServerRequest,
    responses((status = 200, description = "The server as changed", body = Server))
)]
pub async fn update(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<UpdateServerRequest>,
) -> Result<Json<Server>, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    let server = state
        .control
        .update_server(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host.host_id,
            &server.server_id,
            ServerDetailsPatch {
                name: request.name,
                description: request.description,
                timeout_seconds: request.timeout_seconds,
                clear_timeout: request.clear_timeout.unwrap_or(false),
            },
        )
        .await?;
    Ok(Json(Server::new(server, &host, &state)))
}

/// Deletes a server: every grant and session on it is revoked, and its key is freed.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/servers/{key}",
    tag = "servers",
    operation_id = "delete_server",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
    ),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    state
        .control
        .delete_server(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host.host_id,
            &server.server_id,
        )
        .await?;
    Ok(no_content())
}

/// Discovers the server's upstream again and records what changed (admin overrides kept).
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/servers/{key}/refresh",
    tag = "servers",
    operation_id = "refresh_server",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
    ),
    responses(
        (status = 200, description = "What changed", body = RefreshResult),
        (status = 422, description = "The upstream cannot be reached, timed out, wants OAuth, or is not an MCP server (`details.reason` says which)", body = super::types::ErrorBody),
    )
)]
pub async fn refresh(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key)): ApiPath<(String, String)>,
) -> Result<Json<RefreshResult>, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    let RefreshReport {
        server,
        added,
        changed,
        removed,
    } = flows::refresh(
        &state,
        &admin.principal,
        &admin.context,
        admin.key(),
        &host.host_id,
        &server,
    )
    .await?;
    Ok(Json(RefreshResult {
        server: Server::new(server, &host, &state),
        added,
        changed,
        removed,
    }))
}

/// The named tool of a server view, or `NotFound`.
fn tool_of(server: ServerView, name: &str) -> Result<Tool, ApiError> {
    let mut tools = server.tools;
    tools
        .remove(name)
        .map(|tool| Tool::new(name.to_owned(), tool))
        .ok_or_else(|| portcullis_commands::control::ControlError::not_found("tool", name).into())
}

/// Adds a tool by hand (its level is an admin override).
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/servers/{key}/tools",
    tag = "servers",
    operation_id = "add_tool",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
    ),
    request_body = AddToolRequest,
    responses((status = 201, description = "Added", body = Tool))
)]
pub async fn add_tool(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<AddToolRequest>,
) -> Result<Created<Tool>, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    let name = request.name.clone();
    let tool = NewTool {
        name: request.name,
        description: request.description.unwrap_or_default(),
        input_schema_sha256: Vec::new(),
        trust_level: request.trust_level.into(),
        classification: None,
    };
    let server = state
        .control
        .add_tool(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host.host_id,
            &server.server_id,
            tool,
        )
        .await?;
    Ok(Created(tool_of(server, &name)?))
}

/// Overrides a tool's trust level and/or enables or disables it.
#[utoipa::path(
    patch,
    path = "/api/v1/hosts/{host}/servers/{key}/tools/{tool}",
    tag = "servers",
    operation_id = "update_tool",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
        ("tool" = String, Path, description = "The tool's name"),
    ),
    request_body = UpdateToolRequest,
    responses((status = 200, description = "The tool as changed", body = Tool))
)]
pub async fn update_tool(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key, tool)): ApiPath<(String, String, String)>,
    ApiJson(request): ApiJson<UpdateToolRequest>,
) -> Result<Json<Tool>, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    let server = state
        .control
        .update_tool(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host.host_id,
            &server.server_id,
            &tool,
            request.trust_level.map(Into::into),
            request.enabled,
        )
        .await?;
    Ok(Json(tool_of(server, &tool)?))
}

/// Removes a tool.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/servers/{key}/tools/{tool}",
    tag = "servers",
    operation_id = "remove_tool",
    params(
        ("host" = String, Path, description = "The host's id"),
        ("key" = String, Path, description = "The server's key"),
        ("tool" = String, Path, description = "The tool's name"),
    ),
    responses((status = 204, description = "Removed"))
)]
pub async fn remove_tool(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, key, tool)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (host, server) = host_and_server(&state, &admin, &host, &key).await?;
    state
        .control
        .remove_tool(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host.host_id,
            &server.server_id,
            &tool,
        )
        .await?;
    Ok(no_content())
}
