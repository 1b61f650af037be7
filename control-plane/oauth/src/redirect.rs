//! Redirect URIs: which ones a client may register, and whether the one in an authorization
//! request matches a registered one.
//!
//! What real MCP clients register (research notes §3.5): Cursor sends
//! `cursor://anysphere.cursor-mcp/oauth/callback` (a private-use scheme),
//! `https://www.cursor.com/agents/mcp/oauth/callback` and `http://localhost:8787/callback` in
//! one registration; VS Code registers `http://127.0.0.1/`, `http://127.0.0.1:33418/`,
//! `https://vscode.dev/redirect` and `https://insiders.vscode.dev/redirect`, then listens on a
//! random port when 33418 is busy; Claude Code uses `http://localhost:<port>/callback`;
//! mcp-remote `http://localhost:<port>/oauth/callback`. So:
//!
//! - `https:` URIs and private-use schemes (RFC 8252 §7.1) match exactly, byte for byte;
//! - `http:` is allowed only for the loopback hosts `127.0.0.1`, `[::1]` and `localhost`, and
//!   such a URI matches on any port (RFC 8252 §7.3), with scheme, host, path and query exact;
//! - `javascript:`, `data:`, `file:`, `vbscript:`, `about:`, `blob:` and similar schemes,
//!   fragments, userinfo, other `http:` hosts and anything unparsable are refused.

use url::Url;

/// Longest redirect URI accepted, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2000;

/// Schemes that never name an app's callback and could run code or read local data in a
/// browser.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
    "view-source",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
];

/// Hosts that are loopback for RFC 8252 §7.3 (`url` gives IPv6 hosts in brackets).
const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// Why a redirect URI was refused. Display texts are safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// Empty.
    #[error("the redirect URI is empty")]
    Empty,
    /// Longer than `MAX_REDIRECT_URI_BYTES`.
    #[error("the redirect URI is longer than {MAX_REDIRECT_URI_BYTES} bytes")]
    TooLong,
    /// Not an absolute URI, or contains spaces, control or non-ASCII characters.
    #[error("the redirect URI is not a valid absolute URI")]
    Unparsable,
    /// A scheme that can run code or read local data.
    #[error("the scheme {0:?} is not allowed in a redirect URI")]
    ForbiddenScheme(String),
    /// Has a fragment (RFC 6749 §3.1.2).
    #[error("a redirect URI must not have a fragment")]
    Fragment,
    /// Has a user name or password.
    #[error("a redirect URI must not contain user information")]
    Userinfo,
    /// `http:` to a host that is not loopback.
    #[error(
        "plain http is allowed only for loopback hosts (127.0.0.1, [::1], localhost), not {0:?}"
    )]
    InsecureHttp(String),
    /// `https:` (or `http:`) without a host.
    #[error("the redirect URI has no host")]
    MissingHost,
    /// Valid, but not registered for the client.
    #[error("the redirect URI is not registered for this client")]
    NotRegistered,
}

/// How a valid redirect URI is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// `http:` on a loopback host: any port matches.
    Loopback,
    /// `https:`: exact match.
    Https,
    /// A private-use scheme of a native app (`cursor:`, `com.example.app:`): exact match.
    PrivateUse,
}

/// Checks a redirect URI a client registers or presents; returns how it matches.
pub fn validate(raw: &str) -> Result<RedirectKind, RedirectUriError> {
    parse(raw).map(|(kind, _)| kind)
}

fn parse(raw: &str) -> Result<(RedirectKind, Url), RedirectUriError> {
    if raw.is_empty() {
        return Err(RedirectUriError::Empty);
    }
    if raw.len() > MAX_REDIRECT_URI_BYTES {
        return Err(RedirectUriError::TooLong);
    }
    // The URL parser silently drops tabs, newlines and surrounding spaces; exact matching
    // needs the text as sent, so such characters are refused before parsing.
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RedirectUriError::Unparsable);
    }
    let url = Url::parse(raw).map_err(|_| RedirectUriError::Unparsable)?;
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(RedirectUriError::ForbiddenScheme(scheme.to_owned()));
    }
    if url.fragment().is_some() {
        return Err(RedirectUriError::Fragment);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::Userinfo);
    }
    let kind = match scheme {
        "http" => {
            let host = url.host_str().ok_or(RedirectUriError::MissingHost)?;
            if !LOOPBACK_HOSTS.contains(&host) {
                return Err(RedirectUriError::InsecureHttp(host.to_owned()));
            }
            RedirectKind::Loopback
        }
        "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(RedirectUriError::MissingHost);
            }
            RedirectKind::Https
        }
        _ => RedirectKind::PrivateUse,
    };
    Ok((kind, url))
}

/// Whether `presented` (from an authorization request) matches the registered URI
/// `registered`: exactly, or for a loopback registration on any port.
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return validate(presented).is_ok();
    }
    let (Ok((RedirectKind::Loopback, want)), Ok((RedirectKind::Loopback, got))) =
        (parse(registered), parse(presented))
    else {
        return false;
    };
    want.host_str() == got.host_str() && want.path() == got.path() && want.query() == got.query()
}

/// The registered URI `presented` matches, or why none does.
pub fn find_match<'a>(
    registered: &'a [String],
    presented: &str,
) -> Result<&'a str, RedirectUriError> {
    validate(presented)?;
    registered
        .iter()
        .find(|uri| matches(uri, presented))
        .map(String::as_str)
        .ok_or(RedirectUriError::NotRegistered)
}

#[cfg(test)]
mod tests;
