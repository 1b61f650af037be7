//! The browser-facing side of every host: the OAuth 2.1 authorization server's HTTP routes
//! for MCP clients (`oauth`: RFC 8414 and OIDC discovery, JWKS, RFC 7591 registration,
//! authorization, token), human accounts (`accounts`: sign-up with a mailed 6-digit code,
//! sign-in, argon2id in `passwords`), sign-in through external identity providers (`sso`),
//! passkeys (`passkey`, webauthn-rs, with `static/passkey.js`), the consent pages (`consent`, templates in
//! `templates/`, rendered by `pages`), the browser session cookie (`browser`), sealed
//! values (`sealed`), outgoing mail (`mail`) and rate limits (`limits`).
//!
//! Must not: decide domain rules (the aggregates do, through `Control`), or hold state of its
//! own beyond rate-limit counters: the flow travels sealed in the page, the browser session
//! in a sealed cookie, so any control-plane replica serves any step.
//!
//! Invariants: every host is resolved from the `Host` header (an unknown name is 421) and
//! nothing crosses into another host; every POST checks `Origin` and the CSRF token before
//! anything else; nothing is redirected to a URI that was not matched against the client's
//! registration; token and registration responses are `Cache-Control: no-store`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod accounts;
pub mod browser;
pub mod cimd;
pub mod consent;
pub mod limits;
pub mod mail;
pub mod oauth;
pub mod pages;
pub mod passkey;
pub mod passwords;
pub mod refresh;
pub mod saml;
pub mod sealed;
pub mod sso;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use portcullis_commands::Context;
use portcullis_commands::control::{Control, ControlError};
use portcullis_oauth::OAuthService;
use portcullis_oauth::code::CodeLedger;
use portcullis_secrets::KeyRing;
use portcullis_tokens::{HostRef, PublicUrls};
use portcullis_upstream::{DiscoverOptions, UrlPolicy};

pub use limits::{LimitSettings, Rate};
pub use mail::{MailError, MailSettings, Mailer};

/// Largest form or JSON body the consent and OAuth routes read, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How the consent side is set up.
#[derive(Clone, Debug)]
pub struct ConsentConfig {
    /// Where hosts answer (issuers, resources, which host a `Host` header names).
    pub public_urls: PublicUrls,
    /// The organization whose default host answers a `Host` that names no host.
    pub default_org_id: String,
    /// Seals flows, cookies, codes, passwords; opens hosts' signing keys.
    pub key_ring: KeyRing,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Rate limits.
    pub limits: LimitSettings,
    /// How many password hashes run at once.
    pub hash_concurrency: usize,
    /// Which upstream addresses the server check may reach.
    pub url_policy: UrlPolicy,
    /// Limits of the server check (initialize, list tools).
    pub discover: DiscoverOptions,
}

/// The consent side of every host.
#[derive(Clone, Debug)]
pub struct Consent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) control: Arc<Control>,
    pub(crate) oauth: OAuthService,
    pub(crate) config: ConsentConfig,
    pub(crate) cookies: browser::Cookies,
    pub(crate) passwords: passwords::Passwords,
    pub(crate) limits: Arc<limits::Limits>,
    /// The relying party of hosts' identity providers (caches their discovery documents).
    pub(crate) idp: portcullis_idp::Idp,
    /// Spends authorization codes and passkey ceremonies exactly once.
    pub(crate) codes: Arc<dyn CodeLedger>,
}

/// Why the consent side could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The password hasher could not be set up.
    #[error(transparent)]
    Passwords(#[from] passwords::PasswordError),
}

impl Consent {
    /// The consent side over `control`, redeeming codes through `codes`.
    pub fn new(
        control: Arc<Control>,
        codes: Arc<dyn CodeLedger>,
        config: ConsentConfig,
    ) -> Result<Self, ConsentError> {
        let limits = Arc::new(limits::Limits::new(config.limits));
        let limiter = Arc::new(oauth::RegistrationLimits(limits.clone()));
        let oauth = OAuthService::new(
            control.clone(),
            config.key_ring.clone(),
            config.public_urls.clone(),
            codes.clone(),
        )
        .with_limiter(limiter)
        .with_metadata_fetcher(Arc::new(cimd::MetadataDocuments::new(control.clone())));
        // Secure cookies unless the pages are served over plain HTTP (loopback `dev`).
        let secure = config.public_urls.scheme == "https";
        let inner = Arc::new(Inner {
            cookies: browser::Cookies::new(config.key_ring.clone(), secure),
            passwords: passwords::Passwords::new(config.hash_concurrency)?,
            limits,
            oauth,
            control,
            idp: portcullis_idp::Idp::new(config.url_policy),
            codes,
            config,
        });
        Ok(Self { inner })
    }

    /// The routes: `/.well-known/oauth-authorization-server`,
    /// `/.well-known/openid-configuration`, `/oauth/{jwks,register,authorize,token}` and
    /// `/consent…`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(oauth::metadata),
            )
            .route(
                "/.well-known/openid-configuration",
                get(oauth::openid_configuration),
            )
            .route("/oauth/jwks", get(oauth::jwks))
            .route(
                "/oauth/register",
                post(oauth::register).options(oauth::preflight),
            )
            .route("/oauth/authorize", get(oauth::authorize))
            .route("/oauth/token", post(oauth::token).options(oauth::preflight))
            .route("/consent", get(consent::page))
            .route("/consent/account", post(consent::account))
            .route("/consent/verify", post(consent::verify))
            .route("/consent/server", post(consent::server))
            .route("/consent/decide", post(consent::decide))
            .route("/consent/upstream", post(upstream::begin))
            .route("/consent/upstream/callback", get(upstream::callback))
            .route("/consent/sso", post(sso::begin))
            .route("/consent/passkey.js", get(passkey::script))
            .route("/consent/saml-continue.js", get(saml::continue_script))
            .route(
                "/consent/sso/saml/finish",
                post(saml::finish).layer(DefaultBodyLimit::max(saml::MAX_SAML_FORM_BYTES)),
            )
            .route("/api/auth/sso/saml2/sp/metadata", get(saml::metadata))
            .route(
                "/api/auth/sso/saml2/callback/{sso_id}",
                post(saml::acs).layer(DefaultBodyLimit::max(saml::MAX_SAML_FORM_BYTES)),
            )
            .route(
                "/consent/passkey/register/start",
                post(passkey::register_start),
            )
            .route(
                "/consent/passkey/register/finish",
                post(passkey::register_finish),
            )
            .route(
                "/consent/passkey/sign-in/start",
                post(passkey::sign_in_start),
            )
            .route(
                "/consent/passkey/sign-in/finish",
                post(passkey::sign_in_finish),
            )
            .route("/consent/sso/{provider}/callback", get(sso::callback))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.inner.clone())
    }
}

/// The host a request is for.
#[derive(Clone, Debug)]
pub(crate) struct HostContext {
    pub(crate) host_id: String,
    /// The host's base URL (its issuer), no trailing slash.
    pub(crate) base: String,
    /// How humans may sign in here.
    pub(crate) auth: portcullis_projector::models::AuthSettings,
}

impl Inner {
    /// The host named by the request's single `Host` header; an error page otherwise.
    pub(crate) async fn host(&self, headers: &HeaderMap) -> Result<HostContext, HostFailure> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(value), None) = (hosts.next(), hosts.next()) else {
            return Err(HostFailure::Misdirected);
        };
        let authority = value.to_str().map_err(|_| HostFailure::Misdirected)?;
        let host_id = match self.config.public_urls.resolve_host(authority) {
            Some(HostRef::Named(id)) => id,
            Some(HostRef::Default) => self
                .control
                .default_host_of(&self.config.default_org_id)
                .await
                .map_err(HostFailure::Store)?
                .ok_or(HostFailure::Misdirected)?,
            None => return Err(HostFailure::Misdirected),
        };
        let host = match self.control.consent_host(&host_id).await {
            Ok(host) => host,
            Err(ControlError::NotFound { .. }) => return Err(HostFailure::Misdirected),
            Err(other) => return Err(HostFailure::Store(other)),
        };
        Ok(HostContext {
            base: self.config.public_urls.host_base(&host_id, host.is_default),
            host_id,
            auth: host.settings.auth,
        })
    }
}

/// Why a request names no host.
#[derive(Debug)]
pub(crate) enum HostFailure {
    /// No such host here (421, as the data plane answers).
    Misdirected,
    /// The store failed.
    Store(ControlError),
}

impl HostFailure {
    pub(crate) fn page(&self) -> Response {
        match self {
            HostFailure::Misdirected => pages::error(
                StatusCode::MISDIRECTED_REQUEST,
                "Unknown gateway host",
                "This gateway does not serve that host name. Check the MCP URL you connected to.",
            ),
            HostFailure::Store(error) => {
                tracing::warn!(%error, "Host lookup failed.");
                unavailable_page()
            }
        }
    }
}

/// The page for a store failure.
pub(crate) fn unavailable_page() -> Response {
    pages::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The gateway could not complete this step. Wait a moment and try again.",
    )
}

/// The client's address, when the server recorded it.
pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// A context for a write caused by the consent flow.
pub(crate) fn context(component: &str) -> Context {
    Context::system(component, &ulid_like())
}

/// A correlation id.
pub(crate) fn ulid_like() -> String {
    browser::random_token()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
