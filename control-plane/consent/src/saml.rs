//! SAML 2.0 sign-in (SP-initiated) on the consent pages; the protocol is
//! `portcullis_saml`'s.
//!
//! The host is the service provider: entity id `<base>/api/auth/sso/saml2/sp/metadata`
//! (which also serves its metadata) and assertion consumer service
//! `<base>/api/auth/sso/saml2/callback/sso-<host id>`. `start` sends the browser to the IdP
//! with an AuthnRequest; what the answer must match (request id, RelayState, the browser
//! session, the flow) waits in a sealed cookie. The IdP's answer is a cross-site POST, which
//! carries no `SameSite=Lax` cookie, so the ACS only re-posts it from the gateway's own page
//! (`saml_post.html`, sent on by `static/saml_continue.js` or its button) to
//! `/consent/sso/saml/finish`, where the cookies are there: the response is verified
//! (signature with the configured certificates only, allow-listed algorithms, issuer,
//! audience, recipient, `InResponseTo`, validity), spent once in the code ledger (the replay
//! cache, keyed by the assertion id), and its address judged by the domain rules before the
//! identity (IdP entity id, NameID) signs in.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_commands::control::VerifiedIdentity;
use portcullis_domain::validate::normalize_email;
use portcullis_oauth::code::{CodeGrant, Redemption};
use portcullis_projector::models::SignInProvider;
use portcullis_saml::{IdentityProvider, ServiceProvider};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::consent::{Flow, Posted, same_origin};
use crate::pages::{self, ErrorPage, SamlPost};
use crate::sealed::{open_json, seal_json};
use crate::sso::{redirect_with_pending, signed_in_as, with_cleared_cookie};
use crate::{HostContext, Inner, now_ms, unavailable_page};

/// How long the human has to sign in at the IdP.
const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// Largest form the ACS and the finish step read (a signed response with its certificate).
pub const MAX_SAML_FORM_BYTES: usize = 512 * 1024;

/// The continuation script, served as a file so the pages need no inline script.
const CONTINUE_SCRIPT: &str = include_str!("../static/saml_continue.js");

/// What waits for the IdP's answer.
#[derive(Serialize, Deserialize)]
struct Pending {
    host_id: String,
    provider_id: String,
    sid: String,
    flow: Flow,
    request_id: String,
    relay_state: String,
    expires_at_ms: i64,
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-portcullis-saml"
    } else {
        "portcullis-saml"
    }
}

fn aad(host_id: &str) -> String {
    format!("saml-pending:{host_id}")
}

/// The host as service provider.
pub(crate) fn service_provider(host: &HostContext) -> ServiceProvider {
    ServiceProvider {
        entity_id: format!("{}/api/auth/sso/saml2/sp/metadata", host.base),
        acs_url: format!(
            "{}/api/auth/sso/saml2/callback/sso-{}",
            host.base, host.host_id
        ),
    }
}

fn identity_provider(provider: &SignInProvider) -> IdentityProvider {
    IdentityProvider {
        entity_id: provider.saml_entity_id.clone().unwrap_or_default(),
        sso_url: provider.saml_sso_url.clone().unwrap_or_default(),
        certificates: provider.saml_certificates.clone(),
    }
}

/// `GET /consent/saml-continue.js`.
pub(crate) async fn continue_script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        CONTINUE_SCRIPT,
    )
        .into_response()
}

/// `GET /api/auth/sso/saml2/sp/metadata`: the host's service-provider metadata.
pub(crate) async fn metadata(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    match portcullis_saml::sp_metadata(&service_provider(&host)) {
        Ok(xml) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            )],
            xml,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "SP metadata not built.");
            unavailable_page()
        }
    }
}

/// Answers the redirect to the IdP of `provider` for the flow in `posted`.
pub(crate) async fn start(
    inner: &Inner,
    posted: &Posted,
    flow_text: &str,
    provider: &SignInProvider,
) -> Response {
    let host = &posted.host;
    let relay_state = crate::browser::random_token();
    let request = match portcullis_saml::authn_request(
        &service_provider(host),
        &identity_provider(provider),
        &relay_state,
        SystemTime::now(),
    ) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(host_id = %host.host_id, provider_id = %provider.id, %error, "SAML sign-in could not start.");
            return crate::consent::sign_in_again(
                inner,
                posted,
                flow_text,
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Signing in with {} could not start: {error}. Ask your admin.",
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
        request_id: request.id,
        relay_state,
        expires_at_ms: now_ms().saturating_add(PENDING_TTL_MS),
    };
    let Ok(sealed) = seal_json(&inner.config.key_ring, &pending, &aad(&host.host_id)) else {
        return unavailable_page();
    };
    let secure = inner.config.public_urls.scheme == "https";
    redirect_with_pending(
        &request.redirect_url,
        cookie_name(secure),
        &sealed,
        PENDING_TTL_MS,
        secure,
    )
}

/// The form an IdP posts (HTTP-POST binding).
pub(crate) struct SamlForm {
    response: String,
    relay_state: String,
}

async fn read_saml_form(
    request: axum::http::Request<axum::body::Body>,
) -> Result<(HeaderMap, SamlForm), Response> {
    let headers = request.headers().clone();
    let bad = || {
        pages::error(
            StatusCode::BAD_REQUEST,
            "Malformed sign-in response",
            "The identity provider's answer could not be read. Go back to your MCP client and connect again.",
        )
    };
    let bytes = axum::body::to_bytes(request.into_body(), MAX_SAML_FORM_BYTES)
        .await
        .map_err(|_| bad())?;
    let form: SamlForm = serde_urlencoded_form(&bytes).ok_or_else(bad)?;
    Ok((headers, form))
}

/// The two fields of a form body; `None` for a body that is not a form or repeats one.
fn serde_urlencoded_form(bytes: &[u8]) -> Option<SamlForm> {
    let mut response = None;
    let mut relay_state = None;
    for (name, value) in url::form_urlencoded::parse(bytes) {
        let slot = match name.as_ref() {
            "SAMLResponse" => &mut response,
            "RelayState" => &mut relay_state,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some(SamlForm {
        response: response?,
        relay_state: relay_state.unwrap_or_default(),
    })
}

/// `POST /api/auth/sso/saml2/callback/{sso_id}`: the IdP's answer, re-posted from here.
pub(crate) async fn acs(
    State(inner): State<Arc<Inner>>,
    Path(sso_id): Path<String>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (headers, form) = match read_saml_form(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    if sso_id != format!("sso-{}", host.host_id) {
        return pages::error(
            StatusCode::NOT_FOUND,
            "Unknown sign-in endpoint",
            "This gateway has no such SAML endpoint.",
        );
    }
    pages::render(
        StatusCode::OK,
        &SamlPost {
            title: "Signing you in",
            response: &form.response,
            relay_state: &form.relay_state,
        },
    )
}

/// `POST /consent/sso/saml/finish`: verifies the response and signs the human in.
pub(crate) async fn finish(
    State(inner): State<Arc<Inner>>,
    request: axum::http::Request<axum::body::Body>,
) -> Response {
    let (headers, form) = match read_saml_form(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    if !same_origin(&headers, &host.base) {
        return pages::error(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was not sent from this gateway's own page (Origin check).",
        );
    }
    let now = now_ms();
    let secure = inner.config.public_urls.scheme == "https";
    let name = cookie_name(secure);
    let session = inner.cookies.read(&headers, &host.host_id, now);
    let pending: Option<Pending> = crate::browser::cookie_value(&headers, name)
        .and_then(|value| open_json(&inner.config.key_ring, value, &aad(&host.host_id)).ok())
        .filter(|p: &Pending| {
            p.host_id == host.host_id
                && p.expires_at_ms > now
                && session.as_ref().is_some_and(|s| s.sid == p.sid)
                && bool::from(p.relay_state.as_bytes().ct_eq(form.relay_state.as_bytes()))
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
    let Some(provider) = host
        .auth
        .provider(&pending.provider_id)
        .filter(|p| p.kind == portcullis_projector::models::ProviderKind::Saml)
    else {
        return failed(
            StatusCode::FORBIDDEN,
            "This sign-in method is no longer offered here.",
        );
    };
    let sp = service_provider(&host);
    let idp = identity_provider(provider);
    let request_id = pending.request_id.clone();
    let response = form.response;
    // xmlsec verification is blocking CPU work.
    let verified = tokio::task::spawn_blocking(move || {
        portcullis_saml::verify_response(&sp, &idp, &response, &request_id, SystemTime::now())
    })
    .await;
    let assertion = match verified {
        Ok(Ok(assertion)) => assertion,
        Ok(Err(error)) => {
            tracing::info!(host_id = %host.host_id, provider_id = %provider.id, %error, "SAML response refused.");
            return failed(
                StatusCode::FORBIDDEN,
                &format!("Signing in with {} failed: {error}.", provider.label()),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "SAML verification did not finish.");
            return with_cleared_cookie(unavailable_page(), name, secure);
        }
    };
    // The replay cache: an assertion signs in once.
    let key = crate::passkey::hex(&Sha256::digest(
        format!(
            "saml-assertion:{}\n{}",
            assertion.idp_entity_id, assertion.assertion_id
        )
        .as_bytes(),
    ));
    let spent = CodeGrant {
        host_id: host.host_id.clone(),
        client_id: "saml".to_owned(),
        redirect_uri: String::new(),
        code_challenge: String::new(),
        resource: String::new(),
        scope: String::new(),
        session_id: String::new(),
        human_id: String::new(),
        expires_at_ms: assertion.valid_until_ms,
    };
    match inner.codes.redeem(&host.host_id, &key, &spent, now).await {
        Ok(Redemption::First) => {}
        Ok(Redemption::Again) => {
            tracing::warn!(host_id = %host.host_id, provider_id = %provider.id, "A SAML assertion was replayed.");
            return failed(
                StatusCode::FORBIDDEN,
                &format!(
                    "Signing in with {} failed: this sign-in response was already used.",
                    provider.label()
                ),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "SAML assertion not recorded.");
            return with_cleared_cookie(unavailable_page(), name, secure);
        }
    }
    let Some(email) = assertion
        .email
        .as_deref()
        .and_then(|email| normalize_email(email).ok())
    else {
        return failed(
            StatusCode::FORBIDDEN,
            &format!(
                "{} did not share an email address. Ask your admin to release the email attribute.",
                provider.label()
            ),
        );
    };
    if !host.auth.allows_provider(provider, &email) {
        return failed(
            StatusCode::FORBIDDEN,
            &format!(
                "Your email address may not sign in with {} here. Ask your admin which sign-in method to use.",
                provider.label()
            ),
        );
    }
    let identity = VerifiedIdentity {
        provider_id: provider.id.clone(),
        issuer: assertion.idp_entity_id.clone(),
        subject: assertion.name_id.clone(),
        email,
    };
    signed_in_as(&inner, &host, &session, &identity, &flow_text, name, secure).await
}
