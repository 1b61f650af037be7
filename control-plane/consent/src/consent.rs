//! The consent pages, one step at a time: sign in (or create an account and verify the
//! email), choose one of the servers the admin granted (or, when the host allows dynamic
//! MCPs, enter a server URL: discovered through the SSRF guard and added with the human's
//! own grant at High), check that the server answers, set the trust level (levels above the
//! grant's ceiling disabled, every tool shown Allowed or Denied), then Accept (a session, a
//! code, the redirect) or Deny (`access_denied`).
//!
//! `GET /consent?flow=…` shows whichever step is due; each form POSTs to its step and is
//! answered with a redirect back (post/redirect/get) or the same page with the problem. The
//! flow (the validated authorization request and the chosen server) travels sealed for the
//! host, so any replica serves any step; who is signed in travels in the sealed cookie.

use std::any::Any;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_commands::control::{
    AcceptConsent, ConsentServer, ControlError, DiscoveredServer, level_name,
};
use portcullis_domain::human::HumanRejected;
use portcullis_domain::validate::normalize_email;
use portcullis_oauth::authorize::AuthorizationRequest;
use portcullis_projector::models::SignInMethod;
use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1 as pb;
use portcullis_secrets::KeyRing;
use portcullis_upstream::{DiscoverError, Discovery};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::accounts::{SignIn, human_context};
use crate::browser::BrowserSession;
use crate::limits::Action;
use crate::oauth::see_other;
use crate::pages::{self, DenyForm, ErrorPage, LevelChoice, ServerChoice, ToolRow};
use crate::sealed::{open_json, seal_json};
use crate::{HostContext, Inner, client_ip, now_ms, unavailable_page};

/// How long a flow may take from the authorization request to the decision.
pub const FLOW_TTL_MS: i64 = 30 * 60 * 1000;

/// The state of one consent, carried sealed in the pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Flow {
    /// The validated authorization request.
    pub(crate) request: AuthorizationRequest,
    /// The chosen server, once chosen.
    pub(crate) server_id: Option<String>,
    /// Deadline, milliseconds since the Unix epoch.
    pub(crate) expires_at_ms: i64,
}

fn flow_aad(host_id: &str) -> String {
    format!("consent-flow:{host_id}")
}

impl Flow {
    pub(crate) fn start(request: AuthorizationRequest, now_ms: i64) -> Self {
        Self {
            request,
            server_id: None,
            expires_at_ms: now_ms.saturating_add(FLOW_TTL_MS),
        }
    }

    pub(crate) fn seal(&self, ring: &KeyRing) -> Result<String, crate::sealed::SealedError> {
        seal_json(ring, self, &flow_aad(&self.request.host_id))
    }

    fn open(ring: &KeyRing, host_id: &str, text: &str, now_ms: i64) -> Option<Self> {
        let flow: Flow = open_json(ring, text, &flow_aad(host_id)).ok()?;
        (flow.request.host_id == host_id && flow.expires_at_ms > now_ms).then_some(flow)
    }

    /// The server key the resource names (`<issuer>/mcp/<key>`), if it names one.
    pub(crate) fn resource_server_key(&self) -> Option<&str> {
        self.request
            .resource
            .strip_prefix(&self.request.issuer)?
            .strip_prefix("/mcp/")
            .filter(|key| !key.is_empty() && !key.contains(['/', '?', '#']))
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FlowQuery {
    #[serde(default)]
    flow: String,
}

/// A message on the page.
#[derive(Debug, Default)]
struct Notice {
    error: Option<String>,
    info: Option<String>,
    status: Option<StatusCode>,
    /// The server URL the human entered, shown again in its field.
    server_url: Option<String>,
}

impl Notice {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            status: Some(status),
            ..Self::default()
        }
    }

    fn info(message: impl Into<String>) -> Self {
        Self {
            info: Some(message.into()),
            ..Self::default()
        }
    }
}

fn bad_flow() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This sign-in link has expired",
        "The sign-in link is invalid or older than 30 minutes. Go back to your MCP client and connect again.",
    )
}

/// `GET /consent`: the step that is due.
pub(crate) async fn page(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<FlowQuery>,
) -> Response {
    let host = match inner.host(&headers).await {
        Ok(host) => host,
        Err(failure) => return failure.page(),
    };
    let now = now_ms();
    let Some(flow) = Flow::open(&inner.config.key_ring, &host.host_id, &query.flow, now) else {
        return bad_flow();
    };
    let (session, fresh) = match inner.cookies.read(&headers, &host.host_id, now) {
        Some(session) => (session, false),
        None => (BrowserSession::anonymous(&host.host_id, now), true),
    };
    let response = step(
        &inner,
        &host,
        &flow,
        &query.flow,
        &session,
        Notice::default(),
    )
    .await;
    if fresh {
        with_cookie(&inner, response, &session)
    } else {
        response
    }
}

fn with_cookie(inner: &Inner, mut response: Response, session: &BrowserSession) -> Response {
    match inner.cookies.write(session) {
        Some(cookie) => {
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => unavailable_page(),
    }
}

/// Renders the step that is due for `session` in `flow`.
async fn step(
    inner: &Inner,
    host: &HostContext,
    flow: &Flow,
    flow_text: &str,
    session: &BrowserSession,
    notice: Notice,
) -> Response {
    let status = notice.status.unwrap_or(StatusCode::OK);
    let client_name = flow.request.client_name.as_str();
    if let Some(human_id) = &session.human_id {
        let account = match inner.control.account(&host.host_id, human_id).await {
            Ok(account) => account,
            Err(error) => return store_failure(&error),
        };
        if let Some(account) = account.filter(|a| a.account.email_verified) {
            return chosen_step(
                inner,
                host,
                flow,
                flow_text,
                session,
                &account.email,
                notice,
            )
            .await;
        }
    }
    if let (Some(_), Some(email)) = (&session.pending_human_id, &session.pending_email) {
        let sign_in_code = session.pending_method() == SignInMethod::EmailOtp;
        return pages::render(
            status,
            &pages::Verify {
                title: if sign_in_code {
                    "Enter your sign-in code"
                } else {
                    "Verify your email"
                },
                flow: flow_text,
                csrf: &session.csrf,
                email,
                minutes: if sign_in_code { 5 } else { 10 },
                sign_in_code,
                error: notice.error.as_deref(),
                info: notice.info.as_deref(),
            },
        );
    }
    pages::render(
        status,
        &pages::SignIn {
            title: "Sign in",
            client_name,
            flow: flow_text,
            csrf: &session.csrf,
            email: "",
            password: host.auth.password,
            email_code: host.auth.email_otp,
            providers: host
                .auth
                .providers
                .iter()
                .map(|provider| (provider.id.as_str(), provider.label()))
                .collect(),
            sso_email: host
                .auth
                .providers
                .iter()
                .any(|provider| !provider.force_redirect_domains.is_empty()),
            passkeys: host.auth.passkeys,
            error: notice.error.as_deref(),
            info: notice.info.as_deref(),
        },
    )
}

/// The sign-in page of `posted`'s flow again, with `message`.
pub(crate) async fn sign_in_again(
    inner: &Inner,
    posted: &Posted,
    flow_text: &str,
    status: StatusCode,
    message: &str,
) -> Response {
    step(
        inner,
        &posted.host,
        &posted.flow,
        flow_text,
        &posted.session,
        Notice::error(status, message),
    )
    .await
}

fn store_failure(error: &ControlError) -> Response {
    tracing::warn!(%error, "Consent step failed.");
    unavailable_page()
}

/// The steps after sign-in: choose a server, then the trust level.
async fn chosen_step(
    inner: &Inner,
    host: &HostContext,
    flow: &Flow,
    flow_text: &str,
    session: &BrowserSession,
    email: &str,
    notice: Notice,
) -> Response {
    let Some(human_id) = session.human_id.as_deref() else {
        return bad_flow();
    };
    let servers = match inner.control.consent_servers(&host.host_id, human_id).await {
        Ok(servers) => servers,
        Err(error) => return store_failure(&error),
    };
    let deny = || DenyForm {
        flow: flow_text.to_owned(),
        csrf: session.csrf.clone(),
    };
    let chosen = if let Some(key) = flow.resource_server_key() {
        match servers.iter().find(|s| s.server.key == key) {
            Some(server) => Some(server),
            None => {
                return pages::render(
                    StatusCode::FORBIDDEN,
                    &ErrorPage {
                        title: "No access to this MCP server",
                        message: &format!(
                            "Your account ({email}) has no access to the MCP server \"{key}\" on this gateway. Ask your admin to grant you access to it, then connect again."
                        ),
                        retry: None,
                        deny: Some(deny()),
                    },
                );
            }
        }
    } else {
        flow.server_id
            .as_deref()
            .and_then(|id| servers.iter().find(|s| s.server_id == id))
    };
    let Some(server) = chosen else {
        // `?upstream_mcp=<url>` on the MCP URL pre-selects that server, if granted; a hint
        // naming anything else is ignored (it never reveals what exists).
        let hint = portcullis_oauth::authorize::upstream_hint(
            &flow.request.resource,
            &flow.request.issuer,
        );
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let hinted = hint
            .as_deref()
            .and_then(|hint| servers.iter().find(|s| same(&s.server.url, hint)))
            .map(|s| s.server_id.clone());
        let dynamic_mcps = match inner.control.consent_host(&host.host_id).await {
            Ok(host) => host.settings.dynamic_mcps,
            Err(error) => return store_failure(&error),
        };
        // The "Server URL" field shows what the human entered, else a hint no granted server
        // matched (the client's own words, so it reveals nothing).
        let server_url = dynamic_mcps.then(|| match (&notice.server_url, &hinted) {
            (Some(entered), _) => entered.clone(),
            (None, None) => hint.clone().unwrap_or_default(),
            (None, Some(_)) => String::new(),
        });
        let choices = servers
            .iter()
            .map(|s| ServerChoice {
                id: s.server_id.clone(),
                name: s.server.name.clone(),
                checked: match &hinted {
                    Some(id) => *id == s.server_id,
                    None => servers.len() == 1,
                },
            })
            .collect();
        return server_page(
            notice.status.unwrap_or(StatusCode::OK),
            &pages::ServerPage {
                title: "Choose an MCP server",
                client_name: &flow.request.client_name,
                flow: flow_text,
                csrf: &session.csrf,
                email,
                servers: choices,
                passkey_register: host.auth.passkeys,
                error: notice.error.as_deref(),
            },
            server_url,
        );
    };
    if crate::upstream::needs_sign_in(server) {
        let token = match crate::upstream::access_token(
            inner,
            &host.host_id,
            human_id,
            &server.server_id,
        )
        .await
        {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(%error, "Upstream credential unreadable; asking to sign in again.");
                None
            }
        };
        let Some(token) = token else {
            return crate::upstream::page(flow, flow_text, session, server, None);
        };
        match portcullis_upstream::discover_with_token(
            &server.server.url,
            &token,
            inner.config.url_policy,
            &inner.config.discover,
        )
        .await
        {
            Ok(_) => {
                return trust_page(
                    flow,
                    flow_text,
                    session,
                    email,
                    server,
                    host.auth.passkeys,
                    notice,
                );
            }
            Err(portcullis_upstream::DiscoverError::AuthorizationRequired { .. }) => {
                return crate::upstream::page(
                    flow,
                    flow_text,
                    session,
                    server,
                    Some("The MCP server no longer accepts your sign-in. Sign in to it again."),
                );
            }
            Err(error) => {
                return pages::render(
                    StatusCode::BAD_GATEWAY,
                    &ErrorPage {
                        title: "The MCP server did not answer",
                        message: &format!(
                            "{} could not be reached just now ({error}). Retry, or ask your admin if it keeps failing.",
                            server.server.name
                        ),
                        retry: Some(flow_text.to_owned()),
                        deny: Some(deny()),
                    },
                );
            }
        }
    }
    if let Err(problem) = check_server(inner, server).await {
        return pages::render(
            StatusCode::BAD_GATEWAY,
            &ErrorPage {
                title: "The MCP server did not answer",
                message: &problem,
                retry: Some(flow_text.to_owned()),
                deny: Some(deny()),
            },
        );
    }
    trust_page(
        flow,
        flow_text,
        session,
        email,
        server,
        host.auth.passkeys,
        notice,
    )
}

/// The server page; with `server_url` (the text to show in it), the "Server URL" field too.
///
/// The field's text travels as the template's runtime value `server_url`, so the page struct
/// stays as it is for hosts without dynamic MCPs.
fn server_page(
    status: StatusCode,
    page: &pages::ServerPage<'_>,
    server_url: Option<String>,
) -> Response {
    let values = server_url
        .as_ref()
        .map(|url| [("server_url", url as &dyn Any)]);
    match page.render_with_values(&values) {
        Ok(html) => {
            pages::with_security_headers((status, html).into_response(), "text/html; charset=utf-8")
        }
        Err(error) => {
            tracing::error!(%error, "A consent page failed to render.");
            pages::with_security_headers(
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

/// Step 3: the server answers `initialize` and `tools/list`.
async fn check_server(inner: &Inner, server: &ConsentServer) -> Result<(), String> {
    portcullis_upstream::discover(
        &server.server.url,
        inner.config.url_policy,
        &inner.config.discover,
    )
    .await
    .map(|_| ())
    .map_err(|error| {
        tracing::info!(server_id = %server.server_id, %error, "Server check failed in consent.");
        format!(
            "{} could not be reached just now ({error}). Retry, or ask your admin if it keeps failing.",
            server.server.name
        )
    })
}

const LEVELS: [(TrustLevel, &str); 3] = [
    (TrustLevel::Low, "low"),
    (TrustLevel::Medium, "medium"),
    (TrustLevel::High, "high"),
];

fn trust_page(
    flow: &Flow,
    flow_text: &str,
    session: &BrowserSession,
    email: &str,
    server: &ConsentServer,
    passkey_register: bool,
    notice: Notice,
) -> Response {
    let levels = LEVELS
        .iter()
        .map(|(level, id)| LevelChoice {
            id,
            name: level_name(*level),
            checked: *level == TrustLevel::Low,
            disabled: *level > server.max_trust_level,
            tools: server
                .server
                .tools
                .iter()
                .map(|(name, tool)| ToolRow {
                    name: name.clone(),
                    needs: if tool.enabled {
                        level_name(tool.trust_level)
                    } else {
                        "Disabled by admin"
                    },
                    allowed: tool.enabled && tool.trust_level <= *level,
                })
                .collect(),
        })
        .collect();
    pages::render(
        notice.status.unwrap_or(StatusCode::OK),
        &pages::TrustPage {
            title: "Set the trust level",
            client_name: &flow.request.client_name,
            server_name: &server.server.name,
            email,
            ceiling: level_name(server.max_trust_level),
            flow: flow_text,
            csrf: &session.csrf,
            levels,
            passkey_register,
            error: notice.error.as_deref(),
        },
    )
}

/// What every POST checks first: the host, `Origin`, a live session, the CSRF token and
/// the flow.
pub(crate) struct Posted {
    pub(crate) host: HostContext,
    pub(crate) flow: Flow,
    pub(crate) session: BrowserSession,
}

/// A form that carries only the flow and the CSRF token.
#[derive(Deserialize)]
pub(crate) struct FlowForm {
    #[serde(default)]
    pub(crate) flow: String,
    #[serde(default)]
    pub(crate) csrf: String,
}

/// The server the flow is for (named by the resource, or chosen), if the human holds a grant
/// on it now.
pub(crate) async fn chosen_server(
    inner: &Inner,
    host: &HostContext,
    flow: &Flow,
    human_id: &str,
) -> Result<Option<ConsentServer>, Response> {
    let servers = inner
        .control
        .consent_servers(&host.host_id, human_id)
        .await
        .map_err(|e| store_failure(&e))?;
    Ok(match flow.resource_server_key() {
        Some(key) => servers.into_iter().find(|s| s.server.key == key),
        None => flow
            .server_id
            .as_deref()
            .and_then(|id| servers.into_iter().find(|s| s.server_id == id)),
    })
}

fn forbidden(message: &str) -> Response {
    pages::error(StatusCode::FORBIDDEN, "Request refused", message)
}

pub(crate) async fn admit_post(
    inner: &Inner,
    headers: &HeaderMap,
    flow_text: &str,
    csrf: &str,
) -> Result<Posted, Response> {
    let host = inner.host(headers).await.map_err(|f| f.page())?;
    if !same_origin(headers, &host.base) {
        return Err(forbidden(
            "This form was not sent from this gateway's own page (Origin check).",
        ));
    }
    let now = now_ms();
    let Some(session) = inner.cookies.read(headers, &host.host_id, now) else {
        return Err(forbidden(
            "Your browser session has expired or cookies are blocked. Go back to your MCP client and connect again.",
        ));
    };
    if !session.csrf_matches(csrf) {
        return Err(forbidden(
            "This form has expired (CSRF check). Reload the page and try again.",
        ));
    }
    let flow =
        Flow::open(&inner.config.key_ring, &host.host_id, flow_text, now).ok_or_else(bad_flow)?;
    Ok(Posted {
        host,
        flow,
        session,
    })
}

/// Whether the request's `Origin` (or, without one, its `Referer`) is the host's own.
pub(crate) fn same_origin(headers: &HeaderMap, base: &str) -> bool {
    let single = |name: header::HeaderName| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    if headers.contains_key(header::ORIGIN) {
        return single(header::ORIGIN).is_some_and(|origin| origin.eq_ignore_ascii_case(base));
    }
    single(header::REFERER).is_some_and(|referer| {
        referer
            .get(..base.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(base))
            && matches!(referer.as_bytes().get(base.len()), Some(b'/'))
    })
}

fn back_to_flow(flow_text: &str) -> Response {
    see_other(&format!("/consent?flow={flow_text}"))
}

fn with_session(inner: &Inner, response: Response, session: &BrowserSession) -> Response {
    with_cookie(inner, response, session)
}

/// A posted form with the client's address (for rate limits) and the headers (for the
/// Origin and cookie checks).
pub(crate) async fn read_form<T: serde::de::DeserializeOwned>(
    request: Request<axum::body::Body>,
) -> Result<(Option<std::net::IpAddr>, HeaderMap, T), Response> {
    let ip = client_ip(request.extensions());
    let headers = request.headers().clone();
    match <Form<T> as axum::extract::FromRequest<()>>::from_request(request, &()).await {
        Ok(Form(form)) => Ok((ip, headers, form)),
        Err(_) => Err(pages::error(
            StatusCode::BAD_REQUEST,
            "Malformed form",
            "The form could not be read. Reload the page and try again.",
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct AccountForm {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    action: String,
}

/// `POST /consent/account`: Sign in or Create account.
pub(crate) async fn account(
    State(inner): State<Arc<Inner>>,
    request: Request<axum::body::Body>,
) -> Response {
    let (ip, headers, form) = match read_form::<AccountForm>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let host_id = posted.host.host_id.as_str();
    let now = now_ms();
    let retry = |notice| {
        step(
            &inner,
            &posted.host,
            &posted.flow,
            &form.flow,
            &posted.session,
            notice,
        )
    };
    let Ok(email) = normalize_email(&form.email) else {
        return retry(Notice::error(
            StatusCode::BAD_REQUEST,
            "Enter a valid email address.",
        ))
        .await;
    };
    let auth = &posted.host.auth;
    if let Some(forced) = auth.forced_provider(&email) {
        // The domain belongs to an identity provider: nothing is checked or mailed here, the
        // human goes there (with the address as the login hint).
        tracing::info!(
            host_id,
            provider_id = %forced.id,
            "Sign-in sent to the provider that claims the email's domain."
        );
        return crate::sso::start(&inner, &posted, &form.flow, forced, Some(&email)).await;
    }
    let method = if form.action == "email-code" {
        SignInMethod::EmailOtp
    } else {
        SignInMethod::Password
    };
    // The method must be on, and the email's domain allowed for it, before anything is
    // checked or sent: the answer depends on the domain alone, never on whether an account
    // exists or a password is right.
    if !auth.enabled(method) {
        return retry(Notice::error(StatusCode::FORBIDDEN, method_off(method))).await;
    }
    if !auth.allows(method, &email) {
        tracing::info!(
            host_id,
            method = method.name(),
            "Sign-in refused by the domain rules."
        );
        return retry(Notice::error(StatusCode::FORBIDDEN, domain_refused(method))).await;
    }
    match form.action.as_str() {
        "email-code" => {
            if !inner.limits.allow(Action::SignIn, host_id, ip)
                || !inner.limits.allow_sign_in_email(host_id, &email)
            {
                return retry(Notice::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-in attempts. Wait a minute and try again.",
                ))
                .await;
            }
            if !inner.config.mailer.is_configured() {
                return retry(Notice::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "This gateway cannot send email, so sign-in codes cannot be sent. Ask your admin to configure mail.",
                ))
                .await;
            }
            // Known or not, verified or not: the same page follows, and only the mailbox
            // owner can use the code (which also proves a new or unclaimed account).
            let account = match inner
                .control
                .sign_up_human(&crate::context("consent.sign_in_code"), host_id, &email)
                .await
            {
                Ok(account) => account,
                Err(error) => return store_failure(&error),
            };
            let sent = match inner.send_sign_in_code(host_id, &account).await {
                Ok(sent) => sent,
                Err(_) => return unavailable_page(),
            };
            let session =
                posted
                    .session
                    .pending_sign_in_code(&account.human_id, &account.email, now);
            if !sent {
                return step(
                    &inner,
                    &posted.host,
                    &posted.flow,
                    &form.flow,
                    &session,
                    Notice::error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many codes were sent. Wait a few minutes before asking for another.",
                    ),
                )
                .await;
            }
            with_session(&inner, back_to_flow(&form.flow), &session)
        }
        "sign-in" => {
            if !inner.limits.allow(Action::SignIn, host_id, ip)
                || !inner.limits.allow_sign_in_email(host_id, &email)
            {
                return retry(Notice::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-in attempts. Wait a minute and try again.",
                ))
                .await;
            }
            match inner
                .sign_in(host_id, &email, Zeroizing::new(form.password))
                .await
            {
                Ok(SignIn::Ok(account)) if !auth.allows(SignInMethod::Password, &account.email) => {
                    retry(Notice::error(
                        StatusCode::FORBIDDEN,
                        domain_refused(SignInMethod::Password),
                    ))
                    .await
                }
                Ok(SignIn::Ok(account)) => {
                    let session = posted.session.signed_in(&account.human_id, now);
                    tracing::info!(host_id, human_id = %account.human_id, "Signed in.");
                    with_session(&inner, back_to_flow(&form.flow), &session)
                }
                Ok(SignIn::Unverified(account)) => {
                    if let Err(error) = inner.send_code(host_id, &account).await {
                        tracing::warn!(%error, "Code not sent.");
                        return unavailable_page();
                    }
                    let session = posted
                        .session
                        .pending(&account.human_id, &account.email, now);
                    with_session(&inner, back_to_flow(&form.flow), &session)
                }
                Ok(SignIn::Wrong) => {
                    retry(Notice::error(
                        StatusCode::UNAUTHORIZED,
                        "The email or password is wrong.",
                    ))
                    .await
                }
                Err(_) => unavailable_page(),
            }
        }
        "create" => {
            if !inner.limits.allow(Action::SignUp, host_id, ip) {
                return retry(Notice::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many new accounts from your address. Wait a minute and try again.",
                ))
                .await;
            }
            if !inner.config.mailer.is_configured() {
                return retry(Notice::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "This gateway cannot send email, so new accounts cannot be verified. Ask your admin to configure mail.",
                ))
                .await;
            }
            if let Err(problem) = crate::passwords::check_new_password(&form.password) {
                return retry(Notice::error(StatusCode::BAD_REQUEST, problem)).await;
            }
            match inner
                .create_account(host_id, &email, Zeroizing::new(form.password))
                .await
            {
                Ok(account) => {
                    let session = posted
                        .session
                        .pending(&account.human_id, &account.email, now);
                    with_session(&inner, back_to_flow(&form.flow), &session)
                }
                Err(_) => unavailable_page(),
            }
        }
        _ => pages::error(
            StatusCode::BAD_REQUEST,
            "Malformed form",
            "Choose Sign in or Create account.",
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct VerifyForm {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    action: String,
}

/// `POST /consent/verify`: the mailed code, or a new one.
pub(crate) async fn verify(
    State(inner): State<Arc<Inner>>,
    request: Request<axum::body::Body>,
) -> Response {
    let (ip, headers, form) = match read_form::<VerifyForm>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let posted = match admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let host_id = posted.host.host_id.as_str();
    let retry = |notice| {
        step(
            &inner,
            &posted.host,
            &posted.flow,
            &form.flow,
            &posted.session,
            notice,
        )
    };
    let Some(human_id) = posted.session.pending_human_id.clone() else {
        return retry(Notice::default()).await;
    };
    let method = posted.session.pending_method();
    if form.action == "resend" {
        let account = match inner.control.account(host_id, &human_id).await {
            Ok(Some(account)) => account,
            Ok(None) => return retry(Notice::default()).await,
            Err(error) => return store_failure(&error),
        };
        let sent = match method {
            SignInMethod::EmailOtp => inner.send_sign_in_code(host_id, &account).await,
            // A pending code is a sign-up's verification or a mailed sign-in code, never a
            // passkey's.
            SignInMethod::Password | SignInMethod::Passkey => {
                inner.send_code(host_id, &account).await
            }
        };
        return match sent {
            Ok(true) => retry(Notice::info("We sent a new code.")).await,
            Ok(false) => {
                retry(Notice::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many codes were sent. Wait a few minutes before asking for another.",
                ))
                .await
            }
            Err(_) => unavailable_page(),
        };
    }
    if !inner.limits.allow(Action::Verify, host_id, ip) {
        return retry(Notice::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait a minute and try again.",
        ))
        .await;
    }
    let code = form.code.trim();
    // The rules are judged again on the address the code just proved, as they stand now.
    let email = posted.session.pending_email.clone().unwrap_or_default();
    if !posted.host.auth.allows(method, &email) {
        return retry(Notice::error(StatusCode::FORBIDDEN, domain_refused(method))).await;
    }
    // A mailed sign-in code, or the code that verifies a new account's email: either signs
    // in once the account is verified (and, for a sign-in code, the code is spent).
    let sign_in_code = method == SignInMethod::EmailOtp;
    let checked = if sign_in_code {
        inner.check_sign_in_code(host_id, &human_id, code).await
    } else {
        inner.check_code(host_id, &human_id, code).await
    };
    match checked {
        Ok(Ok(account))
            if account.email_verified && !(sign_in_code && account.sign_in_code.is_some()) =>
        {
            let session = posted.session.signed_in(&human_id, now_ms());
            if sign_in_code {
                tracing::info!(host_id, %human_id, "Signed in with a mailed code.");
            } else {
                tracing::info!(host_id, %human_id, "Email verified; signed in.");
            }
            with_session(&inner, back_to_flow(&form.flow), &session)
        }
        Ok(Ok(_)) => {
            retry(Notice::error(
                StatusCode::BAD_REQUEST,
                "That code is not right. Check the newest email and try again.",
            ))
            .await
        }
        Ok(Err(rejected)) => {
            retry(Notice::error(
                StatusCode::BAD_REQUEST,
                code_refused(&rejected),
            ))
            .await
        }
        Err(_) => unavailable_page(),
    }
}

/// Why a code did not sign in, as the page says it.
fn code_refused(rejected: &HumanRejected) -> &'static str {
    match rejected {
        HumanRejected::CodeExpired => "That code has expired. Send a new code.",
        HumanRejected::TooManyAttempts | HumanRejected::NoCode => {
            "That code can no longer be used. Send a new code."
        }
        // A verified account (someone signed up again with its email) or a removed one: the
        // code cannot help; same message as a wrong code.
        _ => "That code is not right. Check the newest email and try again.",
    }
}

/// What the page says when a method is off.
pub(crate) fn method_off(method: SignInMethod) -> &'static str {
    match method {
        SignInMethod::Password => {
            "Signing in with a password is off on this gateway. Use another way to sign in."
        }
        SignInMethod::EmailOtp => {
            "Signing in with a code by email is off on this gateway. Use another way to sign in."
        }
        SignInMethod::Passkey => {
            "Signing in with a passkey is off on this gateway. Use another way to sign in."
        }
    }
}

/// What the page says when the domain rules refuse an email for a method.
pub(crate) fn domain_refused(method: SignInMethod) -> &'static str {
    match method {
        SignInMethod::Password => {
            "This email cannot sign in here with a password. Use the email your admin gave access to, or another way to sign in."
        }
        SignInMethod::EmailOtp => {
            "This email cannot sign in here with a code. Use the email your admin gave access to, or another way to sign in."
        }
        SignInMethod::Passkey => {
            "This email cannot sign in here with a passkey. Use the email your admin gave access to, or another way to sign in."
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ServerForm {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    server: String,
    /// A server URL instead of a granted server (hosts with dynamic MCPs only).
    #[serde(default)]
    server_url: String,
}

/// `POST /consent/server`: the chosen server, or a server URL to add.
pub(crate) async fn server(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<ServerForm>,
) -> Response {
    let posted = match admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let Some(human_id) = posted.session.human_id.as_deref() else {
        return back_to_flow(&form.flow);
    };
    if !form.server_url.trim().is_empty() {
        if !inner
            .limits
            .allow_add_server(&posted.host.host_id, human_id)
        {
            return step(
                &inner,
                &posted.host,
                &posted.flow,
                &form.flow,
                &posted.session,
                Notice::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many servers added. Wait a minute and try again.",
                ),
            )
            .await;
        }
        return add_server(&inner, &posted, &form, human_id).await;
    }
    let servers = match inner
        .control
        .consent_servers(&posted.host.host_id, human_id)
        .await
    {
        Ok(servers) => servers,
        Err(error) => return store_failure(&error),
    };
    if !servers.iter().any(|s| s.server_id == form.server) {
        return step(
            &inner,
            &posted.host,
            &posted.flow,
            &form.flow,
            &posted.session,
            Notice::error(StatusCode::BAD_REQUEST, "Choose one of your MCP servers."),
        )
        .await;
    }
    let mut flow = posted.flow;
    flow.server_id = Some(form.server);
    match flow.seal(&inner.config.key_ring) {
        Ok(sealed) => back_to_flow(&sealed),
        Err(_) => unavailable_page(),
    }
}

/// The "Server URL" path of `POST /consent/server`: discover the URL through the SSRF guard,
/// add it for the human (their grant at High), and continue with it chosen. Refused when the
/// host does not allow dynamic MCPs.
async fn add_server(inner: &Inner, posted: &Posted, form: &ServerForm, human_id: &str) -> Response {
    let host_id = posted.host.host_id.as_str();
    let url = form.server_url.trim();
    let retry = |status, message: String| {
        let notice = Notice {
            server_url: Some(url.to_owned()),
            ..Notice::error(status, message)
        };
        step(
            inner,
            &posted.host,
            &posted.flow,
            &form.flow,
            &posted.session,
            notice,
        )
    };
    match inner.control.consent_host(host_id).await {
        Ok(host) if host.settings.dynamic_mcps => {}
        Ok(_) => {
            return retry(
                StatusCode::FORBIDDEN,
                "This gateway does not let you add MCP servers by URL. Choose one of your MCP servers, or ask your admin.".to_owned(),
            )
            .await;
        }
        Err(error) => return store_failure(&error),
    }
    let discovery =
        match portcullis_upstream::discover(url, inner.config.url_policy, &inner.config.discover)
            .await
        {
            Ok(discovery) => discovery,
            Err(error) => {
                tracing::info!(host_id, %human_id, %error, "Server URL refused in consent.");
                let (status, message) = discovery_problem(&error);
                return retry(status, message).await;
            }
        };
    let discovered = match discovered_server(&discovery) {
        Ok(discovered) => discovered,
        Err(message) => return retry(StatusCode::BAD_GATEWAY, message).await,
    };
    let added = inner
        .control
        .import_dynamic_server(&human_context(human_id), host_id, human_id, url, discovered)
        .await;
    let server = match added {
        Ok(server) => server,
        Err(ControlError::Invalid { reason, .. }) => {
            return retry(
                StatusCode::BAD_REQUEST,
                format!("This MCP server cannot be added: {reason}."),
            )
            .await;
        }
        Err(ControlError::Conflict { reason, .. }) => {
            return retry(
                StatusCode::CONFLICT,
                format!("This MCP server cannot be added just now: {reason}."),
            )
            .await;
        }
        Err(error) => return store_failure(&error),
    };
    tracing::info!(host_id, %human_id, server_id = %server.server_id, "Server added by URL in consent.");
    let mut flow = posted.flow.clone();
    flow.server_id = Some(server.server_id);
    match flow.seal(&inner.config.key_ring) {
        Ok(sealed) => back_to_flow(&sealed),
        Err(_) => unavailable_page(),
    }
}

/// What the page says when a server URL could not be discovered.
fn discovery_problem(error: &DiscoverError) -> (StatusCode, String) {
    match error {
        DiscoverError::Rejected(rejected) => (
            StatusCode::BAD_REQUEST,
            format!("This server URL is not allowed: {rejected}."),
        ),
        DiscoverError::AuthorizationRequired { .. } => (
            StatusCode::BAD_REQUEST,
            "This MCP server needs you to sign in to it, which servers added by URL do not support. Ask your admin to add it.".to_owned(),
        ),
        other => (
            StatusCode::BAD_GATEWAY,
            format!("This MCP server did not answer as an MCP server ({other}). Check the URL and try again."),
        ),
    }
}

/// What discovery found, as it is recorded: each tool at the level the product rule
/// suggested, enabled, classified automatically (as an admin's import records it).
fn discovered_server(discovery: &Discovery) -> Result<DiscoveredServer, String> {
    let tools = discovery
        .tools
        .iter()
        .map(|tool| {
            let sha256 = decode_sha256(&tool.input_schema_sha256).ok_or_else(|| {
                format!(
                    "The MCP server listed the tool \"{}\" with an unreadable schema.",
                    tool.name
                )
            })?;
            Ok(pb::Tool {
                name: tool.name.clone(),
                description: tool.description.clone().unwrap_or_default(),
                input_schema_sha256: sha256,
                trust_level: pb::TrustLevel::from(tool.suggested_level) as i32,
                enabled: true,
                classification: Some(pb::Classification {
                    kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
                        matched_keyword: tool.matched_keyword.unwrap_or_default().to_owned(),
                        reason: tool.classification_reason.clone(),
                    })),
                }),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(DiscoveredServer {
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
        tools,
    })
}

/// 32 bytes from 64 hex digits.
fn decode_sha256(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct DecideForm {
    #[serde(default)]
    flow: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    decision: String,
}

/// `POST /consent/decide`: Accept or Deny.
pub(crate) async fn decide(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Response {
    let posted = match admit_post(&inner, &headers, &form.flow, &form.csrf).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let request = &posted.flow.request;
    if form.decision == "deny" {
        tracing::info!(host_id = %posted.host.host_id, client_id = %request.client_id, "Consent denied.");
        return see_other(&request.denied());
    }
    if form.decision != "accept" {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "Malformed form",
            "Choose Accept or Deny.",
        );
    }
    let Some(human_id) = posted.session.human_id.clone() else {
        return back_to_flow(&form.flow);
    };
    let retry = |notice| {
        step(
            &inner,
            &posted.host,
            &posted.flow,
            &form.flow,
            &posted.session,
            notice,
        )
    };
    let Some(level) = LEVELS
        .iter()
        .find(|(_, id)| *id == form.level)
        .map(|(level, _)| *level)
    else {
        return retry(Notice::error(
            StatusCode::BAD_REQUEST,
            "Choose a trust level.",
        ))
        .await;
    };
    let servers = match inner
        .control
        .consent_servers(&posted.host.host_id, &human_id)
        .await
    {
        Ok(servers) => servers,
        Err(error) => return store_failure(&error),
    };
    let server_id = match posted.flow.resource_server_key() {
        Some(key) => servers
            .iter()
            .find(|s| s.server.key == key)
            .map(|s| s.server_id.clone()),
        None => posted.flow.server_id.clone(),
    };
    let Some(server_id) = server_id else {
        return retry(Notice::error(
            StatusCode::BAD_REQUEST,
            "Choose one of your MCP servers.",
        ))
        .await;
    };
    let context = human_context(&human_id);
    let accepted = inner
        .control
        .accept_consent(
            &context,
            &posted.host.host_id,
            &AcceptConsent {
                human_id: human_id.clone(),
                agent_id: request.agent_id.clone(),
                client_id: request.client_id.clone(),
                server_id,
                trust_level: level,
            },
        )
        .await;
    let session_id = match accepted {
        Ok(session_id) => session_id,
        Err(ControlError::Invalid { reason, .. }) => {
            return retry(Notice::error(StatusCode::BAD_REQUEST, reason)).await;
        }
        Err(ControlError::NotFound { .. }) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This application is no longer registered",
                "An admin removed this application. Go back to your MCP client and connect again.",
            );
        }
        Err(error) => return store_failure(&error),
    };
    match inner
        .oauth
        .issue_code(&context, request, &session_id, &human_id)
    {
        Ok(location) => {
            tracing::info!(host_id = %posted.host.host_id, %session_id, level = level_name(level), "Consent accepted.");
            see_other(&location)
        }
        Err(error) => {
            tracing::warn!(%error, "Code not issued.");
            see_other(&request.error("server_error", "the authorization server failed; try again"))
        }
    }
}
