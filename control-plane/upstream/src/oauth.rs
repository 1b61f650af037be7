//! The gateway as an OAuth 2.1 client of an upstream MCP server's authorization server.
//!
//! [`begin_authorization`]: find the protected-resource metadata (RFC 9728; the URL from the
//! 401's `WWW-Authenticate`, else the well-known URIs), check its `resource`, fetch the
//! authorization server's metadata (RFC 8414 and OpenID discovery, in the MCP spec's order)
//! and check its `issuer`, refuse a server without PKCE S256, register a client dynamically
//! (RFC 7591) unless the caller has one, and build the authorization URL with PKCE S256,
//! `state` and `resource` (RFC 8707). The caller persists the returned
//! [`PendingAuthorization`] and sends the human's browser to the URL.
//!
//! [`complete_authorization`]: check the callback's `state` (constant time) and `iss`
//! (RFC 9207), exchange the code with the verifier and `resource`, return the tokens.
//!
//! Every URL learned from an upstream is fetched through the SSRF-guarded client; the
//! authorization endpoint is only ever opened by the browser, so it gets the scheme checks.
//! Client credentials should be stored keyed by issuer (`PendingAuthorization::issuer`).

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::http::{Egress, HttpFailure, HttpLimits, loggable_url, printable_excerpt};
use crate::secret::Secret;
use crate::url_guard::{UrlPolicy, UrlRejected};

/// Limits and identity for the OAuth exchanges. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct AuthorizationOptions {
    /// TCP (and TLS) connect timeout. Default: 5 s.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP exchange. Default: 15 s.
    pub request_timeout: Duration,
    /// Largest metadata, registration or token response accepted, in bytes. Default: 256 KiB.
    pub max_response_bytes: usize,
    /// `client_name` sent in dynamic registration. Default: `Portcullis gateway`.
    pub client_name: String,
}

impl Default for AuthorizationOptions {
    fn default() -> Self {
        AuthorizationOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_response_bytes: 256 * 1024,
            client_name: "Portcullis gateway".to_owned(),
        }
    }
}

/// What the caller knows when starting an upstream authorization.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The upstream MCP endpoint (the protected resource).
    pub mcp_url: String,
    /// `resource_metadata` from the upstream's `WWW-Authenticate`, if it sent one.
    pub resource_metadata: Option<String>,
    /// Scopes to ask for; default: the challenge's, else the metadata's `scopes_supported`.
    pub scope: Option<String>,
    /// The gateway's callback URL, registered as the redirect URI.
    pub redirect_uri: String,
    /// A client the admin registered by hand; without one, dynamic registration is used.
    pub client: Option<PreRegisteredClient>,
}

/// A client registered at the upstream's authorization server by an admin.
#[derive(Clone, Debug)]
pub struct PreRegisteredClient {
    /// `oauth.client_id`.
    pub client_id: String,
    /// `oauth.client_secret`; `None` for a public client.
    pub client_secret: Option<Secret>,
}

/// How the gateway authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// Public client: `client_id` in the body, no secret.
    None,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic with the form-encoded id and secret.
    ClientSecretBasic,
}

impl TokenAuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::None => "none",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "none" => Some(TokenAuthMethod::None),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            _ => None,
        }
    }
}

/// The gateway's client at one authorization server.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret, if the client is confidential.
    pub client_secret: Option<Secret>,
    /// How to authenticate at the token endpoint.
    pub auth_method: TokenAuthMethod,
}

/// Everything needed to finish an authorization; the caller stores it (encrypted) until the
/// callback arrives, keyed by something that is not `state` itself.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PendingAuthorization {
    /// The `state` sent; the callback must echo it.
    pub state: Secret,
    /// The PKCE verifier.
    pub code_verifier: Secret,
    /// The client used (dynamically registered or given).
    pub client: ClientCredentials,
    /// Whether `client` was registered by this authorization (store it by issuer to reuse).
    pub client_registered_dynamically: bool,
    /// The authorization server's issuer identifier.
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The redirect URI sent.
    pub redirect_uri: String,
    /// The RFC 8707 resource (the upstream's canonical URI from its metadata).
    pub resource: String,
    /// The scopes asked for.
    pub scope: Option<String>,
    /// The server promised `iss` in the authorization response (RFC 9207), so it is required.
    pub issuer_in_response_required: bool,
}

/// The URL to send the human's browser to, and what to keep until the callback.
#[derive(Clone, Debug)]
pub struct BegunAuthorization {
    /// The authorization URL.
    pub authorization_url: Url,
    /// What `complete_authorization` needs.
    pub pending: PendingAuthorization,
}

/// The query parameters of the redirect back to the gateway's callback.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<Secret>,
    /// The echoed `state`.
    pub state: Option<Secret>,
    /// RFC 9207 issuer identifier.
    pub iss: Option<String>,
    /// An OAuth error code, when the request was refused.
    pub error: Option<String>,
    /// The error's text.
    pub error_description: Option<String>,
}

impl CallbackParams {
    /// Reads the parameters from a query string (without the leading `?`).
    pub fn from_query(query: &str) -> Self {
        let mut params = CallbackParams::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "code" => params.code = Some(Secret::new(value)),
                "state" => params.state = Some(Secret::new(value)),
                "iss" => params.iss = Some(value),
                "error" => params.error = Some(value),
                "error_description" => params.error_description = Some(value),
                _ => {}
            }
        }
        params
    }
}

/// The tokens the upstream's authorization server issued to the gateway.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: Secret,
    /// The token type (always Bearer here).
    pub token_type: String,
    /// The refresh token, if one was issued.
    pub refresh_token: Option<Secret>,
    /// Lifetime in seconds as the server stated it.
    pub expires_in_seconds: Option<u64>,
    /// When the access token expires, computed from `expires_in` at receipt.
    pub expires_at: Option<SystemTime>,
    /// The scopes granted, if the server said.
    pub scope: Option<String>,
}

/// Why an upstream authorization could not start or finish. Messages are for an admin.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The credential has no refresh token: the human must sign in again when it expires.
    #[error(
        "the upstream issued no refresh token; sign in to it again when the access token expires"
    )]
    NoRefreshToken,
    /// A URL (given or advertised) was refused by the SSRF guard.
    #[error("the {what} {url} was refused: {source}")]
    Rejected {
        /// Which URL (`MCP server URL`, `token endpoint`, …).
        what: &'static str,
        /// The URL as given.
        url: String,
        /// Why.
        #[source]
        source: UrlRejected,
    },
    /// The redirect URI given by the caller is not an absolute http(s) URL.
    #[error("the redirect URI {redirect_uri:?} is not an absolute http or https URL")]
    InvalidRedirectUri {
        /// The value given.
        redirect_uri: String,
    },
    /// Fetching a document or calling an endpoint failed at the HTTP level.
    #[error("could not fetch the {what} from {url}: {source}")]
    Fetch {
        /// What was fetched.
        what: &'static str,
        /// From where.
        url: String,
        /// The failure.
        #[source]
        source: HttpFailure,
    },
    /// A metadata document is not what the RFC says.
    #[error("the {what} at {url} is invalid: {detail}")]
    InvalidMetadata {
        /// Which document.
        what: &'static str,
        /// Where it came from.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// No protected-resource metadata at any of the places looked at.
    #[error("the upstream publishes no protected-resource metadata (tried {tried})")]
    NoResourceMetadata {
        /// The URLs tried.
        tried: String,
    },
    /// The metadata describes another resource (RFC 9728 section 3.3).
    #[error("the protected-resource metadata describes {advertised}, not {expected}")]
    ResourceMismatch {
        /// The upstream URL.
        expected: String,
        /// The `resource` in the metadata.
        advertised: String,
    },
    /// The metadata names no authorization server.
    #[error("the protected-resource metadata at {url} names no authorization server")]
    NoAuthorizationServer {
        /// Where the metadata came from.
        url: String,
    },
    /// No authorization-server metadata at any well-known URL.
    #[error("authorization server {issuer} publishes no metadata (tried {tried})")]
    NoAuthorizationServerMetadata {
        /// The issuer.
        issuer: String,
        /// The URLs tried.
        tried: String,
    },
    /// The metadata's `issuer` is not the issuer it was fetched for (RFC 8414 section 3.3).
    #[error(
        "the authorization server metadata at {url} is for issuer {advertised}, not {expected}"
    )]
    IssuerMismatch {
        /// Where it came from.
        url: String,
        /// The issuer the resource named.
        expected: String,
        /// The issuer in the document.
        advertised: String,
    },
    /// The server does not advertise S256 PKCE; OAuth 2.1 and MCP forbid going on.
    #[error(
        "the authorization server {issuer} does not advertise PKCE with S256; the gateway does \
         not authorize without it"
    )]
    PkceUnsupported {
        /// The issuer.
        issuer: String,
    },
    /// No registration endpoint and no client given.
    #[error(
        "this upstream's authorization server ({issuer}) offers no dynamic registration; give \
         oauth.client_id and oauth.client_secret"
    )]
    ClientCredentialsRequired {
        /// The issuer.
        issuer: String,
    },
    /// Dynamic registration was refused or answered badly.
    #[error("dynamic client registration at {endpoint} failed: {detail}")]
    RegistrationFailed {
        /// The registration endpoint.
        endpoint: String,
        /// What went wrong (the server's OAuth error if it sent one).
        detail: String,
    },
    /// The callback carries an OAuth error (the human or the server refused).
    #[error(
        "the authorization server refused: {error}{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    AuthorizationDenied {
        /// The OAuth error code.
        error: String,
        /// Its text.
        description: Option<String>,
    },
    /// The callback's `state` is missing or not the one sent.
    #[error("the callback's state does not match this authorization (stale or forged callback)")]
    StateMismatch,
    /// The callback's `iss` names another issuer (RFC 9207: a possible mix-up attack).
    #[error("the callback comes from issuer {received}, not {expected}")]
    IssuerParameterMismatch {
        /// The issuer of this authorization.
        expected: String,
        /// The `iss` received.
        received: String,
    },
    /// The server promised `iss` in responses and the callback has none.
    #[error("the callback lacks the iss parameter that {expected} promised to send")]
    IssuerParameterMissing {
        /// The issuer.
        expected: String,
    },
    /// No `code` in the callback.
    #[error("the callback has no authorization code")]
    MissingCode,
    /// The HTTP client could not be set up.
    #[error(transparent)]
    ClientSetup(HttpFailure),
    /// The token endpoint refused the exchange or answered badly.
    #[error("the token request to {endpoint} failed: {detail}")]
    TokenRequestFailed {
        /// The token endpoint.
        endpoint: String,
        /// The server's OAuth error, or what was wrong with the answer.
        detail: String,
    },
}

/// RFC 9728 protected-resource metadata (the fields used).
#[derive(Debug, Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// RFC 8414 authorization-server metadata (the fields used).
#[derive(Debug, Deserialize)]
struct ServerMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    registration_endpoint: Option<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// Starts an authorization: discovery, registration, and the authorization URL.
#[tracing::instrument(name = "upstream.oauth.begin", skip_all, fields(mcp_url = loggable_url(&request.mcp_url)))]
pub async fn begin_authorization(
    request: &AuthorizationRequest,
    policy: UrlPolicy,
    options: &AuthorizationOptions,
) -> Result<BegunAuthorization, OAuthError> {
    let mcp_url = checked(policy, "MCP server URL", &request.mcp_url)?;
    let redirect_uri = Url::parse(&request.redirect_uri)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| OAuthError::InvalidRedirectUri {
            redirect_uri: request.redirect_uri.clone(),
        })?;
    let egress = egress(policy, options)?;

    let (metadata_url, resource_metadata) = fetch_resource_metadata(
        &egress,
        &mcp_url,
        request.resource_metadata.as_deref(),
        options,
    )
    .await?;
    let resource = matching_resource(&mcp_url, &resource_metadata.resource)?;
    let issuer = resource_metadata
        .authorization_servers
        .first()
        .ok_or_else(|| OAuthError::NoAuthorizationServer {
            url: metadata_url.to_string(),
        })?
        .clone();
    let server = fetch_server_metadata(&egress, &issuer, options).await?;

    let s256 = server
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
    if !s256 {
        return Err(OAuthError::PkceUnsupported { issuer });
    }
    let mut authorization_url = browser_url(policy, &server.authorization_endpoint)?;
    checked(policy, "token endpoint", &server.token_endpoint)?;

    let scope = request
        .scope
        .clone()
        .or_else(|| Some(resource_metadata.scopes_supported.join(" ")))
        .filter(|scope| !scope.trim().is_empty());

    let supported_methods = server
        .token_endpoint_auth_methods_supported
        .clone()
        // RFC 8414: when omitted, the default is client_secret_basic.
        .unwrap_or_else(|| vec!["client_secret_basic".to_owned()]);
    let (client, registered) = match &request.client {
        Some(given) => (given_client(given, &supported_methods), false),
        None => match &server.registration_endpoint {
            Some(endpoint) => {
                let client = register(
                    &egress,
                    policy,
                    endpoint,
                    &redirect_uri,
                    scope.as_deref(),
                    &supported_methods,
                    options,
                )
                .await?;
                (client, true)
            }
            None => return Err(OAuthError::ClientCredentialsRequired { issuer }),
        },
    };

    let code_verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()));
    let state = random_token();
    {
        let mut query = authorization_url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", redirect_uri.as_str())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", &resource);
        if let Some(scope) = &scope {
            query.append_pair("scope", scope);
        }
    }
    tracing::info!(
        issuer = %issuer,
        client_registered = registered,
        "Upstream authorization started."
    );
    Ok(BegunAuthorization {
        authorization_url,
        pending: PendingAuthorization {
            state: Secret::new(state),
            code_verifier: Secret::new(code_verifier),
            client,
            client_registered_dynamically: registered,
            issuer,
            authorization_endpoint: server.authorization_endpoint,
            token_endpoint: server.token_endpoint,
            redirect_uri: redirect_uri.to_string(),
            resource,
            scope,
            issuer_in_response_required: server.authorization_response_iss_parameter_supported,
        },
    })
}

/// Finishes an authorization from the callback's parameters: checks, then the code exchange.
#[tracing::instrument(name = "upstream.oauth.complete", skip_all, fields(issuer = %pending.issuer))]
pub async fn complete_authorization(
    pending: &PendingAuthorization,
    callback: &CallbackParams,
    policy: UrlPolicy,
    options: &AuthorizationOptions,
) -> Result<Tokens, OAuthError> {
    let state_matches = callback.state.as_ref().is_some_and(|state| {
        bool::from(
            state
                .expose()
                .as_bytes()
                .ct_eq(pending.state.expose().as_bytes()),
        )
    });
    if !state_matches {
        return Err(OAuthError::StateMismatch);
    }
    match (&callback.iss, pending.issuer_in_response_required) {
        (Some(iss), _) if iss != &pending.issuer => {
            return Err(OAuthError::IssuerParameterMismatch {
                expected: pending.issuer.clone(),
                received: iss.clone(),
            });
        }
        (None, true) => {
            return Err(OAuthError::IssuerParameterMissing {
                expected: pending.issuer.clone(),
            });
        }
        _ => {}
    }
    if let Some(error) = &callback.error {
        return Err(OAuthError::AuthorizationDenied {
            error: printable_excerpt(error.as_bytes(), 100),
            description: callback
                .error_description
                .as_ref()
                .map(|d| printable_excerpt(d.as_bytes(), 300)),
        });
    }
    let code = callback.code.as_ref().ok_or(OAuthError::MissingCode)?;

    let tokens = token_request(
        &pending.token_endpoint,
        &pending.client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", &pending.redirect_uri),
            ("code_verifier", pending.code_verifier.expose()),
            ("resource", &pending.resource),
        ],
        policy,
        options,
    )
    .await?;
    tracing::info!(
        issuer = %pending.issuer,
        refresh_token = tokens.refresh_token.is_some(),
        "Upstream tokens obtained."
    );
    Ok(tokens)
}

/// Refreshes a stored credential (`grant_type=refresh_token`, the same `resource` and
/// client). A server that does not rotate the refresh token keeps the old one usable, so it
/// is carried over. `NoRefreshToken` when none was issued.
#[tracing::instrument(name = "upstream.oauth.refresh", skip_all, fields(issuer = %stored.issuer))]
pub async fn refresh_credential(
    stored: &StoredCredential,
    policy: UrlPolicy,
    options: &AuthorizationOptions,
) -> Result<Tokens, OAuthError> {
    let refresh_token = stored
        .tokens
        .refresh_token
        .as_ref()
        .ok_or(OAuthError::NoRefreshToken)?;
    let mut tokens = token_request(
        &stored.token_endpoint,
        &stored.client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("resource", &stored.resource),
        ],
        policy,
        options,
    )
    .await?;
    if tokens.refresh_token.is_none() {
        tokens.refresh_token = Some(refresh_token.clone());
    }
    Ok(tokens)
}

/// One token-endpoint request with the client's authentication; the tokens or the failure.
async fn token_request(
    token_endpoint: &str,
    client: &ClientCredentials,
    pairs: &[(&str, &str)],
    policy: UrlPolicy,
    options: &AuthorizationOptions,
) -> Result<Tokens, OAuthError> {
    let token_url = checked(policy, "token endpoint", token_endpoint)?;
    let egress = egress(policy, options)?;
    let mut basic = None;
    // In a block: the serializer is not `Sync`, so it must be gone before any await.
    let form_body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(pairs.iter().copied());
        match (client.auth_method, &client.client_secret) {
            (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
                basic = Some(basic_credentials(&client.client_id, secret));
            }
            (TokenAuthMethod::ClientSecretPost, Some(secret)) => {
                form.append_pair("client_id", &client.client_id)
                    .append_pair("client_secret", secret.expose());
            }
            _ => {
                form.append_pair("client_id", &client.client_id);
            }
        }
        form.finish()
    };
    let fetch = |source| OAuthError::Fetch {
        what: "tokens",
        url: token_endpoint.to_owned(),
        source,
    };
    let mut request = egress
        .request(Method::POST, &token_url)
        .map_err(fetch)?
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body);
    if let Some(basic) = basic {
        request = request.header(AUTHORIZATION, basic);
    }
    let mut response = egress.send(request).await.map_err(fetch)?;
    let status = response.status();
    let body = egress
        .read_body(&mut response, options.max_response_bytes)
        .await
        .map_err(fetch)?;
    let failed = |detail: String| OAuthError::TokenRequestFailed {
        endpoint: token_endpoint.to_owned(),
        detail,
    };
    let json: Value = serde_json::from_slice(&body).map_err(|_| {
        failed(format!(
            "HTTP status {status}, and the body is not JSON: {}",
            printable_excerpt(&body, 200)
        ))
    })?;
    if let Some(error) = oauth_error(&json) {
        return Err(failed(error));
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP status {status}")));
    }
    parse_tokens(&json).map_err(failed)
}

fn parse_tokens(json: &Value) -> Result<Tokens, String> {
    let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
    let access_token = text("access_token")
        .filter(|token| !token.is_empty())
        .ok_or("the answer has no access_token")?;
    let token_type = text("token_type").ok_or("the answer has no token_type")?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "the token type is {token_type:?}; only Bearer tokens are supported"
        ));
    }
    // Some servers send expires_in as a string.
    let expires_in_seconds = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Tokens {
        access_token: Secret::new(access_token),
        token_type,
        refresh_token: text("refresh_token").map(Secret::new),
        expires_in_seconds,
        expires_at: expires_in_seconds
            .and_then(|seconds| SystemTime::now().checked_add(Duration::from_secs(seconds))),
        scope: text("scope"),
    })
}

/// `"error: description"` if `json` is an OAuth error response.
fn oauth_error(json: &Value) -> Option<String> {
    let error = json.get("error")?.as_str()?;
    let mut detail = printable_excerpt(error.as_bytes(), 100);
    if let Some(description) = json.get("error_description").and_then(Value::as_str) {
        detail.push_str(": ");
        detail.push_str(&printable_excerpt(description.as_bytes(), 300));
    }
    Some(detail)
}

fn egress(policy: UrlPolicy, options: &AuthorizationOptions) -> Result<Egress, OAuthError> {
    Egress::new(
        policy,
        &[],
        HttpLimits {
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
        },
    )
    .map_err(OAuthError::ClientSetup)
}

fn checked(policy: UrlPolicy, what: &'static str, url: &str) -> Result<Url, OAuthError> {
    policy
        .check_syntax(url)
        .map_err(|source| OAuthError::Rejected {
            what,
            url: url.to_owned(),
            source,
        })
}

/// The authorization endpoint is opened by the browser, never fetched by the gateway: it
/// needs an http(s) scheme (https outside development) and no credentials, not an address
/// check.
fn browser_url(policy: UrlPolicy, url: &str) -> Result<Url, OAuthError> {
    let rejected = |source| OAuthError::Rejected {
        what: "authorization endpoint",
        url: url.to_owned(),
        source,
    };
    let parsed = Url::parse(url).map_err(|error| {
        rejected(UrlRejected::Unparsable {
            reason: error.to_string(),
        })
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_private => {}
        "http" => return Err(rejected(UrlRejected::HttpsRequired)),
        other => {
            return Err(rejected(UrlRejected::UnsupportedScheme {
                scheme: other.to_owned(),
            }));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(rejected(UrlRejected::Credentials));
    }
    Ok(parsed)
}

/// GETs a JSON document; `Ok(None)` when the server says it has none there (4xx).
async fn get_json_document<T: serde::de::DeserializeOwned>(
    egress: &Egress,
    what: &'static str,
    url: &Url,
    options: &AuthorizationOptions,
) -> Result<Option<T>, OAuthError> {
    let fetch = |source| OAuthError::Fetch {
        what,
        url: url.to_string(),
        source,
    };
    let request = egress
        .request(Method::GET, url)
        .map_err(fetch)?
        .header(ACCEPT, "application/json");
    let mut response = egress.send(request).await.map_err(fetch)?;
    let status = response.status();
    if status.is_client_error() {
        return Ok(None);
    }
    if status != StatusCode::OK {
        return Err(fetch(egress.status_failure(response).await));
    }
    let body = egress
        .read_body(&mut response, options.max_response_bytes)
        .await
        .map_err(fetch)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|error| OAuthError::InvalidMetadata {
            what,
            url: url.to_string(),
            detail: error.to_string(),
        })
}

async fn fetch_resource_metadata(
    egress: &Egress,
    mcp_url: &Url,
    advertised: Option<&str>,
    options: &AuthorizationOptions,
) -> Result<(Url, ResourceMetadata), OAuthError> {
    const WHAT: &str = "protected-resource metadata";
    let candidates = match advertised {
        Some(url) => vec![checked(egress.policy(), "resource metadata URL", url)?],
        None => {
            let path = mcp_url.path().trim_end_matches('/');
            let mut urls = Vec::new();
            if !path.is_empty() {
                urls.push(well_known(mcp_url, "oauth-protected-resource", path));
            }
            urls.push(well_known(mcp_url, "oauth-protected-resource", ""));
            urls
        }
    };
    for url in &candidates {
        if let Some(metadata) =
            get_json_document::<ResourceMetadata>(egress, WHAT, url, options).await?
        {
            return Ok((url.clone(), metadata));
        }
    }
    Err(OAuthError::NoResourceMetadata {
        tried: join_urls(&candidates),
    })
}

async fn fetch_server_metadata(
    egress: &Egress,
    issuer: &str,
    options: &AuthorizationOptions,
) -> Result<ServerMetadata, OAuthError> {
    const WHAT: &str = "authorization server metadata";
    let issuer_url = checked(egress.policy(), "authorization server", issuer)?;
    let path = issuer_url.path().trim_end_matches('/');
    // The order of the MCP spec's "Authorization Server Metadata Discovery".
    let candidates = if path.is_empty() {
        vec![
            well_known(&issuer_url, "oauth-authorization-server", ""),
            well_known(&issuer_url, "openid-configuration", ""),
        ]
    } else {
        let mut appended = issuer_url.clone();
        appended.set_path(&format!("{path}/.well-known/openid-configuration"));
        appended.set_query(None);
        appended.set_fragment(None);
        vec![
            well_known(&issuer_url, "oauth-authorization-server", path),
            well_known(&issuer_url, "openid-configuration", path),
            appended,
        ]
    };
    for url in &candidates {
        if let Some(metadata) =
            get_json_document::<ServerMetadata>(egress, WHAT, url, options).await?
        {
            if !same_identifier(&metadata.issuer, issuer) {
                return Err(OAuthError::IssuerMismatch {
                    url: url.to_string(),
                    expected: issuer.to_owned(),
                    advertised: metadata.issuer,
                });
            }
            return Ok(metadata);
        }
    }
    Err(OAuthError::NoAuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        tried: join_urls(&candidates),
    })
}

/// `{origin}/.well-known/{name}{path}`.
fn well_known(base: &Url, name: &str, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("/.well-known/{name}{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

fn join_urls(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
}

/// Identifiers compared as strings, ignoring one trailing slash (`http://as/` = `http://as`),
/// which libraries add or drop when they normalize URLs.
fn same_identifier(a: &str, b: &str) -> bool {
    a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

/// The RFC 8707 resource to request: the metadata's `resource` if it is the MCP URL, or a
/// same-origin path prefix of it (a server protecting everything under one resource).
fn matching_resource(mcp_url: &Url, advertised: &str) -> Result<String, OAuthError> {
    let mismatch = || OAuthError::ResourceMismatch {
        expected: mcp_url.to_string(),
        advertised: advertised.to_owned(),
    };
    if same_identifier(mcp_url.as_str(), advertised) {
        return Ok(advertised.to_owned());
    }
    let resource = Url::parse(advertised).map_err(|_| mismatch())?;
    let prefix = resource.path().trim_end_matches('/');
    let path = mcp_url.path();
    let prefix_of_path = path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    if resource.origin() == mcp_url.origin() && resource.query().is_none() && prefix_of_path {
        Ok(advertised.to_owned())
    } else {
        Err(mismatch())
    }
}

/// The auth method for an admin-given client: none without a secret, else Basic when the
/// server takes it, else post.
fn given_client(given: &PreRegisteredClient, supported: &[String]) -> ClientCredentials {
    let auth_method = match &given.client_secret {
        None => TokenAuthMethod::None,
        Some(_) if supported.iter().any(|m| m == "client_secret_basic") => {
            TokenAuthMethod::ClientSecretBasic
        }
        Some(_) if supported.iter().any(|m| m == "client_secret_post") => {
            TokenAuthMethod::ClientSecretPost
        }
        Some(_) => TokenAuthMethod::ClientSecretBasic,
    };
    ClientCredentials {
        client_id: given.client_id.clone(),
        client_secret: given.client_secret.clone(),
        auth_method,
    }
}

/// RFC 7591 dynamic registration as a confidential web client when the server allows it.
async fn register(
    egress: &Egress,
    policy: UrlPolicy,
    endpoint: &str,
    redirect_uri: &Url,
    scope: Option<&str>,
    supported: &[String],
    options: &AuthorizationOptions,
) -> Result<ClientCredentials, OAuthError> {
    let endpoint_url = checked(policy, "registration endpoint", endpoint)?;
    let requested = [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
        TokenAuthMethod::None,
    ]
    .into_iter()
    .find(|method| supported.iter().any(|m| m == method.as_str()))
    .unwrap_or(TokenAuthMethod::ClientSecretBasic);
    let mut body = json!({
        "client_name": options.client_name,
        "redirect_uris": [redirect_uri.as_str()],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": requested.as_str(),
        // A server-side gateway with an https callback is a web client (2026-07-28 requires
        // the field).
        "application_type": "web",
    });
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let failed = |detail: String| OAuthError::RegistrationFailed {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let request = egress
        .request(Method::POST, &endpoint_url)
        .map_err(|source| failed(source.to_string()))?
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let mut response = egress
        .send(request)
        .await
        .map_err(|source| OAuthError::Fetch {
            what: "client registration",
            url: endpoint.to_owned(),
            source,
        })?;
    let status = response.status();
    let answer = egress
        .read_body(&mut response, options.max_response_bytes)
        .await
        .map_err(|source| failed(source.to_string()))?;
    let json: Value = serde_json::from_slice(&answer).map_err(|_| {
        failed(format!(
            "HTTP status {status}, and the body is not JSON: {}",
            printable_excerpt(&answer, 200)
        ))
    })?;
    if let Some(error) = oauth_error(&json) {
        return Err(failed(error));
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP status {status}")));
    }
    let client_id = json
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| failed("the answer has no client_id".to_owned()))?;
    let client_secret = json
        .get("client_secret")
        .and_then(Value::as_str)
        .filter(|secret| !secret.is_empty())
        .map(Secret::new);
    let granted = json
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .and_then(TokenAuthMethod::parse)
        .unwrap_or(requested);
    // A confidential method without a secret cannot authenticate: fall back to public.
    let auth_method = if client_secret.is_none() {
        TokenAuthMethod::None
    } else {
        granted
    };
    Ok(ClientCredentials {
        client_id: client_id.to_owned(),
        client_secret,
        auth_method,
    })
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 section 2.3.1).
fn basic_credentials(client_id: &str, secret: &Secret) -> String {
    let encode =
        |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret.expose()));
    format!("Basic {}", STANDARD.encode(pair))
}

/// 32 random bytes, base64url without padding (43 characters): PKCE verifiers and `state`.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;

/// A human's credential at an upstream as it is stored (sealed) after the consent flow's
/// upstream sign-in: the tokens, and what a refresh needs. Never logged: `Secret` fields
/// print as redacted.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredCredential {
    /// The tokens.
    pub tokens: Tokens,
    /// The gateway's client at the upstream's authorization server.
    pub client: ClientCredentials,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// The RFC 8707 resource the tokens are for.
    pub resource: String,
}

impl StoredCredential {
    /// The credential from a finished authorization.
    pub fn new(pending: &PendingAuthorization, tokens: Tokens) -> Self {
        Self {
            tokens,
            client: pending.client.clone(),
            issuer: pending.issuer.clone(),
            token_endpoint: pending.token_endpoint.clone(),
            resource: pending.resource.clone(),
        }
    }
}

/// The associated data a human's upstream credential is sealed with: it opens only for the
/// same host, human and server.
pub fn credential_aad(host_id: &str, human_id: &str, server_id: &str) -> String {
    format!("upstream-credential:{host_id}:{human_id}:{server_id}")
}
