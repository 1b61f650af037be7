//! What REST and gRPC share beyond single service calls: discovering an upstream (the
//! tenant check comes first, so no caller reaches the network for a host it cannot see) and,
//! when it wants OAuth, starting the browser flow; importing it with the admin's overrides,
//! its pre-registered client or the `authorization` handle the browser flow produced;
//! refreshing it; and pre-registering an OAuth client (an agent) with the checks dynamic
//! registration applies.

use portcullis_commands::Context;
use portcullis_commands::control::{
    AgentView, DiscoveredServer, IdempotencyKey, ImportServer, NewOAuthClient, Principal,
    RefreshReport, ServerView, UpstreamOAuthInput,
};
use portcullis_domain::server::ToolOverride;
use portcullis_domain::validate::validate_upstream_timeout;
use portcullis_oauth::registration::{self, RegistrationError};
use portcullis_proto::events::v1 as pb;
use portcullis_upstream::{DiscoverError, Discovery, PreRegisteredClient, Secret, UrlPolicy};

use crate::upstream_oauth::{self, Start};
use crate::{ApiError, ApiState};

/// What discovery found, or that the upstream wants OAuth first.
#[derive(Debug)]
pub enum DiscoverOutcome {
    /// The upstream answered; its tools with suggested trust levels.
    Discovered(Discovery),
    /// The upstream wants an access token; the browser flow has been started.
    AuthorizationRequired {
        /// The upstream URL.
        url: String,
        /// Its RFC 9728 protected-resource metadata URL, if it gave one.
        resource_metadata: Option<String>,
        /// Where to send the admin's browser, or why the deployment cannot.
        start: Start,
    },
}

/// Connects to `url` for `host_id` and lists its tools. When the upstream wants OAuth, starts
/// the browser flow (with `client` if the admin registered one by hand), bound to the host,
/// the URL and the calling admin token.
pub async fn discover(
    state: &ApiState,
    principal: &Principal,
    host_id: &str,
    url: &str,
    client: Option<UpstreamOAuthInput>,
) -> Result<DiscoverOutcome, ApiError> {
    let host = state.control.get_host(principal, host_id).await?;
    match portcullis_upstream::discover(url, state.url_policy, &state.discover).await {
        Ok(discovery) => Ok(DiscoverOutcome::Discovered(discovery)),
        Err(DiscoverError::AuthorizationRequired {
            url,
            resource_metadata,
            scope,
            ..
        }) => {
            let client = client.map(|oauth| PreRegisteredClient {
                client_id: oauth.client_id,
                client_secret: Some(Secret::new(oauth.client_secret)),
            });
            let start = upstream_oauth::begin(
                state,
                principal,
                &host.host_id,
                &url,
                resource_metadata.clone(),
                scope,
                client,
            )
            .await?;
            Ok(DiscoverOutcome::AuthorizationRequired {
                url,
                resource_metadata,
                start,
            })
        }
        Err(other) => Err(other.into()),
    }
}

/// The discovered tools as they are recorded: the suggested level, enabled, classified
/// automatically with the classifier's reason.
pub fn recorded_tools(discovery: &Discovery) -> Result<Vec<pb::Tool>, ApiError> {
    discovery
        .tools
        .iter()
        .enumerate()
        .map(|(index, tool)| {
            let sha256 = decode_hex(&tool.input_schema_sha256).ok_or_else(|| {
                ApiError::invalid(
                    format!("discovered.tools[{index}].input_schema_sha256"),
                    "not a SHA-256",
                )
            })?;
            Ok(pb::Tool {
                name: tool.name.clone(),
                description: tool.description.clone().unwrap_or_default(),
                input_schema_sha256: sha256,
                trust_level: tool.suggested_level.to_proto() as i32,
                enabled: true,
                classification: Some(pb::Classification {
                    kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
                        matched_keyword: tool.matched_keyword.unwrap_or_default().to_owned(),
                        reason: tool.classification_reason.clone(),
                    })),
                }),
            })
        })
        .collect()
}

/// What an admin asks to import.
#[derive(Clone, Debug, Default)]
pub struct ImportRequest {
    /// Upstream URL.
    pub url: String,
    /// Key in the host; derived when absent.
    pub key: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Per-tool overrides.
    pub tools: Vec<ToolOverride>,
    /// A pre-registered upstream OAuth client. Excludes `authorization`.
    pub oauth: Option<UpstreamOAuthInput>,
    /// The sealed `authorization` handle the upstream OAuth callback answered with: its token
    /// discovers the upstream and its client is recorded with the server. Excludes `oauth`.
    pub authorization: Option<Secret>,
    /// Upstream timeout, seconds (1 to 3600); the data plane's default when absent.
    pub timeout_seconds: Option<u64>,
}

/// Discovers the upstream (with the token of `request.authorization`, if given) and imports
/// it with the admin's overrides.
pub async fn import(
    state: &ApiState,
    principal: &Principal,
    context: &Context,
    idempotency_key: Option<&IdempotencyKey>,
    host_id: &str,
    request: ImportRequest,
) -> Result<ServerView, ApiError> {
    let host = state.control.get_host(principal, host_id).await?;
    // Checked before the upstream is contacted: a request that cannot succeed costs no
    // network round trip (the control service checks it again before recording).
    if let Some(seconds) = request.timeout_seconds {
        validate_upstream_timeout(seconds)
            .map_err(|e| ApiError::invalid("timeout_seconds", e.to_string()))?;
    }
    let (oauth, access_token) = match (request.oauth, &request.authorization) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "oauth",
                "give either oauth or authorization, not both",
            ));
        }
        (None, Some(handle)) => {
            let authorized = upstream_oauth::open_handle(
                state,
                principal,
                &host.host_id,
                &request.url,
                handle.expose(),
            )?;
            (authorized.oauth, Some(authorized.access_token))
        }
        (oauth, None) => (oauth, None),
    };
    let discovery = match &access_token {
        Some(token) => {
            portcullis_upstream::discover_with_token(
                &request.url,
                token,
                state.url_policy,
                &state.discover,
            )
            .await?
        }
        None => {
            portcullis_upstream::discover(&request.url, state.url_policy, &state.discover).await?
        }
    };
    let discovered = DiscoveredServer {
        name: Some(
            discovery
                .server
                .title
                .clone()
                .unwrap_or_else(|| discovery.server.name.clone()),
        )
        .filter(|n| !n.trim().is_empty()),
        description: discovery
            .instructions
            .clone()
            .map(|d| d.chars().take(1000).collect()),
        tools: recorded_tools(&discovery)?,
    };
    let import = ImportServer {
        url: request.url,
        key: request.key,
        name: request.name,
        description: request.description,
        tool_overrides: request.tools,
        oauth,
        timeout_seconds: request.timeout_seconds,
        discovered,
    };
    Ok(state
        .control
        .import_server(principal, context, idempotency_key, &host.host_id, import)
        .await?)
}

/// Discovers a server's upstream again and records what changed.
pub async fn refresh(
    state: &ApiState,
    principal: &Principal,
    context: &Context,
    idempotency_key: Option<&IdempotencyKey>,
    host_id: &str,
    server: &ServerView,
) -> Result<RefreshReport, ApiError> {
    let discovery =
        portcullis_upstream::discover(&server.url, state.url_policy, &state.discover).await?;
    let tools = recorded_tools(&discovery)?;
    Ok(state
        .control
        .refresh_server(
            principal,
            context,
            idempotency_key,
            host_id,
            &server.server_id,
            tools,
        )
        .await?)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An OAuth client an admin pre-registers.
#[derive(Clone, Debug, Default)]
pub struct PreRegistration {
    /// Display name (required).
    pub name: String,
    /// The client's home page, or empty.
    pub uri: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Pre-registers an OAuth client as an agent of `host_id`: the name, home page and redirect
/// URIs pass exactly the checks of dynamic registration (`portcullis_oauth::registration`),
/// so an admin cannot register what a client could not. Returns the agent with its new
/// client id.
pub async fn preregister_client(
    state: &ApiState,
    principal: &Principal,
    context: &Context,
    idempotency_key: Option<&IdempotencyKey>,
    host_id: &str,
    client: PreRegistration,
) -> Result<AgentView, ApiError> {
    // Tenancy first: a host the admin cannot see is a 404 whatever the body says.
    state.control.get_host(principal, host_id).await?;
    if client.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "is required"));
    }
    let mut metadata = serde_json::json!({
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
    });
    if !client.uri.is_empty() {
        metadata["client_uri"] = serde_json::Value::String(client.uri);
    }
    let checked =
        registration::parse(metadata.to_string().as_bytes()).map_err(|error| match &error {
            RegistrationError::InvalidRedirectUri { uri, reason } => {
                ApiError::invalid("redirect_uris", format!("redirect URI {uri:?}: {reason}"))
            }
            RegistrationError::InvalidClientMetadata { field, reason } => {
                let field = match *field {
                    "client_name" => "name",
                    "client_uri" => "uri",
                    other => other,
                };
                ApiError::invalid(field, reason.clone())
            }
            _ => ApiError::invalid("body", error.to_string()),
        })?;
    let registered = state
        .control
        .preregister_client(
            principal,
            context,
            idempotency_key,
            host_id,
            NewOAuthClient {
                name: checked.client_name,
                uri: checked.client_uri.unwrap_or_default(),
                agent_type: "pre-registered".to_owned(),
                redirect_uris: checked.redirect_uris,
            },
        )
        .await?;
    Ok(state
        .control
        .get_agent(principal, host_id, &registered.agent_id)
        .await?)
}

/// Refuses identity-provider URLs the deployment's SSRF policy would never reach (plain
/// `http` outside development, for one), naming the field under `prefix`. Where they point is
/// checked again, address by address, whenever they are used.
pub(crate) fn check_sign_in_urls(
    policy: UrlPolicy,
    auth: &pb::HostAuthSettings,
    prefix: &str,
) -> Result<(), portcullis_commands::control::ControlError> {
    for (index, provider) in auth.providers.iter().enumerate() {
        for (field, value) in [
            ("issuer", &provider.issuer),
            ("authority", &provider.authority),
            ("authorization_endpoint", &provider.authorization_endpoint),
            ("token_endpoint", &provider.token_endpoint),
            ("api_base", &provider.api_base),
            ("saml_sso_url", &provider.saml_sso_url),
        ] {
            if value.trim().is_empty() {
                continue;
            }
            policy.check_syntax(value.trim()).map_err(|rejected| {
                portcullis_commands::control::ControlError::invalid(
                    format!("{prefix}.providers[{index}].{field}"),
                    rejected,
                )
            })?;
        }
    }
    for (index, provider) in auth.providers.iter().enumerate() {
        if provider.kind != pb::SignInProviderKind::Saml as i32 {
            continue;
        }
        let idp = portcullis_saml::IdentityProvider {
            entity_id: provider.saml_entity_id.trim().to_owned(),
            sso_url: provider.saml_sso_url.trim().to_owned(),
            certificates: provider.saml_certificates.clone(),
        };
        if let Err(error) = idp.check() {
            let field = match &error {
                portcullis_saml::SamlError::Config { field, .. } => format!("saml_{field}"),
                _ => "saml_certificates".to_owned(),
            };
            return Err(portcullis_commands::control::ControlError::invalid(
                format!("{prefix}.providers[{index}].{field}"),
                error,
            ));
        }
    }
    Ok(())
}
