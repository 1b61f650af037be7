//! The MCP endpoint: `POST|GET|DELETE /mcp` and `/mcp/{server_key}` per host, and the RFC 9728
//! protected-resource metadata.
//!
//! Every request is admitted in this order, each step failing closed with a typed answer:
//! the replica is current (else 503), the `Host` header names a host this deployment serves
//! (else 421), a present `Origin` is allowed (else 403), the bearer token verifies against the
//! host's keys and issuer and names one of its MCP resources (else 401 with
//! `WWW-Authenticate`), its consent session and agent are live (else 401 `invalid_token`, so
//! clients re-run consent), and a `/mcp/{server_key}` path names the session's server (else
//! 403). Then the transport rules (Accept 406, Content-Type 415, protocol version 400, body
//! size 413, JSON 400 with -32700/-32600, session handle 400/404), then the message itself:
//! `tools/call` is decided and audited before anything is forwarded.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use portcullis_projector::Buckets;
use portcullis_projector::models::{Agent, Host, Server, ToolVisibility};
use portcullis_secrets::KeyRing;
use portcullis_store::AuditLog;
use portcullis_tokens::{AccessClaims, HostRef, PublicUrls};
use portcullis_upstream::UrlPolicy;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::auth::{TokenCache, bearer};
use crate::decide::{self, Decision, DenyReason, Facts};
use crate::handle::{ClientCapabilities, SessionHandle};
use crate::jsonrpc::{self, Kind, Limits, codes};
use crate::metrics::{DecisionLabels, FailureLabels, Metrics, RequestLabels};
use crate::policy::{Policy, PolicyError};
use crate::relay::{
    self, Exchange, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, Pending, Transform, UpstreamFailure,
};
use crate::replica::{Replica, SessionRecord};

/// Protocol versions of the legacy era this proxy speaks.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// The version assumed when a client sends none (the spec's rule).
const ASSUMED_VERSION: &str = "2025-03-26";

/// Settings of the data plane.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where hosts answer (to resolve `Host` and to check issuers and audiences).
    pub public_urls: PublicUrls,
    /// The organization whose default host answers requests naming no host.
    pub default_org_id: String,
    /// Body size and JSON depth limits.
    pub limits: Limits,
    /// Largest total size of request headers, bytes.
    pub max_header_bytes: usize,
    /// Connect timeout to upstreams.
    pub upstream_connect_timeout: Duration,
    /// Longest wait for an upstream's response head.
    pub upstream_timeout: Duration,
    /// Longest silence inside an upstream body or SSE stream.
    pub sse_idle_timeout: Duration,
    /// Largest single SSE event, bytes.
    pub max_event_bytes: usize,
    /// Largest JSON answer from an upstream, bytes.
    pub max_response_bytes: usize,
    /// Which upstream addresses may be reached.
    pub url_policy: UrlPolicy,
    /// How long a request waits for policy data that is not current (a store failover) to
    /// become current before it is refused with 503; zero refuses at once.
    pub stale_wait: Duration,
}

impl Config {
    /// Defaults for `public_urls`.
    pub fn new(public_urls: PublicUrls, default_org_id: &str, url_policy: UrlPolicy) -> Self {
        Self {
            public_urls,
            default_org_id: default_org_id.to_owned(),
            limits: Limits::default(),
            max_header_bytes: 32 * 1024,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            sse_idle_timeout: Duration::from_secs(300),
            max_event_bytes: 8 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            url_policy,
            stale_wait: Duration::from_secs(10),
        }
    }
}

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The outbound client could not be built.
    #[error("could not build the upstream HTTP client: {0}")]
    Client(#[from] portcullis_upstream::ForwardFailure),
}

/// Shared state of every request.
pub struct Inner {
    pub(crate) config: Config,
    pub(crate) policy: Policy,
    pub(crate) ring: KeyRing,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) client: portcullis_upstream::ForwardingClient,
    pub(crate) tokens: TokenCache,
    pub(crate) metrics: Metrics,
}

impl Inner {
    /// Counts an upstream failure of `kind` and describes it.
    pub(crate) fn upstream_failure(&self, kind: &'static str, detail: String) -> UpstreamFailure {
        self.metrics
            .upstream_failures
            .get_or_create(&FailureLabels { kind })
            .inc();
        UpstreamFailure { kind, detail }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The MCP proxy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DataPlane {
    inner: Arc<Inner>,
}

impl DataPlane {
    /// A proxy deciding from `replica` (whose buckets are `buckets`), sealing session handles
    /// with `ring`, writing decisions to `audit`.
    pub fn new(
        config: Config,
        replica: Replica,
        buckets: Buckets,
        ring: KeyRing,
        audit: Arc<dyn AuditLog>,
    ) -> Result<Self, StartError> {
        let client = portcullis_upstream::ForwardingClient::new(
            config.url_policy,
            config.upstream_connect_timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                policy: Policy::new(replica, buckets),
                ring,
                audit,
                client,
                tokens: TokenCache::default(),
                metrics: Metrics::default(),
            }),
        })
    }

    /// The routes: the MCP endpoints and the protected-resource metadata.
    pub fn router(&self) -> Router {
        let max_header_bytes = self.inner.config.max_header_bytes;
        Router::new()
            .route("/mcp", get(get_root).post(post_root).delete(delete_root))
            .route(
                "/mcp/{server_key}",
                get(get_keyed).post(post_keyed).delete(delete_keyed),
            )
            .route("/.well-known/oauth-protected-resource", get(prm_root))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm_root))
            .route(
                "/.well-known/oauth-protected-resource/mcp/{server_key}",
                get(prm_keyed),
            )
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                limit_headers(request, next, max_header_bytes)
            }))
            .with_state(self.inner.clone())
    }

    /// The proxy's metrics and the replica's, in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut text = self.inner.metrics.text();
        text.push_str(&self.inner.policy.replica().metrics_text());
        text
    }

    /// The replica it decides from.
    pub fn replica(&self) -> &Replica {
        self.inner.policy.replica()
    }
}

async fn limit_headers(request: Request, next: Next, max: usize) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > max {
        return Reject::rpc(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            None,
            codes::INVALID_REQUEST,
            format!("The request headers total {size} bytes; at most {max} are accepted."),
            None,
        )
        .into_response();
    }
    next.run(request).await
}

// -------------------------------------------------------------------------------------
// Errors
// -------------------------------------------------------------------------------------

/// A refusal: an HTTP status with a JSON-RPC error body, and headers (boxed: it travels in
/// every `Result` of the request path).
#[derive(Debug)]
pub struct Reject(Box<Refusal>);

#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    body: Bytes,
    headers: HeaderMap,
    /// Refused only because a recorded change has not reached the read models yet; the
    /// request may wait for it (`settled`).
    pending: bool,
}

impl Reject {
    /// A JSON-RPC error answering `id`.
    pub fn rpc(
        status: StatusCode,
        id: Option<&RawValue>,
        code: i64,
        message: impl Into<String>,
        data: Option<Value>,
    ) -> Self {
        Self(Box::new(Refusal {
            status,
            pending: false,
            body: jsonrpc::error_response(id, code, &message.into(), data),
            headers: HeaderMap::new(),
        }))
    }

    /// 404: the MCP session is unknown or ended; the client must initialize again.
    pub fn session_gone() -> Self {
        Self::rpc(
            StatusCode::NOT_FOUND,
            None,
            codes::SESSION_NOT_FOUND,
            "The MCP session is unknown or has ended; initialize a new one.",
            None,
        )
    }

    fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.0.headers.insert(name, value);
        }
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::rpc(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            message,
            None,
        )
    }

    fn policy(error: PolicyError) -> Self {
        if let PolicyError::Pending { .. } = error {
            let mut reject = Self::rpc(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                codes::GATEWAY_UNAVAILABLE,
                format!(
                    "A recorded change to the gateway's policy data has not been applied yet ({error}); the request was refused. Retry shortly."
                ),
                None,
            )
            .with_header(header::RETRY_AFTER, "1");
            reject.0.pending = true;
            return reject;
        }
        tracing::error!(%error, "A read model could not be used; refusing.");
        Self::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            codes::GATEWAY_UNAVAILABLE,
            "The gateway cannot read its policy data; the request was refused. Retry shortly.",
            None,
        )
        .with_header(header::RETRY_AFTER, "1")
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let Refusal {
            status,
            body,
            headers,
            ..
        } = *self.0;
        let mut response = (status, headers, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

// -------------------------------------------------------------------------------------
// Admission
// -------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn authority(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// A resolved host.
struct HostContext {
    host_id: String,
    host: Arc<Host>,
    base: String,
}

impl HostContext {
    fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// The metadata URL for `/mcp/{key}`, or for `/mcp` (carrying the `upstream_mcp` hint,
    /// so the resource the client asks a token for keeps it and consent can pre-select).
    fn prm_url(&self, server_key: Option<&str>, hint: Option<&str>) -> String {
        match (server_key, hint) {
            (Some(key), _) => format!(
                "{}/.well-known/oauth-protected-resource/mcp/{key}",
                self.base
            ),
            (None, Some(hint)) => format!(
                "{}/.well-known/oauth-protected-resource/mcp?{}",
                self.base,
                hint_query(hint)
            ),
            (None, None) => format!("{}/.well-known/oauth-protected-resource/mcp", self.base),
        }
    }
}

/// Runs `step` again while it stops only at a recorded change the read models do not show
/// yet, for up to `stale_wait`: the decision is then made from the changed value, typically
/// a few milliseconds later, never from the old one.
async fn settled<T>(
    inner: &Inner,
    mut step: impl FnMut() -> Result<T, Reject>,
) -> Result<T, Reject> {
    /// First pause of a held request; a projected write takes milliseconds.
    const FIRST_POLL: Duration = Duration::from_millis(2);
    /// Longest pause: a change that takes long (its mark ends with the projector's
    /// checkpoint) must not have every held request spinning.
    const LAST_POLL: Duration = Duration::from_millis(50);
    let deadline = tokio::time::Instant::now() + inner.config.stale_wait;
    let mut poll = FIRST_POLL;
    let mut counted = false;
    loop {
        match step() {
            Err(reject) if reject.0.pending && tokio::time::Instant::now() < deadline => {
                if !counted {
                    inner.policy.replica().held_for_pending_change();
                    counted = true;
                }
                tokio::time::sleep(poll).await;
                poll = (poll * 2).min(LAST_POLL);
            }
            other => return other,
        }
    }
}

/// Waits (up to `stale_wait`) for the policy data to be current; refuses with 503 if it does
/// not become so.
async fn fresh(inner: &Inner) -> Result<(), Reject> {
    let replica = inner.policy.replica();
    replica.wait_fresh(inner.config.stale_wait).await.map_err(|staleness| {
        Reject::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            codes::GATEWAY_UNAVAILABLE,
            format!(
                "The gateway's policy data is not current ({staleness}); requests are refused until it catches up. Retry shortly."
            ),
            None,
        )
        .with_header(header::RETRY_AFTER, "1")
    })
}

fn resolve_host(inner: &Inner, headers: &HeaderMap) -> Result<HostContext, Reject> {
    let misdirected = || {
        Reject::rpc(
            StatusCode::MISDIRECTED_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "This gateway does not serve the host named in the Host header.",
            None,
        )
    };
    let host_ref = authority(headers)
        .and_then(|a| inner.config.public_urls.resolve_host(a))
        .ok_or_else(misdirected)?;
    let host_id = match host_ref {
        HostRef::Named(id) => id,
        HostRef::Default => inner
            .policy
            .organization(&inner.config.default_org_id)
            .map_err(Reject::policy)?
            .and_then(|org| org.default_host_id.clone())
            .ok_or_else(misdirected)?,
    };
    let host = inner
        .policy
        .host(&host_id)
        .map_err(|e| match e {
            PolicyError::BadKey(_) => misdirected(),
            other => Reject::policy(other),
        })?
        .ok_or_else(misdirected)?;
    let base = inner
        .config
        .public_urls
        .host_base(&host_id, host.is_default);
    Ok(HostContext {
        host_id,
        host,
        base,
    })
}

fn origin_of(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase()
            )
        }
        None => url.to_ascii_lowercase(),
    }
}

/// Whether an origin is a loopback page (any port): allowed only when the gateway itself runs
/// on loopback (`dev`), where local tools such as the MCP Inspector live.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let name = if rest.starts_with('[') {
        rest.split(']').next().map(|n| format!("{n}]"))
    } else {
        rest.split(':').next().map(str::to_owned)
    };
    matches!(name.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

fn check_origin(inner: &Inner, host: &HostContext, headers: &HeaderMap) -> Result<(), Reject> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map(origin_of).unwrap_or_default();
    let dev = inner.config.public_urls.base_domain.is_none()
        && is_loopback_origin(&origin_of(&host.base));
    let allowed = origin == origin_of(&host.base)
        || (dev && is_loopback_origin(&origin))
        || host
            .host
            .settings
            .allowed_origins
            .iter()
            .any(|allowed| origin_of(allowed) == origin);
    if allowed && origin != "null" {
        Ok(())
    } else {
        Err(Reject::rpc(
            StatusCode::FORBIDDEN,
            None,
            codes::INVALID_REQUEST,
            format!(
                "Origin {origin:?} may not call this MCP endpoint; an admin can add it to the host's allowed origins."
            ),
            None,
        ))
    }
}

/// A request that passed admission.
struct Admitted {
    host: HostContext,
    claims: Arc<AccessClaims>,
    session: SessionRecord,
    agent: Arc<Agent>,
    server_id: String,
    server: Arc<Server>,
}

fn unauthorized(
    host: &HostContext,
    server_key: Option<&str>,
    hint: Option<&str>,
    error: Option<&str>,
) -> Reject {
    let prm = host.prm_url(server_key, hint);
    let (challenge, message) = match error {
        None => (
            format!("Bearer resource_metadata=\"{prm}\""),
            "Authorization required: connect through the gateway's sign-in.".to_owned(),
        ),
        Some(description) => (
            format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{prm}\"",
                description.replace(['"', '\\'], "'")
            ),
            format!("Invalid access token: {description}. Reconnect to sign in again."),
        ),
    };
    Reject::rpc(
        StatusCode::UNAUTHORIZED,
        None,
        codes::INVALID_REQUEST,
        message,
        None,
    )
    .with_header(header::WWW_AUTHENTICATE, &challenge)
}

fn admit(
    inner: &Inner,
    server_key: Option<&str>,
    hint: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, Reject> {
    for name in ["host", "origin", "authorization", MCP_SESSION_ID] {
        single(headers, name)?;
    }
    let host = resolve_host(inner, headers)?;
    check_origin(inner, &host, headers)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or_else(|| unauthorized(&host, server_key, hint, None))?;
    let invalid = |why: &str| unauthorized(&host, server_key, hint, Some(why));
    let now_ms = now_ms();
    let now_seconds = u64::try_from(now_ms / 1000).unwrap_or(0);
    let claims = inner
        .tokens
        .verify(
            &inner.metrics,
            &host.host_id,
            &host.host,
            &host.base,
            token,
            now_seconds,
        )
        .map_err(|e| invalid(&e.to_string()))?;
    let mcp_url = host.mcp_url();
    let audience_ok = claims.aud == mcp_url
        || claims
            .aud
            .strip_prefix(&mcp_url)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|key| !key.is_empty() && !key.contains('/'));
    if !audience_ok {
        return Err(invalid("the token is for another resource"));
    }
    let session = inner
        .policy
        .session(&host.host_id, &claims.sid)
        .map_err(|e| match e {
            PolicyError::BadKey(_) => invalid("the token names no session"),
            other => Reject::policy(other),
        })?
        .ok_or_else(|| invalid("the session has ended"))?;
    if session.human_id() != claims.sub || session.client_id() != claims.client_id {
        return Err(invalid("the token does not match its session"));
    }
    if session.is_revoked() {
        return Err(invalid("the session was revoked"));
    }
    if !session.is_live_at(now_ms) {
        return Err(invalid("the session has expired"));
    }
    let agent = inner
        .policy
        .agent(&host.host_id, &session.agent_id())
        .map_err(Reject::policy)?
        .filter(|agent| {
            agent.session_survives_revocations(&session.server_id(), session.started_sequence())
        })
        .ok_or_else(|| invalid("the agent's access was revoked"))?;
    if let Some(key) = server_key {
        let owner = inner
            .policy
            .server_by_key(&host.host_id, key)
            .map_err(|e| match e {
                PolicyError::BadKey(_) => not_found_server(key),
                other => Reject::policy(other),
            })?
            .ok_or_else(|| not_found_server(key))?;
        if *owner != *session.server_id() {
            return Err(Reject::rpc(
                StatusCode::FORBIDDEN,
                None,
                codes::INVALID_REQUEST,
                format!(
                    "This connection was consented for another server, not `{key}`. Connect to `{key}` to consent for it."
                ),
                None,
            ));
        }
    }
    let server = inner
        .policy
        .server(&host.host_id, &session.server_id())
        .map_err(Reject::policy)?
        .ok_or_else(|| {
            Reject::rpc(
                StatusCode::NOT_FOUND,
                None,
                codes::INVALID_REQUEST,
                "The server this connection was consented for has been removed by an admin.",
                None,
            )
        })?;
    Ok(Admitted {
        server_id: session.server_id().to_string(),
        host,
        claims,
        session,
        agent,
        server,
    })
}

fn not_found_server(key: &str) -> Reject {
    Reject::rpc(
        StatusCode::NOT_FOUND,
        None,
        codes::INVALID_REQUEST,
        format!(
            "This host has no MCP server `{}`.",
            key.chars().take(80).collect::<String>()
        ),
        None,
    )
}

fn accepts(headers: &HeaderMap, wanted: &[&str]) -> bool {
    let accept: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    wanted
        .iter()
        .all(|w| accept.iter().any(|a| a == w || a == "*/*"))
}

/// Refuses a request that repeats a header the gateway decides on (so no component can read
/// a different copy than the one checked).
fn single(headers: &HeaderMap, name: &str) -> Result<(), Reject> {
    if headers.get_all(name).iter().nth(1).is_some() {
        return Err(Reject::bad_request(format!(
            "The {name} header appears more than once."
        )));
    }
    Ok(())
}

fn protocol_version(headers: &HeaderMap) -> Result<Option<String>, Reject> {
    single(headers, MCP_PROTOCOL_VERSION)?;
    let Some(value) = headers.get(MCP_PROTOCOL_VERSION) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if SUPPORTED_VERSIONS.contains(&text) {
        Ok(Some(text.to_owned()))
    } else {
        Err(Reject::rpc(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            format!(
                "Unsupported MCP-Protocol-Version {text:?}; this gateway speaks {SUPPORTED_VERSIONS:?}."
            ),
            Some(json!({ "supported": SUPPORTED_VERSIONS, "requested": text })),
        ))
    }
}

fn open_handle(
    inner: &Inner,
    headers: &HeaderMap,
    admitted: &Admitted,
) -> Result<SessionHandle, Reject> {
    let Some(value) = headers.get(MCP_SESSION_ID) else {
        return Err(Reject::bad_request(
            "The Mcp-Session-Id header is required after initialize.",
        ));
    };
    let handle = value
        .to_str()
        .ok()
        .and_then(|text| SessionHandle::open(&inner.ring, text).ok())
        .ok_or_else(Reject::session_gone)?;
    // Bound to the consent session, host and server it was issued for.
    if handle.sid != admitted.claims.sid
        || handle.host_id != admitted.host.host_id
        || handle.server_id != admitted.server_id
    {
        return Err(Reject::session_gone());
    }
    Ok(handle)
}

// -------------------------------------------------------------------------------------
// Handlers
// -------------------------------------------------------------------------------------

/// Longest `upstream_mcp` hint kept, in bytes (a URL); longer ones are ignored.
const MAX_HINT_BYTES: usize = 2048;

/// The `upstream_mcp` parameter of `/mcp?upstream_mcp=<url>`: which server the consent
/// pages pre-select (only if the human holds a grant on it; ignored otherwise). It only
/// travels into the protected-resource metadata's `resource`; it grants nothing.
fn upstream_hint(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "upstream_mcp")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty() && value.len() <= MAX_HINT_BYTES)
}

/// `upstream_mcp=<url, form-encoded>`.
fn hint_query(hint: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("upstream_mcp", hint)
        .finish()
}

async fn post_root(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let hint = upstream_hint(query.as_deref());
    instrumented(inner, Method::POST, None, hint, headers, body).await
}

async fn post_keyed(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    instrumented(inner, Method::POST, Some(key), None, headers, body).await
}

async fn get_root(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let hint = upstream_hint(query.as_deref());
    instrumented(inner, Method::GET, None, hint, headers, Body::empty()).await
}

async fn get_keyed(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    instrumented(inner, Method::GET, Some(key), None, headers, Body::empty()).await
}

async fn delete_root(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let hint = upstream_hint(query.as_deref());
    instrumented(inner, Method::DELETE, None, hint, headers, Body::empty()).await
}

async fn delete_keyed(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    instrumented(
        inner,
        Method::DELETE,
        Some(key),
        None,
        headers,
        Body::empty(),
    )
    .await
}

/// Runs one request inside its span and records its metrics.
async fn instrumented(
    inner: Arc<Inner>,
    method: Method,
    server_key: Option<String>,
    hint: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = ulid::Ulid::new().to_string();
    let span = tracing::info_span!(
        "mcp.request",
        otel.kind = "server",
        request_id = %request_id,
        http.method = %method,
        server_key = server_key.as_deref().unwrap_or(""),
        host = tracing::field::Empty,
        rpc = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    crate::tracing_context::continue_from(&span, &headers);
    let mut rpc: &'static str = "-";
    let mut response = async {
        match method {
            Method::POST => {
                post(
                    &inner,
                    server_key.as_deref(),
                    hint.as_deref(),
                    &headers,
                    body,
                    &request_id,
                    &mut rpc,
                )
                .await
            }
            Method::GET => stream(&inner, server_key.as_deref(), hint.as_deref(), &headers).await,
            _ => delete(&inner, server_key.as_deref(), hint.as_deref(), &headers).await,
        }
        .unwrap_or_else(IntoResponse::into_response)
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("rpc", rpc);
    span.record("status", status);
    let labels = RequestLabels {
        method: match method {
            Method::POST => "POST",
            Method::GET => "GET",
            _ => "DELETE",
        },
        rpc,
        status,
    };
    inner.metrics.requests.get_or_create(&labels).inc();
    inner
        .metrics
        .request_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn rpc_label(method: &str) -> &'static str {
    match method {
        "initialize" => "initialize",
        "tools/call" => "tools/call",
        "tools/list" => "tools/list",
        _ => "other",
    }
}

async fn post(
    inner: &Arc<Inner>,
    server_key: Option<&str>,
    hint: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
    rpc: &mut &'static str,
) -> Result<Response, Reject> {
    // A refusal before the body is read ends the connection: hyper would close it anyway
    // with the body unread, and saying so keeps clients from reusing it (an unannounced
    // close made keep-alive clients fail their next request).
    let early = |reject: Reject| reject.with_header(header::CONNECTION, "close");
    fresh(inner).await.map_err(early)?;
    let admitted = settled(inner, || admit(inner, server_key, hint, headers))
        .await
        .map_err(early)?;
    tracing::Span::current().record("host", admitted.host.host_id.as_str());
    if !accepts(headers, &["application/json", "text/event-stream"]) {
        return Err(early(Reject::rpc(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "The Accept header must list both application/json and text/event-stream.",
            None,
        )));
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_body {
        return Err(early(Reject::rpc(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            codes::INVALID_REQUEST,
            "The body must be application/json.",
            None,
        )));
    }
    let version = protocol_version(headers).map_err(early)?;
    let limit = inner.config.limits.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        early(Reject::rpc(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            codes::INVALID_REQUEST,
            format!("The body is larger than {limit} bytes, or was cut off."),
            None,
        ))
    })?;
    let message = jsonrpc::parse(bytes, &inner.config.limits).map_err(|bad| {
        Reject::rpc(
            StatusCode::BAD_REQUEST,
            None,
            bad.code(),
            bad.to_string(),
            None,
        )
    })?;
    *rpc = message.method().map_or("response", rpc_label);

    if let Kind::Request { method, .. } = &message.kind
        && method == "initialize"
    {
        return initialize(inner, &admitted, message).await;
    }
    let handle = open_handle(inner, headers, &admitted)?;
    let version = version.unwrap_or_else(|| handle.protocol_version.clone());
    let pending = Pending {
        id: message.id().map(ToOwned::to_owned),
        server_key: admitted.server.key.clone(),
        url: admitted.server.url.clone(),
    };
    let transform = match message.method() {
        Some("tools/call") => {
            if let Some(denied) = authorize_call(inner, &admitted, &message, request_id).await? {
                return Ok(denied);
            }
            Transform::None
        }
        Some("tools/list") => list_filter(inner, &admitted, &message).await?,
        _ => Transform::None,
    };
    forward(
        inner,
        &admitted,
        handle,
        Some(message.bytes),
        &version,
        pending,
        transform,
        None,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    inner: &Arc<Inner>,
    admitted: &Admitted,
    handle: SessionHandle,
    body: Option<Bytes>,
    version: &str,
    pending: Pending,
    transform: Transform,
    last_event_id: Option<String>,
) -> Result<Response, Reject> {
    let bearer = settled(inner, || {
        upstream_bearer(inner, admitted, pending.id.as_deref())
    })
    .await?;
    let method = if body.is_some() {
        axum::http::Method::POST
    } else {
        axum::http::Method::GET
    };
    let exchange = Exchange {
        method,
        url: &admitted.server.url,
        server_key: &admitted.server.key,
        body,
        protocol_version: Some(version),
        upstream_session: handle.upstream_session.as_deref(),
        last_event_id,
        timeout: server_timeout(&admitted.server),
        bearer: bearer.as_deref().map(String::as_str),
    };
    let upstream = match relay::send(inner, exchange).await {
        Ok(upstream) => upstream,
        Err(failure) => {
            return Err(relay::upstream_error(
                &admitted.server.key,
                pending.id.as_deref(),
                &failure,
            ));
        }
    };
    Ok(relay::respond(inner.clone(), upstream, handle, None, pending, transform).await)
}

/// The admin's timeout for a server, if set.
fn server_timeout(server: &Server) -> Option<Duration> {
    server.timeout_seconds.map(Duration::from_secs)
}

/// The human's access token at the upstream, for servers that need their own sign-in (the
/// consent flow stored it sealed); `None` for servers without upstream authentication. No
/// credential, or an expired one, is refused: the client's token is never forwarded.
fn upstream_bearer(
    inner: &Inner,
    admitted: &Admitted,
    id: Option<&RawValue>,
) -> Result<Option<zeroize::Zeroizing<String>>, Reject> {
    use base64::Engine as _;
    if let portcullis_projector::models::UpstreamAuth::None = admitted.server.upstream_auth {
        return Ok(None);
    }
    let refuse = |why: &str| {
        Reject::rpc(
            StatusCode::OK,
            id,
            codes::UPSTREAM_AUTH_REQUIRED,
            format!(
                "Upstream MCP server `{}` needs you to sign in to it, and {why}. Reconnect to sign in to it again.",
                admitted.server.key
            ),
            Some(json!({ "server": admitted.server.key })),
        )
    };
    let credential = inner
        .policy
        .upstream_credential(
            &admitted.host.host_id,
            &admitted.session.human_id(),
            &admitted.server_id,
        )
        .map_err(Reject::policy)?
        .ok_or_else(|| refuse("no upstream credential is stored for you"))?;
    if credential.expires_at_ms != 0 && credential.expires_at_ms <= now_ms() {
        return Err(refuse("your upstream sign-in has expired"));
    }
    let aad = portcullis_upstream::oauth::credential_aad(
        &admitted.host.host_id,
        &admitted.session.human_id(),
        &admitted.server_id,
    );
    let opened = base64::engine::general_purpose::STANDARD
        .decode(&credential.credential_sealed)
        .ok()
        .and_then(|sealed| inner.ring.open_from_bytes(&sealed, aad.as_bytes()).ok())
        .and_then(|json| {
            serde_json::from_slice::<portcullis_upstream::oauth::StoredCredential>(&json).ok()
        })
        .ok_or_else(|| refuse("your upstream credential cannot be read"))?;
    Ok(Some(zeroize::Zeroizing::new(
        opened.tokens.access_token.expose().to_owned(),
    )))
}

async fn initialize(
    inner: &Arc<Inner>,
    admitted: &Admitted,
    message: jsonrpc::Message,
) -> Result<Response, Reject> {
    let bearer = settled(inner, || upstream_bearer(inner, admitted, message.id())).await?;
    let capabilities = ClientCapabilities::from_declared(message.capabilities.as_ref());
    let requested = message
        .protocol_version
        .clone()
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| ASSUMED_VERSION.to_owned());
    let pending = Pending {
        id: message.id().map(ToOwned::to_owned),
        server_key: admitted.server.key.clone(),
        url: admitted.server.url.clone(),
    };
    let exchange = Exchange {
        method: axum::http::Method::POST,
        url: &admitted.server.url,
        server_key: &admitted.server.key,
        body: Some(message.bytes.clone()),
        protocol_version: None,
        upstream_session: None,
        last_event_id: None,
        timeout: server_timeout(&admitted.server),
        bearer: bearer.as_deref().map(String::as_str),
    };
    let upstream = relay::send(inner, exchange)
        .await
        .map_err(|failure| relay::upstream_error(&admitted.server.key, message.id(), &failure))?;
    let upstream_session = upstream
        .headers()
        .get(MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 1024 && v.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .map(str::to_owned);
    let handle = SessionHandle {
        host_id: admitted.host.host_id.clone(),
        server_id: admitted.server_id.clone(),
        sid: admitted.claims.sid.clone(),
        upstream_session,
        protocol_version: requested,
        capabilities,
    };
    let sealed = handle.seal(&inner.ring).ok_or_else(|| {
        Reject::rpc(
            StatusCode::INTERNAL_SERVER_ERROR,
            message.id(),
            codes::INTERNAL_ERROR,
            "Could not create the MCP session.",
            None,
        )
    })?;
    let success = upstream.status().is_success();
    Ok(relay::respond(
        inner.clone(),
        upstream,
        handle,
        success.then_some(sealed),
        pending,
        Transform::None,
    )
    .await)
}

/// The human's grant on the session's server, if live.
fn grant_of(
    inner: &Inner,
    admitted: &Admitted,
) -> Result<Option<Arc<portcullis_projector::models::Grant>>, Reject> {
    inner
        .policy
        .grant(
            &admitted.host.host_id,
            &admitted.session.human_id(),
            &admitted.server_id,
        )
        .map_err(Reject::policy)
}

/// Decides and audits a `tools/call`; `Some(response)` when it is denied.
async fn authorize_call(
    inner: &Arc<Inner>,
    admitted: &Admitted,
    message: &jsonrpc::Message,
    request_id: &str,
) -> Result<Option<Response>, Reject> {
    let started = Instant::now();
    let grant = settled(inner, || grant_of(inner, admitted)).await?;
    let facts = Facts {
        session: &admitted.session,
        grant: grant.as_deref(),
        server: &admitted.server,
        agent: Some(&admitted.agent),
    };
    let tool = message.name.as_deref().unwrap_or("");
    let decision = if message.name.is_some() {
        decide::decide(&facts, tool)
    } else {
        Decision::Deny(
            DenyReason::UnknownTool,
            decide::effective_levels(&facts, None),
        )
    };
    let reason = match &decision {
        Decision::Allow(_) => "allowed",
        Decision::Deny(reason, _) => reason.as_str(),
    };
    let human = settled(inner, || {
        inner
            .policy
            .human(&admitted.host.host_id, &admitted.session.human_id())
            .map_err(Reject::policy)
    })
    .await?;
    let who = crate::audit::Subjects {
        host_id: &admitted.host.host_id,
        human_id: &admitted.session.human_id(),
        human_email: human.as_ref().map_or("", |h| h.email.as_str()),
        agent_id: &admitted.session.agent_id(),
        agent_name: &admitted.agent.name,
        client_id: &admitted.claims.client_id,
        server_id: &admitted.server_id,
        server_key: &admitted.server.key,
        request_id,
    };
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let arguments = message.arguments.as_ref().map(|raw| raw.get().as_bytes());
    let verdict = crate::audit::Verdict {
        tool,
        decision: &decision,
        reason,
        arguments,
        latency_us,
        now_ms: now_ms(),
    };
    if let Err(error) = crate::audit::record(&inner.audit, &who, &verdict).await {
        tracing::error!(%error, "The audit store did not take a decision; the call is refused.");
        return Err(Reject::rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            message.id(),
            codes::GATEWAY_UNAVAILABLE,
            "The gateway could not record this call in its audit log, so it was not made. Retry shortly.",
            None,
        )
        .with_header(header::RETRY_AFTER, "1"));
    }
    inner
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    inner
        .metrics
        .decisions
        .get_or_create(&DecisionLabels {
            decision: if matches!(decision, Decision::Allow(_)) {
                "allowed"
            } else {
                "denied"
            },
            reason,
        })
        .inc();
    tracing::info!(tool, decision = reason, "tools/call decided.");
    match decision {
        Decision::Allow(_) => Ok(None),
        Decision::Deny(reason, levels) => Ok(Some(
            Reject::rpc(
                StatusCode::OK,
                message.id(),
                codes::PERMISSION_DENIED,
                denial_message(&admitted.server.key, tool, reason, &levels),
                Some(json!({
                    "reason": reason.as_str(),
                    "tool": tool,
                    "server": admitted.server.key,
                    "required_trust": levels.required.map(|l| l.as_str()),
                    "granted_trust": levels.effective.as_str(),
                    "consented_trust": levels.consented.as_str(),
                    "grant_max_trust": levels.grant.map(|l| l.as_str()),
                    "agent_cap": levels.agent_cap.map(|l| l.as_str()),
                    "request_id": request_id,
                })),
            )
            .into_response(),
        )),
    }
}

fn denial_message(server: &str, tool: &str, reason: DenyReason, levels: &decide::Levels) -> String {
    match reason {
        DenyReason::UnknownTool => format!(
            "Permission denied: `{server}` has no tool `{tool}` that this gateway allows. An admin may need to refresh the server's tools."
        ),
        DenyReason::ToolDisabled => {
            format!("Permission denied: tool `{tool}` of `{server}` is disabled by an admin.")
        }
        DenyReason::NoGrant => format!(
            "Permission denied: you no longer have access to `{server}`. Ask an admin to grant it."
        ),
        DenyReason::GrantNewerThanSession => format!(
            "Permission denied: your access to `{server}` changed since this agent connected. Reconnect to consent again."
        ),
        DenyReason::AgentRevoked => {
            format!("Permission denied: this agent's access to `{server}` was revoked by an admin.")
        }
        DenyReason::InsufficientTrust => {
            let required = levels.required.map_or("unknown", |l| l.as_str());
            let granted = levels.effective.as_str();
            let ceiling = levels.grant.map_or("none", |l| l.as_str());
            let mut message = format!(
                "Permission denied: tool `{tool}` needs trust level {required}, and this agent is allowed {granted} (you consented to {}, your grant allows up to {ceiling}",
                levels.consented.as_str()
            );
            if let Some(cap) = levels.agent_cap {
                message.push_str(&format!(", an admin capped this agent at {}", cap.as_str()));
            }
            message.push_str("). ");
            let consent_can_fix = levels
                .grant
                .is_some_and(|g| levels.required.is_some_and(|r| r <= g))
                && levels
                    .agent_cap
                    .is_none_or(|c| levels.required.is_some_and(|r| r <= c));
            if consent_can_fix {
                message.push_str(&format!("Reconnect and choose {required} to allow it."));
            } else {
                message.push_str(&format!("Ask an admin to raise your access to {required}."));
            }
            message
        }
    }
}

async fn list_filter(
    inner: &Inner,
    admitted: &Admitted,
    message: &jsonrpc::Message,
) -> Result<Transform, Reject> {
    let Some(id) = message.id() else {
        return Ok(Transform::None);
    };
    let grant = settled(inner, || grant_of(inner, admitted)).await?;
    let facts = Facts {
        session: &admitted.session,
        grant: grant.as_deref(),
        server: &admitted.server,
        agent: Some(&admitted.agent),
    };
    let visible: HashSet<String> = if decide::standing(&facts).is_some() {
        // No access to the server at all: nothing to show in either mode.
        HashSet::new()
    } else {
        match inner
            .policy
            .host(&admitted.host.host_id)
            .ok()
            .flatten()
            .map_or(ToolVisibility::Permitted, |h| h.settings.tool_visibility)
        {
            ToolVisibility::Permitted => admitted
                .server
                .tools
                .keys()
                .filter(|name| decide::visible(&facts, name))
                .cloned()
                .collect(),
            ToolVisibility::All => admitted
                .server
                .tools
                .iter()
                .filter(|(_, tool)| tool.enabled)
                .map(|(name, _)| name.clone())
                .collect(),
        }
    };
    let id: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
    Ok(Transform::FilterTools {
        id: id.to_string(),
        keep: Arc::new(move |name: &str| visible.contains(name)),
    })
}

async fn stream(
    inner: &Arc<Inner>,
    server_key: Option<&str>,
    hint: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, Reject> {
    fresh(inner).await?;
    let admitted = settled(inner, || admit(inner, server_key, hint, headers)).await?;
    if !accepts(headers, &["text/event-stream"]) {
        return Err(Reject::rpc(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "The Accept header must list text/event-stream.",
            None,
        ));
    }
    let version = protocol_version(headers)?;
    let handle = open_handle(inner, headers, &admitted)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| handle.open_event_id(&inner.ring, text).ok())
                .ok_or_else(|| {
                    Reject::bad_request("Last-Event-ID is not an event id of this session.")
                })?,
        ),
    };
    let version = version.unwrap_or_else(|| handle.protocol_version.clone());
    let pending = Pending {
        id: None,
        server_key: admitted.server.key.clone(),
        url: admitted.server.url.clone(),
    };
    forward(
        inner,
        &admitted,
        handle,
        None,
        &version,
        pending,
        Transform::None,
        last_event_id,
    )
    .await
}

async fn delete(
    inner: &Arc<Inner>,
    server_key: Option<&str>,
    hint: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, Reject> {
    fresh(inner).await?;
    let admitted = settled(inner, || admit(inner, server_key, hint, headers)).await?;
    let version = protocol_version(headers)?;
    let handle = open_handle(inner, headers, &admitted)?;
    let Some(upstream_session) = handle.upstream_session.as_deref() else {
        // The upstream keeps no session: nothing to end.
        return Ok(StatusCode::OK.into_response());
    };
    let version = version.unwrap_or_else(|| handle.protocol_version.clone());
    let bearer = settled(inner, || upstream_bearer(inner, &admitted, None)).await?;
    let exchange = Exchange {
        method: axum::http::Method::DELETE,
        url: &admitted.server.url,
        server_key: &admitted.server.key,
        body: None,
        protocol_version: Some(&version),
        upstream_session: Some(upstream_session),
        last_event_id: None,
        timeout: server_timeout(&admitted.server),
        bearer: bearer.as_deref().map(String::as_str),
    };
    let upstream = relay::send(inner, exchange)
        .await
        .map_err(|failure| relay::upstream_error(&admitted.server.key, None, &failure))?;
    Ok(match upstream.status() {
        s if s.is_success() => StatusCode::OK.into_response(),
        StatusCode::METHOD_NOT_ALLOWED => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        _ => Reject::session_gone().into_response(),
    })
}

// -------------------------------------------------------------------------------------
// Protected-resource metadata (RFC 9728)
// -------------------------------------------------------------------------------------

async fn prm_root(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let hint = upstream_hint(query.as_deref());
    prm(&inner, &headers, None, hint.as_deref())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn prm_keyed(
    State(inner): State<Arc<Inner>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    prm(&inner, &headers, Some(&key), None)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn prm(
    inner: &Inner,
    headers: &HeaderMap,
    server_key: Option<&str>,
    hint: Option<&str>,
) -> Result<Response, Reject> {
    fresh(inner).await?;
    let host = settled(inner, || resolve_host(inner, headers)).await?;
    let (resource, name) = match server_key {
        None => (
            match hint {
                Some(hint) => format!("{}?{}", host.mcp_url(), hint_query(hint)),
                None => host.mcp_url(),
            },
            format!("Portcullis ({})", host.host_id),
        ),
        Some(key) => {
            let server_id = inner
                .policy
                .server_by_key(&host.host_id, key)
                .map_err(|_| not_found_server(key))?
                .ok_or_else(|| not_found_server(key))?;
            let server = inner
                .policy
                .server(&host.host_id, &server_id)
                .map_err(Reject::policy)?
                .ok_or_else(|| not_found_server(key))?;
            (
                format!("{}/{key}", host.mcp_url()),
                format!("{} via Portcullis", server.name),
            )
        }
    };
    let document = json!({
        "resource": resource,
        "authorization_servers": [host.base],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp"],
        "resource_name": name,
    });
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(document),
    )
        .into_response())
}
