//! The consent pages (askama templates under `templates/`, HTML auto-escaped) and how a page
//! becomes a response: `Content-Type`, no caching, and the security headers every page
//! carries (`frame-ancestors 'none'`, no scripts at all, referrers only within the host).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every page: no scripts, no frames, styles inline only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                       script-src 'self'; connect-src 'self'; base-uri 'none'; \
                       frame-ancestors 'none'";

/// The sign-in page.
#[derive(Debug, Template)]
#[template(path = "sign_in.html")]
pub struct SignIn<'a> {
    pub title: &'a str,
    pub client_name: &'a str,
    pub flow: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    /// Whether email and password is on.
    pub password: bool,
    /// Whether a code by email is on.
    pub email_code: bool,
    /// Identity providers: (id, button label), in the host's order.
    pub providers: Vec<(&'a str, &'a str)>,
    /// Whether some provider claims email domains (then an email-first "single sign-on"
    /// form finds the provider for an address).
    pub sso_email: bool,
    /// Whether passkey sign-in is on.
    pub passkeys: bool,
    pub error: Option<&'a str>,
    pub info: Option<&'a str>,
}

/// The code page: an email verification, or a sign-in code.
#[derive(Debug, Template)]
#[template(path = "verify.html")]
pub struct Verify<'a> {
    pub title: &'a str,
    pub flow: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    /// How long the code is valid.
    pub minutes: u32,
    /// A sign-in code (email OTP) rather than an email verification.
    pub sign_in_code: bool,
    pub error: Option<&'a str>,
    pub info: Option<&'a str>,
}

/// One server on the server page.
#[derive(Debug)]
pub struct ServerChoice {
    pub id: String,
    pub name: String,
    pub checked: bool,
}

/// The server-choice page.
#[derive(Debug, Template)]
#[template(path = "server.html")]
pub struct ServerPage<'a> {
    pub title: &'a str,
    pub client_name: &'a str,
    pub flow: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub servers: Vec<ServerChoice>,
    /// Whether to offer adding a passkey.
    pub passkey_register: bool,
    pub error: Option<&'a str>,
}

/// One tool row.
#[derive(Debug)]
pub struct ToolRow {
    pub name: String,
    pub needs: &'static str,
    pub allowed: bool,
}

/// One trust level with its tool rows.
#[derive(Debug)]
pub struct LevelChoice {
    pub id: &'static str,
    pub name: &'static str,
    pub checked: bool,
    pub disabled: bool,
    pub tools: Vec<ToolRow>,
}

/// The trust-level page.
#[derive(Debug, Template)]
#[template(path = "trust.html")]
pub struct TrustPage<'a> {
    pub title: &'a str,
    pub client_name: &'a str,
    pub server_name: &'a str,
    pub email: &'a str,
    pub ceiling: &'a str,
    pub flow: &'a str,
    pub csrf: &'a str,
    pub levels: Vec<LevelChoice>,
    /// Whether to offer adding a passkey.
    pub passkey_register: bool,
    pub error: Option<&'a str>,
}

/// Step 4: the server needs the human's own sign-in.
#[derive(Debug, Template)]
#[template(path = "upstream.html")]
pub struct UpstreamPage<'a> {
    pub title: &'a str,
    pub client_name: &'a str,
    pub server_name: &'a str,
    pub flow: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

/// A Deny button on an error page (the flow is valid; the human may still refuse).
#[derive(Debug)]
pub struct DenyForm {
    pub flow: String,
    pub csrf: String,
}

/// An error page.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    /// A flow to retry (a Retry button re-opens the step).
    pub retry: Option<String>,
    pub deny: Option<DenyForm>,
}

/// The page that re-posts a SAML response from the gateway's own origin.
#[derive(Debug, Template)]
#[template(path = "saml_post.html")]
pub struct SamlPost<'a> {
    pub title: &'a str,
    pub response: &'a str,
    pub relay_state: &'a str,
}

/// A rendered page with `status` and the security headers.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            with_security_headers((status, html).into_response(), "text/html; charset=utf-8")
        }
        Err(error) => {
            tracing::error!(%error, "A consent page failed to render.");
            with_security_headers(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be shown.",
                )
                    .into_response(),
                "text/plain; charset=utf-8",
            )
        }
    }
}

/// Adds the headers every consent response carries.
pub fn with_security_headers(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page response.
pub fn error(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            title,
            message,
            retry: None,
            deny: None,
        },
    )
}
