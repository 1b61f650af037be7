//! The authorization server's HTTP routes over `portcullis_oauth::OAuthService`: discovery
//! documents and JWKS (public, CORS-readable), RFC 7591 registration (rate-limited per
//! client address), the authorization endpoint (an error page when the redirect URI cannot
//! be trusted, a redirect with `error`, `state` and `iss` otherwise, the consent pages when
//! valid), and the token endpoint (form-encoded, RFC 6749 §5.2 errors, `no-store`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_oauth::authorize::{AuthorizeError, PageError};
use portcullis_oauth::registration::{RegistrationError, RegistrationLimiter};
use portcullis_oauth::token::TokenError;
use serde_json::Value;

use crate::consent::Flow;
use crate::limits::{Action, Limits};
use crate::{HostFailure, Inner, client_ip, context, pages};

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub(crate) async fn metadata(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    document(&inner, &headers, Document::Metadata).await
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
) -> Response {
    document(&inner, &headers, Document::OpenId).await
}

/// `GET /oauth/jwks`.
pub(crate) async fn jwks(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    document(&inner, &headers, Document::Jwks).await
}

enum Document {
    Metadata,
    OpenId,
    Jwks,
}

async fn document(inner: &Inner, headers: &HeaderMap, which: Document) -> Response {
    let host = match inner.host(headers).await {
        Ok(host) => host,
        Err(failure) => return json_failure(&failure),
    };
    let result = match which {
        Document::Metadata => inner.oauth.metadata(&host.host_id).await,
        Document::OpenId => inner.oauth.openid_configuration(&host.host_id).await,
        Document::Jwks => {
            // The JWKS must list the key tokens are signed with before the first token.
            let context = context("oauth.jwks");
            if let Err(error) = inner
                .control
                .ensure_signing_key(&context, &host.host_id)
                .await
            {
                tracing::warn!(%error, "Signing key unavailable.");
            }
            inner.oauth.jwks(&host.host_id).await
        }
    };
    match result {
        Ok(body) => public_json(StatusCode::OK, &body, "public, max-age=300"),
        Err(error) => {
            tracing::warn!(%error, "Authorization server document failed.");
            public_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": "temporarily_unavailable", "error_description": "try again"}),
                "no-store",
            )
        }
    }
}

fn json_failure(failure: &HostFailure) -> Response {
    match failure {
        HostFailure::Misdirected => public_json(
            StatusCode::MISDIRECTED_REQUEST,
            &serde_json::json!({"error": "invalid_request", "error_description": "this gateway does not serve that host name"}),
            "no-store",
        ),
        HostFailure::Store(error) => {
            tracing::warn!(%error, "Host lookup failed.");
            public_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": "temporarily_unavailable", "error_description": "try again"}),
                "no-store",
            )
        }
    }
}

/// JSON any origin may read (no cookies are involved on these endpoints).
fn public_json(status: StatusCode, body: &Value, cache: &'static str) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if cache == "no-store" {
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `OPTIONS` on the registration and token endpoints (browser-based MCP clients).
pub(crate) async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, mcp-protocol-version"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// `POST /oauth/register` (RFC 7591).
pub(crate) async fn register(
    State(inner): State<Arc<Inner>>,
    request: Request<axum::body::Body>,
) -> Response {
    let ip = client_ip(request.extensions());
    let (parts, body) = request.into_parts();
    let host = match inner.host(&parts.headers).await {
        Ok(host) => host,
        Err(failure) => return json_failure(&failure),
    };
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return public_json(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &serde_json::json!({"error": "invalid_client_metadata", "error_description": "send the registration as application/json"}),
            "no-store",
        );
    }
    let Ok(body) =
        axum::body::to_bytes(body, portcullis_oauth::registration::MAX_REQUEST_BYTES).await
    else {
        return registration_error(&RegistrationError::TooLarge);
    };
    let context = context("oauth.register");
    match inner
        .oauth
        .register(&context, &host.host_id, ip, &body)
        .await
    {
        Ok(response) => public_json(StatusCode::CREATED, &response, "no-store"),
        Err(error) => registration_error(&error),
    }
}

fn registration_error(error: &RegistrationError) -> Response {
    let status = match error {
        RegistrationError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RegistrationError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        RegistrationError::HostNotFound => StatusCode::NOT_FOUND,
        RegistrationError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        RegistrationError::InvalidRedirectUri { .. }
        | RegistrationError::InvalidClientMetadata { .. } => StatusCode::BAD_REQUEST,
    };
    let mut response = public_json(status, &error.to_json(), "no-store");
    if matches!(error, RegistrationError::RateLimited) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    response
}

/// `GET /oauth/authorize`.
pub(crate) async fn authorize(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    let query = query.unwrap_or_default();
    match inner.oauth.authorize(&host.host_id, &query).await {
        Ok(request) => {
            let flow = Flow::start(request, crate::now_ms());
            match flow.seal(&inner.config.key_ring) {
                Ok(sealed) => see_other(&format!("/consent?flow={sealed}")),
                Err(_) => crate::unavailable_page(),
            }
        }
        Err(AuthorizeError::Redirect(redirect)) => see_other(&redirect.location()),
        Err(AuthorizeError::Page(error)) => {
            let status = match error {
                PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                PageError::UnknownHost => StatusCode::MISDIRECTED_REQUEST,
                _ => StatusCode::BAD_REQUEST,
            };
            pages::error(
                status,
                "This sign-in request cannot be used",
                &format!(
                    "{error}. Nothing was sent back to the application. Go back to your MCP client and connect again."
                ),
            )
        }
    }
}

/// A `303 See Other` to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => crate::unavailable_page(),
    }
}

/// `POST /oauth/token`.
pub(crate) async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return json_failure(&failure),
    };
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return token_error(&TokenError::InvalidRequest(
            "send the token request as application/x-www-form-urlencoded".to_owned(),
        ));
    }
    let context = context("oauth.token");
    match inner.oauth.token(&context, &host.host_id, &body).await {
        Ok(response) => match serde_json::to_value(&response) {
            Ok(body) => public_json(StatusCode::OK, &body, "no-store"),
            Err(_) => token_error(&TokenError::Unavailable),
        },
        Err(error) => token_error(&error),
    }
}

fn token_error(error: &TokenError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = public_json(status, &error.to_json(), "no-store");
    if matches!(error, TokenError::InvalidClient(_)) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    }
    response
}

/// The registration limit, backed by the consent side's limiters.
#[derive(Debug)]
pub(crate) struct RegistrationLimits(pub(crate) Arc<Limits>);

impl RegistrationLimiter for RegistrationLimits {
    fn allow(&self, host_id: &str, client_ip: Option<IpAddr>) -> bool {
        self.0.allow(Action::Register, host_id, client_ip)
    }
}
