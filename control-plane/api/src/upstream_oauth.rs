//! The browser half of connecting an OAuth-protected upstream, with the gateway as the OAuth
//! client, stateless across replicas:
//!
//! 1. `discover` (REST or gRPC, through `flows::discover`) meets a 401: [`begin`] runs `begin_authorization` (metadata, dynamic
//!    registration or the admin's client, PKCE S256, `resource`) with the redirect URI
//!    `<control base>/api/v1/upstream-oauth/callback`, and replaces the OAuth `state` with a
//!    value sealed under the key ring: the pending authorization, the host, the upstream URL,
//!    the admin token's id and an expiry. Nothing is stored; the state is the proof.
//! 2. The authorization server redirects the admin's browser to the callback: [`complete`]
//!    opens the state (400 if forged, tampered or expired), exchanges the code, lists the
//!    upstream's tools with the token, and seals the client and tokens into a short-lived
//!    `authorization` handle bound to the same host, URL and admin.
//! 3. The admin imports with `"authorization": "<handle>"` (gRPC: `ImportServerRequest`'s
//!    `authorization`): `flows::import` calls [`open_handle`], which gives back the client
//!    (recorded with the server, its secret sealed by the control service) and the token
//!    (used for discovery).
//!
//! Sealed values are `v1.<key id>.<base64url(nonce || ciphertext || tag)>`, each bound by its
//! associated data to its purpose, so a state cannot be passed off as a handle or vice versa.
//! No token, secret or verifier is ever returned, logged or recorded in the clear.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_commands::control::{Principal, UpstreamOAuthInput};
use portcullis_secrets::{KeyRing, Sealed};
use portcullis_upstream::{
    AuthorizationOptions, AuthorizationRequest, CallbackParams, ClientCredentials, Discovery,
    PendingAuthorization, PreRegisteredClient, Secret, Tokens, begin_authorization,
    complete_authorization, discover_with_token,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{ApiError, ApiState};

/// The callback's path under the control plane's base URL.
pub const CALLBACK_PATH: &str = "/api/v1/upstream-oauth/callback";

/// Associated data of a sealed `state`.
const STATE_PURPOSE: &[u8] = b"portcullis/upstream-oauth/state/v1";
/// Associated data of a sealed `authorization` handle.
const HANDLE_PURPOSE: &[u8] = b"portcullis/upstream-oauth/authorization/v1";
/// Prefix of every sealed value (the format version).
const FORMAT: &str = "v1";

/// What the gateway needs to act as an upstream OAuth client. `Default`: not configured.
#[derive(Clone)]
pub struct UpstreamOAuthConfig {
    /// Seals the `state` and the `authorization` handle; `None` → no browser flow.
    pub key_ring: Option<Arc<KeyRing>>,
    /// The control plane's public base URL (no trailing slash), where the browser comes back;
    /// `None` → no browser flow.
    pub callback_base: Option<String>,
    /// How long the admin has to authorize in the browser. Default: 10 minutes.
    pub state_ttl: Duration,
    /// How long the `authorization` handle can be used to import. Default: 10 minutes.
    pub handle_ttl: Duration,
    /// Limits and identity of the OAuth exchanges.
    pub options: AuthorizationOptions,
}

impl Default for UpstreamOAuthConfig {
    fn default() -> Self {
        UpstreamOAuthConfig {
            key_ring: None,
            callback_base: None,
            state_ttl: Duration::from_secs(600),
            handle_ttl: Duration::from_secs(600),
            options: AuthorizationOptions::default(),
        }
    }
}

impl std::fmt::Debug for UpstreamOAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOAuthConfig")
            .field("key_ring", &self.key_ring.is_some())
            .field("callback_base", &self.callback_base)
            .field("state_ttl", &self.state_ttl)
            .field("handle_ttl", &self.handle_ttl)
            .finish_non_exhaustive()
    }
}

/// Who started an authorization, for what: bound into both sealed values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The host the server is to be imported into.
    pub host_id: String,
    /// The upstream MCP URL.
    pub url: String,
    /// The admin token's id (never the secret).
    pub token_id: String,
}

/// The sealed content of a `state`.
#[derive(Serialize, Deserialize)]
struct StateContent {
    binding: Binding,
    expires_at_ms: u64,
    pending: PendingAuthorization,
}

/// The sealed content of an `authorization` handle.
#[derive(Serialize, Deserialize)]
struct HandleContent {
    binding: Binding,
    expires_at_ms: u64,
    client: ClientCredentials,
    tokens: Tokens,
}

/// How an authorization starts: where to send the browser, or why it cannot.
#[derive(Debug)]
pub enum Start {
    /// Send the admin's browser here.
    Browser {
        /// The authorization URL (with the sealed `state`).
        authorization_url: String,
    },
    /// The deployment cannot run the browser flow; says why.
    Unavailable {
        /// For the admin.
        message: String,
    },
}

/// What the callback produced.
#[derive(Debug)]
pub struct Completed {
    /// Host, URL and admin of the authorization.
    pub binding: Binding,
    /// The sealed handle to import with.
    pub handle: String,
    /// When the handle expires.
    pub handle_expires_at: SystemTime,
    /// What the upstream lists with the token.
    pub discovery: Discovery,
}

/// What an `authorization` handle gives an import.
pub struct Authorized {
    /// The client to record with the server (`None` for a public client: nothing to seal).
    pub oauth: Option<UpstreamOAuthInput>,
    /// The access token for discovery.
    pub access_token: Secret,
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

/// Starts the browser flow for an upstream that answered 401.
pub async fn begin(
    state: &ApiState,
    principal: &Principal,
    host_id: &str,
    url: &str,
    resource_metadata: Option<String>,
    scope: Option<String>,
    client: Option<PreRegisteredClient>,
) -> Result<Start, ApiError> {
    let config = &state.upstream_oauth;
    let Some(key_ring) = &config.key_ring else {
        return Ok(Start::Unavailable {
            message: "this upstream wants OAuth; connecting it needs a master key \
                      (--master-key or --master-key-file) to seal its credentials"
                .to_owned(),
        });
    };
    let Some(base) = &config.callback_base else {
        return Ok(Start::Unavailable {
            message: "this upstream wants OAuth; connecting it needs the control plane's \
                      public URL, where the browser comes back"
                .to_owned(),
        });
    };
    let request = AuthorizationRequest {
        mcp_url: url.to_owned(),
        resource_metadata,
        scope,
        redirect_uri: format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')),
        client,
    };
    let begun = begin_authorization(&request, state.url_policy, &config.options)
        .await
        .map_err(ApiError::UpstreamOAuth)?;
    let mut pending = begun.pending;
    // The sealed value replaces the random state: it carries itself.
    pending.state = Secret::new(String::new());
    let content = StateContent {
        binding: Binding {
            host_id: host_id.to_owned(),
            url: url.to_owned(),
            token_id: principal.token_id().to_owned(),
        },
        expires_at_ms: expiry(config.state_ttl),
        pending,
    };
    let sealed_state = seal(key_ring, &content, STATE_PURPOSE)?;
    let mut authorization_url = begun.authorization_url;
    let pairs: Vec<(String, String)> = authorization_url
        .query_pairs()
        .map(|(k, v)| {
            if k == "state" {
                (k.into_owned(), sealed_state.clone())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    authorization_url
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs);
    Ok(Start::Browser {
        authorization_url: authorization_url.to_string(),
    })
}

/// Finishes the flow from the callback's query string.
pub async fn complete(state: &ApiState, query: &str) -> Result<Completed, ApiError> {
    let config = &state.upstream_oauth;
    let key_ring = config.key_ring.as_ref().ok_or(ApiError::OAuthState {
        reason: "not_configured",
    })?;
    let mut callback = CallbackParams::from_query(query);
    let Some(sealed_state) = callback.state.clone() else {
        return Err(ApiError::OAuthState { reason: "missing" });
    };
    let content: StateContent = open(key_ring, sealed_state.expose(), STATE_PURPOSE)
        .ok_or(ApiError::OAuthState { reason: "invalid" })?;
    if now_ms() >= content.expires_at_ms {
        return Err(ApiError::OAuthState { reason: "expired" });
    }
    let mut pending = content.pending;
    // The state opened under the key ring: it is the one this gateway sent.
    pending.state = sealed_state;
    callback.state = Some(pending.state.clone());
    let tokens = complete_authorization(&pending, &callback, state.url_policy, &config.options)
        .await
        .map_err(ApiError::UpstreamOAuth)?;
    let discovery = discover_with_token(
        &content.binding.url,
        &tokens.access_token,
        state.url_policy,
        &state.discover,
    )
    .await?;
    let handle_expires_at = SystemTime::now() + config.handle_ttl;
    let handle = HandleContent {
        binding: content.binding.clone(),
        expires_at_ms: expiry(config.handle_ttl),
        client: pending.client,
        tokens,
    };
    let handle = seal(key_ring, &handle, HANDLE_PURPOSE)?;
    tracing::info!(
        host_id = %content.binding.host_id,
        tools = discovery.tools.len(),
        "Upstream authorized; the admin can import it."
    );
    Ok(Completed {
        binding: content.binding,
        handle,
        handle_expires_at,
        discovery,
    })
}

/// Opens an `authorization` handle for an import by `principal` of `url` into `host_id`.
pub fn open_handle(
    state: &ApiState,
    principal: &Principal,
    host_id: &str,
    url: &str,
    handle: &str,
) -> Result<Authorized, ApiError> {
    let refused = |message: &str| ApiError::invalid("authorization", message);
    let key_ring = state
        .upstream_oauth
        .key_ring
        .as_ref()
        .ok_or_else(|| refused("no master key is configured to open it"))?;
    let content: HandleContent = open(key_ring, handle, HANDLE_PURPOSE)
        .ok_or_else(|| refused("not an authorization this gateway issued"))?;
    if now_ms() >= content.expires_at_ms {
        return Err(refused("expired; connect the upstream again"));
    }
    let binding = &content.binding;
    if binding.host_id != host_id || binding.url != url || binding.token_id != principal.token_id()
    {
        return Err(refused(
            "was issued for another host, upstream URL or admin token",
        ));
    }
    let client = content.client;
    Ok(Authorized {
        oauth: client.client_secret.map(|secret| UpstreamOAuthInput {
            client_id: client.client_id,
            client_secret: secret.expose().to_owned(),
        }),
        access_token: content.tokens.access_token,
    })
}

fn expiry(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn seal<T: Serialize>(key_ring: &KeyRing, value: &T, purpose: &[u8]) -> Result<String, ApiError> {
    let plaintext = serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|_| ApiError::Internal("cannot encode the upstream authorization"))?;
    let sealed = key_ring
        .seal(&plaintext, purpose)
        .map_err(|_| ApiError::Internal("cannot seal the upstream authorization"))?;
    Ok(format!(
        "{FORMAT}.{}.{}",
        sealed.key_id,
        URL_SAFE_NO_PAD.encode(&sealed.bytes)
    ))
}

fn open<T: DeserializeOwned>(key_ring: &KeyRing, text: &str, purpose: &[u8]) -> Option<T> {
    let mut parts = text.split('.');
    let (Some(FORMAT), Some(key_id), Some(bytes), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let sealed = Sealed {
        key_id: key_id.to_owned(),
        bytes: URL_SAFE_NO_PAD.decode(bytes).ok()?,
    };
    let plaintext = key_ring.open(&sealed, purpose).ok()?;
    serde_json::from_slice(&plaintext).ok()
}
