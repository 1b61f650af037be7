//! The token endpoint's protocol logic (`POST /oauth/token`, form-encoded): request parsing,
//! the checks of an authorization-code grant, refresh-token format, and the response.
//!
//! Grants: `authorization_code` (`code`, `client_id`, `code_verifier`, and `redirect_uri` /
//! `resource`, which must equal the authorization request's when sent) and `refresh_token`
//! (`refresh_token`, optional `client_id`, `resource`, `scope`). Clients are public: a
//! `client_secret` is refused, since none is ever issued (the HTTP layer refuses an
//! `Authorization: Basic` header the same way). Errors follow RFC 6749 §5.2 (+ RFC 8707's
//! `invalid_target`); the HTTP layer adds `Cache-Control: no-store` to every answer.
//!
//! Refresh tokens are `prt1.<session_id>.<43 characters of base64url randomness>`: the
//! session id says which session aggregate to check; only the SHA-256 of the whole token is
//! recorded there.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::code::CodeGrant;
use crate::params::Params;
use crate::pkce;

/// Lifetime of an access token, seconds.
pub use portcullis_tokens::access::ACCESS_TOKEN_TTL_SECONDS;
/// The format prefix of a refresh token.
const REFRESH_FORMAT: &str = "prt1";

/// A parsed token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=authorization_code`.
    AuthorizationCode {
        /// The code.
        code: String,
        /// The client.
        client_id: String,
        /// The PKCE verifier (checked against the code).
        code_verifier: Option<String>,
        /// Must equal the authorization request's, when sent.
        redirect_uri: Option<String>,
        /// Must equal the authorization request's, when sent.
        resource: Option<String>,
    },
    /// `grant_type=refresh_token`.
    RefreshToken {
        /// The refresh token.
        refresh_token: String,
        /// The client, if it said.
        client_id: Option<String>,
        /// Must equal the session's resource, when sent.
        resource: Option<String>,
    },
}

/// A token-endpoint error (RFC 6749 §5.2). Display texts are safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed request (`invalid_request`, 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed (`invalid_client`, 401).
    #[error("{0}")]
    InvalidClient(String),
    /// The code or refresh token is invalid, expired, revoked, reused, or another client's
    /// (`invalid_grant`, 400).
    #[error("{0}")]
    InvalidGrant(String),
    /// A grant type this server does not offer (`unsupported_grant_type`, 400).
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// A `resource` other than the one authorized (`invalid_target`, 400).
    #[error("{0}")]
    InvalidTarget(String),
    /// The server failed (`server_error`, 503 at the HTTP layer's choice).
    #[error("the authorization server is unavailable; try again")]
    Unavailable,
}

impl TokenError {
    /// The RFC 6749 §5.2 error code.
    pub fn error_code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient(_) => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::UnsupportedGrantType(_) => "unsupported_grant_type",
            TokenError::InvalidTarget(_) => "invalid_target",
            TokenError::Unavailable => "server_error",
        }
    }

    /// The HTTP status RFC 6749 §5.2 gives it.
    pub fn status(&self) -> u16 {
        match self {
            TokenError::InvalidClient(_) => 401,
            TokenError::Unavailable => 503,
            _ => 400,
        }
    }

    /// The JSON error body.
    pub fn to_json(&self) -> Value {
        json!({ "error": self.error_code(), "error_description": self.to_string() })
    }
}

/// Parses a form-encoded token request.
pub fn parse_request(body: &[u8]) -> Result<TokenRequest, TokenError> {
    let params = Params::parse(body).map_err(|e| TokenError::InvalidRequest(e.to_string()))?;
    if params.get("client_secret").is_some() {
        return Err(TokenError::InvalidClient(
            "this server issues no client secrets; use token_endpoint_auth_method none".to_owned(),
        ));
    }
    let owned = |name: &str| params.get(name).map(str::to_owned);
    let required = |name: &str| {
        owned(name).ok_or_else(|| TokenError::InvalidRequest(format!("{name} is required")))
    };
    match params.get("grant_type") {
        Some("authorization_code") => Ok(TokenRequest::AuthorizationCode {
            code: required("code")?,
            client_id: owned("client_id").ok_or_else(|| {
                TokenError::InvalidClient("client_id is required for a public client".to_owned())
            })?,
            code_verifier: owned("code_verifier"),
            redirect_uri: owned("redirect_uri"),
            resource: owned("resource"),
        }),
        Some("refresh_token") => Ok(TokenRequest::RefreshToken {
            refresh_token: required("refresh_token")?,
            client_id: owned("client_id"),
            resource: owned("resource"),
        }),
        Some(other) => Err(TokenError::UnsupportedGrantType(format!(
            "grant_type {:?} is not supported (authorization_code, refresh_token)",
            other.chars().take(64).collect::<String>()
        ))),
        None => Err(TokenError::InvalidRequest(
            "grant_type is required".to_owned(),
        )),
    }
}

/// Checks an authorization-code grant against the opened code: client, redirect URI,
/// resource, PKCE.
pub fn check_code_grant(
    grant: &CodeGrant,
    client_id: &str,
    code_verifier: Option<&str>,
    redirect_uri: Option<&str>,
    resource: Option<&str>,
) -> Result<(), TokenError> {
    if grant.client_id != client_id {
        return Err(TokenError::InvalidGrant(
            "the code was issued to another client".to_owned(),
        ));
    }
    // Exact string equality (RFC 6749 §4.1.3), not the loopback port rule of authorize.
    if redirect_uri.is_some_and(|uri| uri != grant.redirect_uri) {
        return Err(TokenError::InvalidGrant(
            "redirect_uri differs from the authorization request's".to_owned(),
        ));
    }
    if resource.is_some_and(|r| r != grant.resource) {
        return Err(TokenError::InvalidTarget(
            "resource differs from the one authorized".to_owned(),
        ));
    }
    pkce::verify(&grant.code_challenge, code_verifier).map_err(|e| match e {
        pkce::PkceError::MissingVerifier | pkce::PkceError::MalformedVerifier => {
            TokenError::InvalidRequest(e.to_string())
        }
        _ => TokenError::InvalidGrant(e.to_string()),
    })
}

/// A new refresh token and its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// The token, for the client only.
    pub token: String,
    /// Its SHA-256, for the session aggregate.
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for NewRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRefreshToken").finish_non_exhaustive()
    }
}

/// A new random refresh token of `session_id`.
pub fn new_refresh_token(session_id: &str) -> NewRefreshToken {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "{REFRESH_FORMAT}.{session_id}.{}",
        URL_SAFE_NO_PAD.encode(secret)
    );
    let sha256 = refresh_token_sha256(&token);
    NewRefreshToken { token, sha256 }
}

/// SHA-256 of a refresh token.
pub fn refresh_token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session id a refresh token names, if it has the right shape.
pub fn refresh_token_session(token: &str) -> Option<&str> {
    let mut parts = token.split('.');
    let (Some(REFRESH_FORMAT), Some(session_id), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let id_ok = !session_id.is_empty()
        && session_id.len() <= 64
        && session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret.len() == 43).then_some(session_id)
}

/// A random token id (`jti`).
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct TokenResponse {
    /// The access token (an ES256 JWT).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The new refresh token (rotated on every use).
    pub refresh_token: String,
    /// The granted scope.
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
