//! Authorization requests (`GET /oauth/authorize`): validation, and which failures may go
//! back to the client.
//!
//! Order matters (RFC 6749 §4.1.2.1): until the client and its redirect URI are verified,
//! nothing may be sent to the redirect URI, so those failures (unknown host or client,
//! missing, unregistered or invalid redirect URI, repeated parameters) are an error page
//! (`AuthorizeError::Page`). Every later failure is redirected back with `error`,
//! `error_description`, `state` and `iss` (RFC 9207) (`AuthorizeError::Redirect`).
//!
//! A valid request becomes an `AuthorizationRequest`, which the consent pages carry (sealed)
//! until the human decides; then `success_location` or `AuthorizationRequest::denied` gives
//! the redirect.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::params::{Params, ParamsError};
use crate::pkce::{self, PkceError};
use crate::redirect::{self, RedirectUriError};

/// What validation needs to know of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostResources {
    /// The host.
    pub host_id: String,
    /// Its issuer (base URL, no trailing slash).
    pub issuer: String,
    /// Its servers' keys: `<issuer>/mcp/<key>` is a resource.
    pub server_keys: Vec<String>,
}

impl HostResources {
    /// Whether `resource` is one of the host's MCP resource URLs, exactly: `<issuer>/mcp`
    /// (optionally with only an `upstream_mcp` hint, see `upstream_hint`) or
    /// `<issuer>/mcp/<key>` of one of its servers.
    pub fn is_resource(&self, resource: &str) -> bool {
        let Some(path) = resource.strip_prefix(self.issuer.as_str()) else {
            return false;
        };
        path == "/mcp"
            || upstream_hint(resource, &self.issuer).is_some()
            || path
                .strip_prefix("/mcp/")
                .is_some_and(|key| self.server_keys.iter().any(|k| k == key))
    }
}

/// Longest `upstream_mcp` hint accepted in a resource, in bytes.
const MAX_HINT_BYTES: usize = 2048;

/// The `upstream_mcp` hint of a resource `<issuer>/mcp?upstream_mcp=<url>` (the MCP URL a
/// client was given to pre-select a server in the consent pages); `None` for any other
/// resource, including one with other query parameters.
pub fn upstream_hint(resource: &str, issuer: &str) -> Option<String> {
    let query = resource.strip_prefix(issuer)?.strip_prefix("/mcp?")?;
    let mut pairs = url::form_urlencoded::parse(query.as_bytes());
    let (name, value) = pairs.next()?;
    (name == "upstream_mcp"
        && pairs.next().is_none()
        && !value.is_empty()
        && value.len() <= MAX_HINT_BYTES
        && !query.contains('#'))
    .then(|| value.into_owned())
}

/// The token audience of a resource: the resource without its query (the `upstream_mcp`
/// hint selects, it does not change which endpoint the token is for).
pub fn audience_of(resource: &str) -> &str {
    resource.split_once('?').map_or(resource, |(path, _)| path)
}

/// The registered client as validation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The agent.
    pub agent_id: String,
    /// The client id.
    pub client_id: String,
    /// Its display name (untrusted).
    pub name: String,
    /// Its registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// A validated authorization request, carried through the consent pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The host.
    pub host_id: String,
    /// The host's issuer, for `iss` on the way back.
    pub issuer: String,
    /// The agent.
    pub agent_id: String,
    /// The client id.
    pub client_id: String,
    /// The client's display name (untrusted; escape when shown).
    pub client_name: String,
    /// The redirect URI as sent (matched against the registration); the code goes here.
    pub redirect_uri: String,
    /// The client's `state`, returned verbatim.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The MCP resource URL the tokens will be for.
    pub resource: String,
    /// The granted scope (always `mcp`; other requested scopes are ignored, RFC 6749 §3.3).
    pub scope: String,
}

/// Why an authorization request failed, and where the failure goes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// Shown on an error page: the redirect URI cannot be trusted.
    #[error("{0}")]
    Page(PageError),
    /// Sent back to the (verified) redirect URI.
    #[error("{}", .0.description)]
    Redirect(ErrorRedirect),
}

/// Failures shown on the error page, never redirected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The query could not be read.
    #[error("the authorization request is malformed: {0}")]
    Params(ParamsError),
    /// The host does not exist.
    #[error("this authorization server does not exist")]
    UnknownHost,
    /// No `client_id`.
    #[error("the authorization request has no client_id")]
    MissingClientId,
    /// The client is not registered in this host.
    #[error("the client is not registered here; register it again")]
    UnknownClient,
    /// No `redirect_uri` and the client registered more than one (or a loopback one).
    #[error("the authorization request needs a redirect_uri")]
    MissingRedirectUri,
    /// The redirect URI is invalid or not registered for the client.
    #[error("the redirect_uri is not acceptable: {0}")]
    BadRedirectUri(RedirectUriError),
    /// The client's metadata document (a URL client id) is refused or unusable.
    #[error("the client's metadata document cannot be used: {0}")]
    ClientMetadata(String),
    /// The store failed.
    #[error("the authorization server is unavailable; try again")]
    Unavailable,
}

/// An error response for the client (RFC 6749 §4.1.2.1 + RFC 9207).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRedirect {
    /// The verified redirect URI.
    pub redirect_uri: String,
    /// The error code: `invalid_request`, `unsupported_response_type`, `invalid_scope`,
    /// `invalid_target`, `access_denied`, `server_error`.
    pub error: &'static str,
    /// A description safe to show.
    pub description: String,
    /// The client's `state`.
    pub state: Option<String>,
    /// The issuer.
    pub iss: String,
}

impl ErrorRedirect {
    /// The `Location` to redirect to.
    pub fn location(&self) -> String {
        let mut params = vec![
            ("error", self.error.to_owned()),
            ("error_description", self.description.clone()),
        ];
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.iss.clone()));
        with_params(&self.redirect_uri, &params)
    }
}

/// Validates the query of an authorization request. `client` is the client the HTTP layer
/// looked up by the query's `client_id` (see `client_id_of`), `None` if unknown.
pub fn validate(
    params: &Params,
    host: &HostResources,
    client: Option<&ClientInfo>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let page = AuthorizeError::Page;
    params
        .get("client_id")
        .ok_or(page(PageError::MissingClientId))?;
    let client = client.ok_or(page(PageError::UnknownClient))?;
    let redirect_uri = match params.get("redirect_uri") {
        Some(presented) => {
            redirect::find_match(&client.redirect_uris, presented)
                .map_err(|e| page(PageError::BadRedirectUri(e)))?;
            presented.to_owned()
        }
        // OAuth 2.1 §4.1.1: optional only with exactly one registered URI; a loopback one
        // needs the port, so it must be sent.
        None => match client.redirect_uris.as_slice() {
            [only]
                if redirect::validate(only)
                    .is_ok_and(|k| k != redirect::RedirectKind::Loopback) =>
            {
                only.clone()
            }
            _ => return Err(page(PageError::MissingRedirectUri)),
        },
    };
    let state = params.get("state").map(str::to_owned);
    let back = |error: &'static str, description: String| {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
            iss: host.issuer.clone(),
        })
    };
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(back(
                "unsupported_response_type",
                format!(
                    "response_type {:?} is not supported; use code",
                    truncate(other)
                ),
            ));
        }
        None => {
            return Err(back(
                "invalid_request",
                "response_type is required".to_owned(),
            ));
        }
    }
    let code_challenge = pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|e: PkceError| back("invalid_request", e.to_string()))?;
    let resource = params.get("resource").ok_or_else(|| {
        back(
            "invalid_request",
            "resource is required (RFC 8707): the MCP server URL".to_owned(),
        )
    })?;
    if !host.is_resource(resource) {
        return Err(back(
            "invalid_target",
            "resource is not an MCP endpoint of this gateway host".to_owned(),
        ));
    }
    if let Some(scope) = params.get("scope")
        && !crate::is_valid_scope(scope)
    {
        return Err(back("invalid_scope", "scope is malformed".to_owned()));
    }
    Ok(AuthorizationRequest {
        host_id: host.host_id.clone(),
        issuer: host.issuer.clone(),
        agent_id: client.agent_id.clone(),
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri,
        state,
        code_challenge,
        resource: resource.to_owned(),
        scope: crate::SCOPE.to_owned(),
    })
}

/// The `client_id` of a query, for the lookup before `validate`.
pub fn client_id_of(params: &Params) -> Option<&str> {
    params.get("client_id")
}

impl AuthorizationRequest {
    /// The redirect when the human declines (`access_denied`).
    pub fn denied(&self) -> String {
        self.error("access_denied", "the user denied the request")
    }

    /// The redirect for a failure after validation (e.g. `server_error`).
    pub fn error(&self, error: &'static str, description: &str) -> String {
        ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            error,
            description: description.to_owned(),
            state: self.state.clone(),
            iss: self.issuer.clone(),
        }
        .location()
    }

    /// The redirect carrying a code (RFC 6749 §4.1.2 + RFC 9207 `iss`).
    pub fn success_location(&self, code: &str) -> String {
        let mut params = vec![("code", code.to_owned())];
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.issuer.clone()));
        with_params(&self.redirect_uri, &params)
    }
}

/// `uri` with `params` appended to its query (an existing query is kept, RFC 6749 §3.1.2).
fn with_params(uri: &str, params: &[(&str, String)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        // Validated URIs always parse; fall back to plain appending rather than fail.
        Err(_) => {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let separator = if uri.contains('?') { '&' } else { '?' };
            format!("{uri}{separator}{query}")
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
