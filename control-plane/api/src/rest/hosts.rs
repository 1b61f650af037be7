//! `/api/v1/hosts`: create, list, get, change settings, delete, the ready-to-copy client
//! configuration of a host, and its token-signing keys (list, rotate, retire).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_commands::control::{
    ControlError, CreateHost, HostSettingsPatch, HostView, ServerView, SigningKeyView,
};
use portcullis_projector::models::HostSettings;
use portcullis_proto::events::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use super::types::{Created, ToolVisibility, no_content};
use crate::public_urls::client_snippets;
use crate::{ApiError, ApiState, PublicUrls};

/// A host: one subdomain of the gateway with its own servers, humans and agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct Host {
    /// The host's id, which is its subdomain, e.g. `acme-pink-panda-6942`.
    pub id: String,
    /// The owning organization.
    pub org_id: String,
    /// The admin-chosen prefix of the id.
    pub prefix: String,
    /// Whether it is its organization's default host.
    pub default: bool,
    /// The MCP URL agents connect to.
    pub mcp_url: String,
    /// Its settings, defaults resolved.
    pub settings: Settings,
    /// What in the settings is probably a mistake, e.g. a sign-in method whose domain rules
    /// no email can satisfy. Empty when nothing looks wrong.
    pub warnings: Vec<String>,
}

impl Host {
    /// The wire form of a host view.
    pub fn new(view: HostView, urls: &PublicUrls) -> Self {
        Host {
            mcp_url: urls.mcp_url(&view.host_id, view.is_default),
            id: view.host_id,
            org_id: view.org_id,
            prefix: view.prefix,
            default: view.is_default,
            warnings: view.settings.auth.warnings(),
            settings: view.settings.into(),
        }
    }
}

/// A host's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Settings {
    /// Whether agents may add MCP servers dynamically.
    pub dynamic_mcps: bool,
    /// Which tools `tools/list` shows an agent.
    pub tool_visibility: ToolVisibility,
    /// Session idle lifetime, seconds.
    pub session_idle_seconds: u64,
    /// Session absolute lifetime, seconds.
    pub session_absolute_seconds: u64,
    /// Browser origins allowed to call the MCP endpoint.
    pub allowed_origins: Vec<String>,
    /// How humans sign in to the consent pages.
    pub auth: AuthSettings,
}

impl From<HostSettings> for Settings {
    fn from(settings: HostSettings) -> Self {
        Settings {
            dynamic_mcps: settings.dynamic_mcps,
            tool_visibility: settings.tool_visibility.into(),
            session_idle_seconds: settings.session_idle_seconds,
            session_absolute_seconds: settings.session_absolute_seconds,
            allowed_origins: settings.allowed_origins,
            auth: settings.auth.into(),
        }
    }
}

/// A host's sign-in methods and email-domain rules. An email may use a method only if its
/// domain is allowed by `allowed_domains` and by that method's own list; an absent list
/// allows every domain; the domain is the one of the address the method verified.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Email and password. Default: on.
    #[serde(default = "on")]
    pub password: bool,
    /// A 6-digit code sent by mail, valid 5 minutes, single use. Default: off.
    #[serde(default)]
    pub email_otp: bool,
    /// Domains every method accepts. Absent: every domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<DomainRule>,
    /// Domains email and password accepts. Absent: every domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_domains: Option<DomainRule>,
    /// Domains the mailed code accepts. Absent: every domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_otp_domains: Option<DomainRule>,
    /// External identity providers (at most 20), in the order the sign-in page offers them.
    /// Each one's callback is `<host base URL>/consent/sso/<id>/callback`; register it at the
    /// provider.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub providers: Vec<Provider>,
    /// Passkeys (WebAuthn, relying party id = the host's domain): a signed-in human may
    /// register one on the consent pages and sign in with it later. Default: off.
    #[serde(default)]
    pub passkeys: bool,
    /// Domains passkey sign-in accepts. Absent: every domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_domains: Option<DomainRule>,
}

/// What an identity provider speaks.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Any OpenID Connect provider (discovery from `issuer`).
    Oidc,
    /// Google (`issuer` overrides `https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (`tenant`, `allowed_tenants`, `authority`).
    Microsoft,
    /// GitHub (OAuth and its REST API; endpoints overridable).
    Github,
    /// SAML 2.0, SP-initiated (`saml_sso_url`, `saml_entity_id`, `saml_certificates`; no
    /// client id or secret). At most one per host.
    Saml,
}

/// An external identity provider humans may sign in with. Identities are keyed by issuer
/// and subject (Microsoft: tenant and object id; GitHub: user id), never by email; only an
/// address the provider vouches for counts (OIDC/Google `email_verified`, Microsoft
/// `xms_edov`, GitHub's verified addresses), and the domain rules are applied to it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Unique in the host: 1 to 32 of `a-z`, `0-9` and `-`, starting with a letter.
    #[schema(example = "okta")]
    pub id: String,
    /// What it speaks.
    pub kind: ProviderKind,
    /// The button's label. Default: the kind's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The OAuth client id the provider issued (not for `saml`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// The client secret (write-only, sealed at rest). Required for a new provider;
    /// absent keeps the stored one of the provider with the same id and kind.
    #[serde(default, skip_serializing)]
    #[schema(write_only)]
    pub client_secret: Option<String>,
    /// Whether a client secret is stored.
    #[serde(default)]
    #[schema(read_only)]
    pub client_secret_set: bool,
    /// `oidc`: the issuer URL (required). `google`: overrides `https://accounts.google.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `microsoft`: a tenant id (GUID), `common` or `organizations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `microsoft`: the tenant ids whose users may sign in; required with `common` and
    /// `organizations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tenants: Vec<String>,
    /// `microsoft`: overrides `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// `github`: overrides `https://github.com/login/oauth/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// `github`: overrides `https://github.com/login/oauth/access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// `github`: overrides `https://api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// Domains this provider accepts (intersected with `allowed_domains`). Absent: every
    /// domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<DomainRule>,
    /// Emails of these domains must sign in with this provider: every other method refuses
    /// them and the sign-in page sends them here. Each must be allowed for this provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub force_redirect_domains: Vec<String>,
    /// `saml`: the IdP's single sign-on URL (HTTP-Redirect binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_sso_url: Option<String>,
    /// `saml`: the IdP's entity id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_entity_id: Option<String>,
    /// `saml`: the IdP's X.509 signing certificates, PEM (one or more, for rotation). The
    /// service provider's metadata is at `GET /api/v1/hosts/{host}/saml/metadata`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saml_certificates: Vec<String>,
}

fn on() -> bool {
    true
}

/// Email domains, e.g. `["example.com", "bücher.example"]` (stored IDNA-normalized, e.g.
/// `xn--bcher-kva.example`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRule {
    /// The domains (at most 200); an empty list allows nobody.
    #[schema(max_items = 200)]
    pub domains: Vec<String>,
    /// Whether names below a domain (at a label boundary) match too. Default: false.
    #[serde(default)]
    pub include_subdomains: bool,
}

impl From<portcullis_projector::models::AuthSettings> for AuthSettings {
    fn from(auth: portcullis_projector::models::AuthSettings) -> Self {
        let rule = |rule: Option<portcullis_projector::models::DomainRule>| {
            rule.map(|rule| DomainRule {
                domains: rule.domains,
                include_subdomains: rule.include_subdomains,
            })
        };
        use portcullis_projector::models::ProviderKind as Kind;
        let providers = auth
            .providers
            .into_iter()
            .map(|provider| Provider {
                id: provider.id,
                kind: match provider.kind {
                    Kind::Oidc => ProviderKind::Oidc,
                    Kind::Google => ProviderKind::Google,
                    Kind::Microsoft => ProviderKind::Microsoft,
                    Kind::Github => ProviderKind::Github,
                    Kind::Saml => ProviderKind::Saml,
                },
                display_name: provider.display_name,
                client_id: provider.client_id,
                client_secret: None,
                client_secret_set: !provider.secret_key_id.is_empty(),
                issuer: provider.issuer,
                tenant: provider.tenant,
                allowed_tenants: provider.allowed_tenants,
                authority: provider.authority,
                authorization_endpoint: provider.authorization_endpoint,
                token_endpoint: provider.token_endpoint,
                api_base: provider.api_base,
                domains: rule(provider.domains),
                force_redirect_domains: provider.force_redirect_domains,
                saml_sso_url: provider.saml_sso_url,
                saml_entity_id: provider.saml_entity_id,
                saml_certificates: provider.saml_certificates,
            })
            .collect();
        AuthSettings {
            password: auth.password,
            email_otp: auth.email_otp,
            allowed_domains: rule(auth.allowed_domains),
            password_domains: rule(auth.password_domains),
            email_otp_domains: rule(auth.email_otp_domains),
            providers,
            passkeys: auth.passkeys,
            passkey_domains: rule(auth.passkey_domains),
        }
    }
}

impl AuthSettings {
    fn into_proto(self) -> pb::HostAuthSettings {
        let rule = |rule: Option<DomainRule>| {
            rule.map(|rule| pb::DomainRule {
                domains: rule.domains,
                include_subdomains: rule.include_subdomains,
            })
        };
        let providers = self
            .providers
            .into_iter()
            .map(|provider| pb::SignInProvider {
                id: provider.id,
                kind: match provider.kind {
                    ProviderKind::Oidc => pb::SignInProviderKind::Oidc,
                    ProviderKind::Google => pb::SignInProviderKind::Google,
                    ProviderKind::Microsoft => pb::SignInProviderKind::Microsoft,
                    ProviderKind::Github => pb::SignInProviderKind::Github,
                    ProviderKind::Saml => pb::SignInProviderKind::Saml,
                } as i32,
                display_name: provider.display_name,
                client_id: provider.client_id,
                client_secret: provider.client_secret.unwrap_or_default(),
                issuer: provider.issuer.unwrap_or_default(),
                tenant: provider.tenant.unwrap_or_default(),
                allowed_tenants: provider.allowed_tenants,
                authority: provider.authority.unwrap_or_default(),
                authorization_endpoint: provider.authorization_endpoint.unwrap_or_default(),
                token_endpoint: provider.token_endpoint.unwrap_or_default(),
                api_base: provider.api_base.unwrap_or_default(),
                domains: rule(provider.domains),
                force_redirect_domains: provider.force_redirect_domains,
                saml_sso_url: provider.saml_sso_url.unwrap_or_default(),
                saml_entity_id: provider.saml_entity_id.unwrap_or_default(),
                saml_certificates: provider.saml_certificates,
                ..Default::default()
            })
            .collect();
        pb::HostAuthSettings {
            password: Some(self.password),
            email_otp: Some(self.email_otp),
            allowed_domains: rule(self.allowed_domains),
            password_domains: rule(self.password_domains),
            email_otp_domains: rule(self.email_otp_domains),
            providers,
            passkeys: Some(self.passkeys),
            passkey_domains: rule(self.passkey_domains),
        }
    }
}

/// Settings to set; an absent field keeps its current value (its default, at creation).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// Whether agents may add MCP servers dynamically. Default: false.
    pub dynamic_mcps: Option<bool>,
    /// Which tools `tools/list` shows an agent. Default: `permitted`.
    pub tool_visibility: Option<ToolVisibility>,
    /// Session idle lifetime, seconds: 60 to 31536000, at most the absolute lifetime.
    /// Default: 2592000 (30 days).
    #[schema(minimum = 60, maximum = 31536000)]
    pub session_idle_seconds: Option<u64>,
    /// Session absolute lifetime, seconds: 60 to 31536000. Default: 7776000 (90 days).
    #[schema(minimum = 60, maximum = 31536000)]
    pub session_absolute_seconds: Option<u64>,
    /// Browser origins allowed to call the MCP endpoint (at most 50; replaces the list),
    /// e.g. `https://app.example.com`. Default: none.
    #[schema(max_items = 50)]
    pub allowed_origins: Option<Vec<String>>,
    /// Sign-in methods and email-domain rules (replaces them all). Default: email and
    /// password, every domain.
    pub auth: Option<AuthSettings>,
}

impl SettingsInput {
    fn into_proto(self) -> pb::HostSettings {
        pb::HostSettings {
            dynamic_mcps: self.dynamic_mcps.unwrap_or(false),
            tool_visibility: match self.tool_visibility {
                None => pb::ToolVisibility::Unspecified as i32,
                Some(ToolVisibility::Permitted) => pb::ToolVisibility::Permitted as i32,
                Some(ToolVisibility::All) => pb::ToolVisibility::All as i32,
            },
            session_idle_seconds: self.session_idle_seconds,
            session_absolute_seconds: self.session_absolute_seconds,
            allowed_origins: self.allowed_origins.unwrap_or_default(),
            auth: self.auth.map(AuthSettings::into_proto),
        }
    }

    fn into_patch(self) -> HostSettingsPatch {
        HostSettingsPatch {
            dynamic_mcps: self.dynamic_mcps,
            tool_visibility: self.tool_visibility.map(Into::into),
            session_idle_seconds: self.session_idle_seconds,
            session_absolute_seconds: self.session_absolute_seconds,
            allowed_origins: self.allowed_origins,
            auth: self.auth.map(AuthSettings::into_proto),
        }
    }
}

/// The service names a bad setting as `allowed_origins[2]`; the request has it under
/// `settings`.
fn in_settings(error: ControlError) -> ControlError {
    const SETTINGS: [&str; 6] = [
        "dynamic_mcps",
        "tool_visibility",
        "session_idle_seconds",
        "session_absolute_seconds",
        "allowed_origins",
        "auth",
    ];
    match error {
        ControlError::Invalid { field, reason }
            if SETTINGS.iter().any(|name| field.starts_with(name)) =>
        {
            ControlError::Invalid {
                field: format!("settings.{field}"),
                reason,
            }
        }
        other => other,
    }
}

/// A host to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHostRequest {
    /// The subdomain prefix: 1 to 32 of `a-z`, `0-9` and `-`, starting with a letter; the id
    /// becomes `<prefix>-<adjective>-<noun>-<NNNN>`.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$",
        example = "acme"
    )]
    pub prefix: String,
    /// The owning organization; required when the admin token acts for several.
    pub org_id: Option<String>,
    /// Initial settings; defaults for what is absent.
    pub settings: Option<SettingsInput>,
}

/// A change to a host: the settings named are set, the others kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHostRequest {
    /// Settings to change.
    pub settings: Option<SettingsInput>,
}

/// The caller's hosts.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostList {
    /// Every host of every organization the admin token acts for, sorted by id.
    pub hosts: Vec<Host>,
}

/// Creates a host with a fresh id `<prefix>-<adjective>-<noun>-<NNNN>`.
#[utoipa::path(
    post,
    path = "/api/v1/hosts",
    tag = "hosts",
    operation_id = "create_host",
    request_body = CreateHostRequest,
    responses((status = 201, description = "Created", body = Host))
)]
pub async fn create(
    admin: Admin,
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<CreateHostRequest>,
) -> Result<Created<Host>, ApiError> {
    let settings = request.settings.map(SettingsInput::into_proto);
    if let Some(auth) = settings.as_ref().and_then(|s| s.auth.as_ref()) {
        crate::flows::check_sign_in_urls(state.url_policy, auth, "settings.auth")?;
    }
    let create = CreateHost {
        org_id: request.org_id,
        prefix: request.prefix,
        settings,
    };
    let host = state
        .control
        .create_host(&admin.principal, &admin.context, admin.key(), create)
        .await
        .map_err(in_settings)?;
    Ok(Created(Host::new(host, &state.public_urls)))
}

/// Lists the caller's hosts, each marked `default` or not.
#[utoipa::path(
    get,
    path = "/api/v1/hosts",
    tag = "hosts",
    operation_id = "list_hosts",
    responses((status = 200, description = "The caller's hosts", body = HostList))
)]
pub async fn list(admin: Admin, State(state): State<ApiState>) -> Result<Json<HostList>, ApiError> {
    let hosts = state.control.list_hosts(&admin.principal, None).await?;
    Ok(Json(HostList {
        hosts: hosts
            .into_iter()
            .map(|host| Host::new(host, &state.public_urls))
            .collect(),
    }))
}

/// One host.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}",
    tag = "hosts",
    operation_id = "get_host",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 200, description = "The host", body = Host))
)]
pub async fn get(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<Host>, ApiError> {
    let host = state.control.get_host(&admin.principal, &host).await?;
    Ok(Json(Host::new(host, &state.public_urls)))
}

/// Changes a host's settings: those named in `settings` are set, the others kept.
#[utoipa::path(
    patch,
    path = "/api/v1/hosts/{host}",
    tag = "hosts",
    operation_id = "update_host",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    request_body = UpdateHostRequest,
    responses((status = 200, description = "The host as changed", body = Host))
)]
pub async fn update(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateHostRequest>,
) -> Result<Json<Host>, ApiError> {
    let patch = request.settings.unwrap_or_default().into_patch();
    if let Some(auth) = &patch.auth {
        crate::flows::check_sign_in_urls(state.url_policy, auth, "settings.auth")?;
    }
    let host = state
        .control
        .update_host_settings(&admin.principal, &admin.context, admin.key(), &host, patch)
        .await
        .map_err(in_settings)?;
    Ok(Json(Host::new(host, &state.public_urls)))
}

/// Deletes a host: everything in it becomes unreachable.
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}",
    tag = "hosts",
    operation_id = "delete_host",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .delete_host(&admin.principal, &admin.context, admin.key(), &host)
        .await?;
    Ok(no_content())
}

/// Ready-to-copy client configurations for one MCP URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientTarget {
    /// The name the snippets give the server.
    pub name: String,
    /// The MCP URL.
    pub mcp_url: String,
    /// By client: `cursor` (`~/.cursor/mcp.json`), `vscode` (`.vscode/mcp.json`),
    /// `claude_desktop` (`claude_desktop_config.json`), each `{"file", "config"}` running
    /// `npx -y mcp-remote <url>`; and `claude_code` (`{"command": "claude mcp add … --transport
    /// http <url>"}`).
    #[schema(value_type = Object)]
    pub clients: serde_json::Value,
}

impl ClientTarget {
    fn new(name: String, mcp_url: String) -> Self {
        ClientTarget {
            clients: client_snippets(&name, &mcp_url),
            name,
            mcp_url,
        }
    }
}

/// The client configurations of one server of a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerClientConfig {
    /// The server's key.
    pub key: String,
    /// The server's display name.
    pub name: String,
    /// The server's upstream URL.
    pub upstream_url: String,
    /// Through the server's own path, `<host>/mcp/<key>`.
    pub path: ClientTarget,
    /// Through the host URL pre-selecting the upstream, `<host>/mcp?upstream_mcp=<url>`.
    pub upstream: ClientTarget,
}

/// How to configure MCP clients for a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientConfig {
    /// The host's id.
    pub host_id: String,
    /// Through the host URL: the agent is asked which servers to connect.
    pub host: ClientTarget,
    /// Per server, sorted by key.
    pub servers: Vec<ServerClientConfig>,
}

/// The host's SAML service-provider metadata (XML), for the IdP's administrator: entity id
/// `<host base URL>/api/auth/sso/saml2/sp/metadata`, assertion consumer service
/// `<host base URL>/api/auth/sso/saml2/callback/sso-<host id>` (HTTP-POST), NameID format
/// emailAddress, signed assertions wanted.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/saml/metadata",
    tag = "hosts",
    operation_id = "get_saml_sp_metadata",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 200, description = "SP metadata", content_type = "application/samlmetadata+xml", body = String))
)]
pub async fn saml_metadata(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let view = state.control.get_host(&admin.principal, &host).await?;
    let base = state.public_urls.host_base(&view.host_id, view.is_default);
    let sp = portcullis_saml::ServiceProvider {
        entity_id: format!("{base}/api/auth/sso/saml2/sp/metadata"),
        acs_url: format!("{base}/api/auth/sso/saml2/callback/sso-{}", view.host_id),
    };
    let xml = portcullis_saml::sp_metadata(&sp).map_err(ControlError::unavailable)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/samlmetadata+xml",
        )],
        xml,
    )
        .into_response())
}

/// Ready-to-copy client configurations (Cursor and VS Code `mcp.json`, Claude Desktop,
/// Claude Code) for the host URL and for each of its servers.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/client-config",
    tag = "hosts",
    operation_id = "get_client_config",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 200, description = "Client configurations", body = ClientConfig))
)]
pub async fn client_config(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<ClientConfig>, ApiError> {
    let view = state.control.get_host(&admin.principal, &host).await?;
    let mut servers: Vec<ServerView> = state
        .control
        .list_servers(&admin.principal, &view.host_id)
        .await?;
    servers.sort_by(|a, b| a.key.cmp(&b.key));
    let urls = &state.public_urls;
    let (host_id, default) = (view.host_id.as_str(), view.is_default);
    Ok(Json(ClientConfig {
        host: ClientTarget::new(host_id.to_owned(), urls.mcp_url(host_id, default)),
        servers: servers
            .into_iter()
            .map(|server| ServerClientConfig {
                path: ClientTarget::new(
                    server.key.clone(),
                    urls.server_mcp_url(host_id, default, &server.key),
                ),
                upstream: ClientTarget::new(
                    server.key.clone(),
                    urls.upstream_mcp_url(host_id, default, &server.url),
                ),
                key: server.key,
                name: server.name,
                upstream_url: server.url,
            })
            .collect(),
        host_id: view.host_id.clone(),
    }))
}

/// One of a host's token-signing keys (the private half never leaves the sealed log).
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    /// The key id, the JWT header's `kid` and the JWKS entry's.
    pub kid: String,
    /// The JWS algorithm, `ES256`.
    pub algorithm: String,
    /// When it was added (RFC 3339).
    pub added_at: String,
    /// Whether it signs new tokens: the newest key. The others only verify.
    pub active: bool,
}

impl From<SigningKeyView> for SigningKey {
    fn from(view: SigningKeyView) -> Self {
        let added = u64::try_from(view.added_at_ms)
            .ok()
            .and_then(|ms| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms)))
            .unwrap_or(std::time::UNIX_EPOCH);
        SigningKey {
            kid: view.kid,
            algorithm: view.algorithm,
            added_at: humantime::format_rfc3339_seconds(added).to_string(),
            active: view.active,
        }
    }
}

/// A host's signing keys in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyList {
    /// Oldest first; the last one is active.
    pub keys: Vec<SigningKey>,
}

/// The host's token-signing keys in use (all in its JWKS), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/hosts/{host}/signing-keys",
    tag = "hosts",
    operation_id = "list_signing_keys",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 200, description = "The keys", body = SigningKeyList))
)]
pub async fn list_signing_keys(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Json<SigningKeyList>, ApiError> {
    let keys = state
        .control
        .list_signing_keys(&admin.principal, &host)
        .await?;
    Ok(Json(SigningKeyList {
        keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Rotates the host's signing key: a new key signs every token from now on, and the older
/// keys stay in the JWKS, verifying the tokens they signed until retired.
#[utoipa::path(
    post,
    path = "/api/v1/hosts/{host}/signing-keys",
    tag = "hosts",
    operation_id = "rotate_signing_key",
    params(("host" = String, Path, description = "The host's id (its subdomain)")),
    responses((status = 201, description = "The new, active key", body = SigningKey))
)]
pub async fn rotate_signing_key(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath(host): ApiPath<String>,
) -> Result<Created<SigningKey>, ApiError> {
    let key = state
        .control
        .rotate_signing_key(&admin.principal, &admin.context, admin.key(), &host)
        .await?;
    Ok(Created(key.into()))
}

/// Whether to retire a key even though tokens it signed may still be live.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetireQuery {
    /// Retire now even if the active key is younger than the access-token lifetime (one
    /// hour), refusing the old key's live tokens: for a compromised key.
    pub force: Option<bool>,
}

/// Retires an older signing key: it leaves the JWKS and the tokens it signed are refused. The
/// active key cannot be retired (rotate first), and without `force` neither can a key while
/// the active one is younger than the access-token lifetime (409).
#[utoipa::path(
    delete,
    path = "/api/v1/hosts/{host}/signing-keys/{kid}",
    tag = "hosts",
    operation_id = "retire_signing_key",
    params(
        ("host" = String, Path, description = "The host's id (its subdomain)"),
        ("kid" = String, Path, description = "The key's id"),
        RetireQuery,
    ),
    responses((status = 204, description = "Retired"))
)]
pub async fn retire_signing_key(
    admin: Admin,
    State(state): State<ApiState>,
    ApiPath((host, kid)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RetireQuery>,
) -> Result<StatusCode, ApiError> {
    state
        .control
        .retire_signing_key(
            &admin.principal,
            &admin.context,
            admin.key(),
            &host,
            &kid,
            query.force.unwrap_or(false),
        )
        .await?;
    Ok(no_content())
}
