//! Sign-in through a host's external identity providers (OIDC, Google, Microsoft, GitHub):
//! the gateway is the relying party (`portcullis_idp`: discovery, PKCE S256, state, nonce,
//! ID-token and issuer checks, verified addresses only).
//!
//! `POST /consent/sso` starts it, for the provider a button names or, email first, the
//! provider that claims the address's domain (force-redirect; the password and code forms
//! send such addresses here too, before anything is checked or mailed). What the callback
//! needs waits in a sealed, short-lived cookie bound to the host, the flow and the browser
//! session that started it, so a callback URL carried to another browser signs nobody in.
//! `GET /consent/sso/{provider}/callback` finishes it: the provider must have vouched for an
//! address, and the host's domain rules (global ∩ provider, no other provider's forced
//! domain) are judged on that address, never on anything typed. The identity (issuer,
//! subject) then signs in as its linked human, or links to the human holding the address.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use portcullis_commands::control::{VerifiedIdentity, sign_in_provider_secret_aad};
use portcullis_domain::validate::normalize_email;
use portcullis_idp::{Callback, ExternalIdentity, PendingSignIn, ProviderConfig};
use portcullis_projector::models::{ProviderKind, SignInProvider};
use portcullis_secrets::Sealed;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::consent::{Flow, Posted};
use crate::limits::Action;
use crate::oauth::see_other;
use crate::pages::{self, ErrorPage};
use crate::sealed::{open_json, seal_json};
use crate::{HostContext, Inner, now_ms, unavailable_page};

/// How long the human has to sign in at the provider.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;

/// What waits for the provider's callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    host_id: String,
    provider_id: String,
    /// The browser session that started it (its id), so only that browser can finish it.
    sid: String,
    flow: Flow,
    sign_in: PendingSignIn,
    expires_at_ms: i64,
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portcullis-sso"
    } else {
        "portcullis-sso"
    }
}

fn aad(host_id: &str) -> String {
    format!("sso-pending:{host_id}")
}

/// The redirect URI registered at the provider for `provider_id` of the host at `base`.
pub(crate) fn callback_uri(base: &str, provider_id: &str) -> String {
    format!("{base}/consent/sso/{provider_id}/callback")
}

#[derive(Deserialize)]
pub(crate) struct SsoForm {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    email: String,
}

/// `POST /consent/sso`: a provider's button, or an address whose domain a provider claims.
pub(crate) async fn begin(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (ip, headers, form) = match crate::consent::read_form::<SsoForm>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match crate::consent::admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    // Each start costs a round trip to the provider (discovery, once cached, is cheap): the
    // same per-address limit as any other sign-in.
    if !inner.limits.allow(Action::SignIn, &posted.host.host_id, ip) {
        return refused(
            &inner,
            &posted,
            &form.flow,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait a minute and try again.",
        )
        .await;
    }
    let auth = &posted.host.auth;
    let (provider, hint) = if form.provider.is_empty() {
        let Ok(email) = normalize_email(&form.email) else {
            return refused(
                &inner,
                &posted,
                &form.flow,
                StatusCode::BAD_REQUEST,
                "Enter a valid email address.",
            )
            .await;
        };
        match auth.forced_provider(&email) {
            Some(provider) => (provider, Some(email)),
            None => {
                return refused(
                    &inner,
                    &posted,
                    &form.flow,
                    StatusCode::NOT_FOUND,
                    "No single sign-on is set up for that email's domain here. Use another way to sign in.",
                )
                .await;
            }
        }
    } else {
        match auth.provider(&form.provider) {
            Some(provider) => (provider, None),
            None => {
                return refused(
                    &inner,
                    &posted,
                    &form.flow,
                    StatusCode::NOT_FOUND,
                    "That sign-in method is not offered here. Reload the page.",
                )
                .await;
            }
        }
    };
    start(&inner, &posted, &form.flow, provider, hint.as_deref()).await
}

/// Answers the redirect to `provider` for the flow in `posted` (with `login_hint`, when the
/// address is known), and the cookie the callback needs.
pub(crate) async fn start(
    inner: &Inner,
    posted: &Posted,
    flow_text: &str,
    provider: &SignInProvider,
    login_hint: Option<&str>,
) -> Response {
    if provider.kind == ProviderKind::Saml {
        return crate::saml::start(inner, posted, flow_text, provider).await;
    }
    let host = &posted.host;
    let config = match provider_config(inner, &host.host_id, provider).await {
        Ok(config) => config,
        Err(response) => return response,
    };
    let redirect_uri = callback_uri(&host.base, &provider.id);
    let started = match inner.idp.start(&config, &redirect_uri, login_hint).await {
        Ok(started) => started,
        Err(error) => {
            tracing::warn!(host_id = %host.host_id, provider_id = %provider.id, %error, "Identity provider sign-in could not start.");
            return refused(
                inner,
                posted,
                flow_text,
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Signing in with {} could not start: {error}. Try again, or ask your admin.",
                    provider.label()
                ),
            )
            .await;
        }
    };
    let pending = Pending {
        host_id: host.host_id.clone(),
        provider_id: provider.id.clone(),
        sid: posted.session.sid.clone(),
        flow: posted.flow.clone(),
        sign_in: started.pending,
        expires_at_ms: now_ms().saturating_add(PENDING_TTL_MS),
    };
    let Ok(sealed) = seal_json(&inner.config.key_ring, &pending, &aad(&host.host_id)) else {
        return unavailable_page();
    };
    let secure = inner.config.public_urls.scheme == "https";
    redirect_with_pending(
        &started.authorization_url,
        cookie_name(secure),
        &sealed,
        PENDING_TTL_MS,
        secure,
    )
}

/// A redirect to `location` that leaves a pending sign-in in the cookie `name` (HttpOnly,
/// `SameSite=Lax` so the provider's redirect back brings it, `Secure` over https).
pub(crate) fn redirect_with_pending(
    location: &str,
    name: &str,
    sealed: &str,
    ttl_ms: i64,
    secure: bool,
) -> Response {
    let cookie = format!(
        "{name}={sealed}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        ttl_ms / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut response = see_other(location);
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
            response
        }
        Err(_) => unavailable_page(),
    }
}

/// The provider's settings with its client secret opened.
async fn provider_config(
    inner: &Inner,
    host_id: &str,
    provider: &SignInProvider,
) -> Result<ProviderConfig, Response> {
    let sealed = match inner
        .control
        .sign_in_provider_secret(host_id, &provider.id)
        .await
    {
        Ok(Some(sealed)) => sealed,
        Ok(None) => {
            tracing::warn!(host_id, provider_id = %provider.id, "Identity provider has no client secret.");
            return Err(unavailable_page());
        }
        Err(error) => {
            tracing::warn!(%error, "Identity provider secret not read.");
            return Err(unavailable_page());
        }
    };
    let opened = inner
        .config
        .key_ring
        .open(
            &Sealed {
                key_id: sealed.key_id,
                bytes: sealed.sealed,
            },
            sign_in_provider_secret_aad(host_id, &provider.id).as_bytes(),
        )
        .map_err(|error| {
            tracing::warn!(host_id, provider_id = %provider.id, %error, "Identity provider secret could not be opened.");
            unavailable_page()
        })?;
    let secret = Zeroizing::new(String::from_utf8_lossy(&opened).into_owned());
    Ok(ProviderConfig {
        kind: match provider.kind {
            ProviderKind::Oidc => portcullis_idp::ProviderKind::Oidc,
            ProviderKind::Google => portcullis_idp::ProviderKind::Google,
            ProviderKind::Microsoft => portcullis_idp::ProviderKind::Microsoft,
            ProviderKind::Github => portcullis_idp::ProviderKind::GitHub,
            // SAML never reaches here: `start` hands it to `saml`, and its answer comes to
            // the assertion consumer service.
            ProviderKind::Saml => return Err(unavailable_page()),
        },
        client_id: provider.client_id.clone(),
        client_secret: secret,
        issuer: provider.issuer.clone(),
        tenant: provider.tenant.clone(),
        allowed_tenants: provider.allowed_tenants.clone(),
        authority: provider.authority.clone(),
        authorization_endpoint: provider.authorization_endpoint.clone(),
        token_endpoint: provider.token_endpoint.clone(),
        api_base: provider.api_base.clone(),
    })
}

/// The sign-in page again with `message`.
async fn refused(
    inner: &Inner,
    posted: &Posted,
    flow_text: &str,
    status: StatusCode,
    message: &str,
) -> Response {
    crate::consent::sign_in_again(inner, posted, flow_text, status, message).await
}

/// `GET /consent/sso/{provider}/callback`: the provider's answer.
pub(crate) async fn callback(
    State(inner): State<Arc<Inner>>,
    Path(provider_id): Path<String>,
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
    let session = inner.cookies.read(&headers, &host.host_id, now);
    let pending: Option<Pending> = crate::browser::cookie_value(&headers, name)
        .and_then(|value| open_json(&inner.config.key_ring, value, &aad(&host.host_id)).ok())
        .filter(|p: &Pending| {
            p.host_id == host.host_id
                && p.provider_id == provider_id
                && p.expires_at_ms > now
                && session.as_ref().is_some_and(|s| s.sid == p.sid)
        });
    let (Some(pending), Some(session)) = (pending, session) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "The sign-in took too long or was started in another browser. Go back to your MCP client and connect again.",
        );
    };
    let Ok(flow_text) = pending.flow.seal(&inner.config.key_ring) else {
        return unavailable_page();
    };
    let failed = |status: StatusCode, message: &str| {
        with_cleared_cookie(
            pages::render(
                status,
                &ErrorPage {
                    title: "Sign-in refused",
                    message,
                    retry: Some(flow_text.clone()),
                    deny: None,
                },
            ),
            name,
            secure,
        )
    };
    // The provider may have been removed or changed since the sign-in started.
    let Some(provider) = host.auth.provider(&provider_id) else {
        return failed(
            StatusCode::FORBIDDEN,
            "This sign-in method is no longer offered here.",
        );
    };
    let config = match provider_config(&inner, &host.host_id, provider).await {
        Ok(config) => config,
        Err(response) => return response,
    };
    let callback = Callback::from_query(query.as_deref().unwrap_or_default());
    let identity = match inner.idp.finish(&config, &pending.sign_in, &callback).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::info!(host_id = %host.host_id, provider_id = %provider.id, %error, "Identity provider sign-in failed.");
            return failed(
                StatusCode::FORBIDDEN,
                &format!("Signing in with {} failed: {error}.", provider.label()),
            );
        }
    };
    let email = match chosen_email(&host, provider, &identity) {
        Ok(email) => email,
        Err(message) => {
            tracing::info!(host_id = %host.host_id, provider_id = %provider.id, "Identity provider sign-in refused: {message}");
            return failed(StatusCode::FORBIDDEN, &message);
        }
    };
    let verified = VerifiedIdentity {
        provider_id: provider.id.clone(),
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        email,
    };
    signed_in_as(&inner, &host, &session, &verified, &flow_text, name, secure).await
}

/// Signs `identity` in (linking it on first sight) in `session`, ends the pending sign-in
/// (the cookie `pending_cookie`) and sends the browser back to the flow.
pub(crate) async fn signed_in_as(
    inner: &Inner,
    host: &HostContext,
    session: &crate::browser::BrowserSession,
    identity: &VerifiedIdentity,
    flow_text: &str,
    pending_cookie: &str,
    secure: bool,
) -> Response {
    let account = match inner
        .control
        .sign_in_with_identity(&crate::context("consent.sso"), &host.host_id, identity)
        .await
    {
        Ok(account) => account,
        Err(error) => {
            tracing::warn!(%error, "Identity sign-in not recorded.");
            return with_cleared_cookie(unavailable_page(), pending_cookie, secure);
        }
    };
    tracing::info!(host_id = %host.host_id, human_id = %account.human_id, provider_id = %identity.provider_id, "Signed in.");
    let signed_in = session.signed_in(&account.human_id, now_ms());
    let response = see_other(&format!("/consent?flow={flow_text}"));
    match inner.cookies.write(&signed_in) {
        Some(cookie) => {
            let mut response = with_cleared_cookie(response, pending_cookie, secure);
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => unavailable_page(),
    }
}

/// The address the sign-in counts as: the first one the provider vouched for that the host's
/// rules let through this provider. `Err` is the refusal to show.
fn chosen_email(
    host: &HostContext,
    provider: &SignInProvider,
    identity: &ExternalIdentity,
) -> Result<String, String> {
    let label = provider.label();
    let verified: Vec<String> = identity
        .verified_emails
        .iter()
        .filter_map(|email| normalize_email(email).ok())
        .collect();
    if verified.is_empty() {
        return Err(match &identity.unverified_email {
            Some(_) => format!(
                "{label} did not confirm that your email address is verified. Verify it at {label}, or use another way to sign in."
            ),
            None => format!(
                "{label} did not share a verified email address. Allow access to your email at {label}, or use another way to sign in."
            ),
        });
    }
    verified
        .into_iter()
        .find(|email| host.auth.allows_provider(provider, email))
        .ok_or_else(|| {
            format!("Your email address may not sign in with {label} here. Ask your admin which sign-in method to use.")
        })
}

/// `response` with the cookie `name` removed.
pub(crate) fn with_cleared_cookie(mut response: Response, name: &str, secure: bool) -> Response {
    if let Ok(clear) = HeaderValue::from_str(&format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}
