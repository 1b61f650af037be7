//! The protocol core of each host's OAuth 2.1 authorization server for MCP clients.
//!
//! Owns: the RFC 8414 / OIDC discovery documents and the JWKS (`metadata`), redirect-URI
//! rules for real clients (`redirect`: exact match, private-use schemes, RFC 8252 loopback
//! ports), RFC 7591 dynamic client registration (`registration`), PKCE S256 (`pkce`),
//! validation of authorization requests and which errors may be redirected (`authorize`),
//! sealed single-use authorization codes (`code`), the token endpoint with refresh-token
//! rotation (`token`), and `OAuthService`, the thin async layer over `Control` that the HTTP
//! routes will call (`service`).
//!
//! Must not: know HTTP frameworks, render pages, sign humans in, or fetch anything (Client ID
//! Metadata Documents come through `service::ClientMetadataFetcher`, which the HTTP layer
//! provides). The HTTP layer maps the typed errors here onto responses (JSON bodies,
//! `Cache-Control: no-store`, redirects) and fills the registration rate limit.
//!
//! Invariants: never redirect to a redirect URI that was not matched against the client's
//! registration; PKCE S256 is required for every code; a code opens only for its host and is
//! redeemed once (a second redemption revokes its session); refresh tokens are stored only as
//! SHA-256 hashes and rotate on every use (a rotated-out token revokes the session).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod authorize;
pub mod code;
pub mod metadata;
pub mod params;
pub mod pkce;
pub mod redirect;
pub mod registration;
pub mod service;
pub mod token;

pub use service::OAuthService;

/// The one scope this server grants: access to the host's MCP endpoints (what a session
/// allows is decided by consent and grants, not by scopes).
pub const SCOPE: &str = "mcp";

/// Whether `text` is a syntactically valid scope (RFC 6749 §3.3: space-separated tokens of
/// `%x21 / %x23-5B / %x5D-7E`).
pub(crate) fn is_valid_scope(text: &str) -> bool {
    !text.is_empty()
        && text.split(' ').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        })
}
