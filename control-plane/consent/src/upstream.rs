//! Step 4 of consent: the human's own sign-in at an OAuth-protected upstream. The gateway is
//! the OAuth client (discovery, dynamic registration, PKCE S256, `resource`, `state` and
//! `iss` checks, all in `portcullis_upstream::oauth`); the pending authorization waits in a
//! sealed, short-lived cookie bound to the host, the human and the flow; the tokens are
//! sealed and recorded per human and server (`UpstreamCredentialStored`), and data planes
//! attach them upstream. The MCP client never sees them.

use std::sync::Arc;

use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use portcullis_commands::control::ConsentServer;
use portcullis_projector::models::UpstreamAuth;
use portcullis_upstream::oauth::{
    self, AuthorizationOptions, AuthorizationRequest, CallbackParams, PendingAuthorization,
    StoredCredential, credential_aad,
};
use portcullis_upstream::secret::Secret;
use serde::{Deserialize, Serialize};

use crate::accounts::human_context;
use crate::browser::BrowserSession;
use crate::consent::{Flow, FlowForm};
use crate::oauth::see_other;
use crate::pages::{self, ErrorPage};
use crate::sealed::{open_json, seal_bytes, seal_json};
use crate::{HostContext, Inner, now_ms, unavailable_page};

/// How long the human has to sign in at the upstream.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// A credential this close to expiry counts as expired.
const EXPIRY_MARGIN_MS: i64 = 30_000;

/// What waits for the upstream's callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    host_id: String,
    human_id: String,
    server_id: String,
    flow: Flow,
    authorization: PendingAuthorization,
    expires_at_ms: i64,
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portcullis-upstream"
    } else {
        "portcullis-upstream"
    }
}

fn aad(host_id: &str) -> String {
    format!("upstream-pending:{host_id}")
}

/// Whether `server` needs the human's own sign-in.
pub(crate) fn needs_sign_in(server: &ConsentServer) -> bool {
    matches!(server.server.upstream_auth, UpstreamAuth::Oauth { .. })
}

/// The human's live access token for `server`, if any (opened from the sealed credential).
pub(crate) async fn access_token(
    inner: &Inner,
    host_id: &str,
    human_id: &str,
    server_id: &str,
) -> Result<Option<Secret>, String> {
    use base64::Engine as _;
    let credential = inner
        .control
        .upstream_credential(host_id, human_id, server_id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(credential) = credential else {
        return Ok(None);
    };
    if credential.expires_at_ms != 0 && credential.expires_at_ms <= now_ms() + EXPIRY_MARGIN_MS {
        return Ok(None);
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&credential.credential_sealed)
        .map_err(|e| e.to_string())?;
    let opened = inner
        .config
        .key_ring
        .open_from_bytes(
            &sealed,
            credential_aad(host_id, human_id, server_id).as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let stored: StoredCredential = serde_json::from_slice(&opened).map_err(|e| e.to_string())?;
    Ok(Some(stored.tokens.access_token))
}

/// The step-4 page.
pub(crate) fn page(
    flow: &Flow,
    flow_text: &str,
    session: &BrowserSession,
    server: &ConsentServer,
    error: Option<&str>,
) -> Response {
    pages::render(
        if error.is_some() {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        },
        &pages::UpstreamPage {
            title: "Sign in to the MCP server",
            client_name: &flow.request.client_name,
            server_name: &server.server.name,
            flow: flow_text,
            csrf: &session.csrf,
            error,
        },
    )
}

/// `POST /consent/upstream`: starts the upstream authorization.
pub(crate) async fn begin(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<FlowForm>,
) -> Response {
    let posted = match crate::consent::admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let Some(human_id) = posted.session.human_id.clone() else {
        return see_other(&format!("/consent?flow={}", form.flow));
    };
    let server =
        match crate::consent::chosen_server(&inner, &posted.host, &posted.flow, &human_id).await {
            Ok(Some(server)) => server,
            Ok(None) => return see_other(&format!("/consent?flow={}", form.flow)),
            Err(response) => return response,
        };
    let request = AuthorizationRequest {
        mcp_url: server.server.url.clone(),
        resource_metadata: None,
        scope: None,
        redirect_uri: format!("{}/consent/upstream/callback", posted.host.base),
        client: None,
    };
    let begun = match oauth::begin_authorization(
        &request,
        inner.config.url_policy,
        &AuthorizationOptions::default(),
    )
    .await
    {
        Ok(begun) => begun,
        Err(error) => {
            tracing::info!(server_id = %server.server_id, %error, "Upstream sign-in could not start.");
            return page(
                &posted.flow,
                &form.flow,
                &posted.session,
                &server,
                Some(&format!(
                    "Signing in to {} could not start: {error}. Retry, or ask your admin.",
                    server.server.name
                )),
            );
        }
    };
    let pending = Pending {
        host_id: posted.host.host_id.clone(),
        human_id,
        server_id: server.server_id.clone(),
        flow: posted.flow.clone(),
        authorization: begun.pending,
        expires_at_ms: now_ms().saturating_add(PENDING_TTL_MS),
    };
    let Ok(sealed) = seal_json(&inner.config.key_ring, &pending, &aad(&posted.host.host_id)) else {
        return unavailable_page();
    };
    let secure = inner.config.public_urls.scheme == "https";
    let cookie = format!(
        "{}={sealed}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        cookie_name(secure),
        PENDING_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut response = see_other(begun.authorization_url.as_str());
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
            response
        }
        Err(_) => unavailable_page(),
    }
}

/// `GET /consent/upstream/callback`: the upstream's answer.
pub(crate) async fn callback(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let host: HostContext = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    let now = now_ms();
    let secure = inner.config.public_urls.scheme == "https";
    let name = cookie_name(secure);
    let pending: Option<Pending> = crate::browser::cookie_value(&headers, name)
        .and_then(|value| open_json(&inner.config.key_ring, value, &aad(&host.host_id)).ok())
        .filter(|p: &Pending| p.host_id == host.host_id && p.expires_at_ms > now);
    let session = inner.cookies.read(&headers, &host.host_id, now);
    let Some(pending) = pending.filter(|p| {
        session
            .as_ref()
            .and_then(|s| s.human_id.as_deref())
            .is_some_and(|human| human == p.human_id)
    }) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "The sign-in at the MCP server took too long or was started in another browser. Go back to your MCP client and connect again.",
        );
    };
    let Ok(flow_text) = pending.flow.seal(&inner.config.key_ring) else {
        return unavailable_page();
    };
    let params = CallbackParams::from_query(query.as_deref().unwrap_or_default());
    let tokens = match oauth::complete_authorization(
        &pending.authorization,
        &params,
        inner.config.url_policy,
        &AuthorizationOptions::default(),
    )
    .await
    {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::info!(server_id = %pending.server_id, %error, "Upstream sign-in failed.");
            return pages::render(
                StatusCode::BAD_GATEWAY,
                &ErrorPage {
                    title: "Signing in to the MCP server failed",
                    message: &format!("{error}. Retry to sign in again."),
                    retry: Some(flow_text),
                    deny: None,
                },
            );
        }
    };
    let expires_at_ms = tokens
        .expires_at
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let stored = StoredCredential::new(&pending.authorization, tokens);
    let Ok(json) = serde_json::to_vec(&stored) else {
        return unavailable_page();
    };
    let json = zeroize::Zeroizing::new(json);
    let Ok(sealed) = seal_bytes(
        &inner.config.key_ring,
        &json,
        &credential_aad(&host.host_id, &pending.human_id, &pending.server_id),
    ) else {
        return unavailable_page();
    };
    let context = human_context(&pending.human_id);
    if let Err(error) = inner
        .control
        .store_upstream_credential(
            &context,
            &host.host_id,
            &pending.human_id,
            &pending.server_id,
            sealed,
            expires_at_ms,
        )
        .await
    {
        tracing::warn!(%error, "Upstream credential not stored.");
        return unavailable_page();
    }
    tracing::info!(host_id = %host.host_id, human_id = %pending.human_id, server_id = %pending.server_id, "Signed in to the upstream.");
    let mut response = see_other(&format!("/consent?flow={flow_text}"));
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}
