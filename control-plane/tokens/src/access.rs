//! Access tokens: short-lived ES256 JWTs a host issues to an agent for one consent session.
//!
//! Claims: `iss` (the host's issuer URL), `aud` (the MCP resource URL the client asked for,
//! RFC 8707), `sub` (the human), `client_id`, `sid` (the consent session), `iat`, `exp`, `jti`.
//! Verification pins the algorithm to ES256, requires every claim, checks `iss`, `exp` (with a
//! small leeway) and the key id against the host's own keys; the caller checks `aud` against
//! the endpoint and `sid` against the session read model.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::{SigningKey, VerifyingKey};

/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Lifetime of an access token, seconds. A retired signing key's tokens are all expired this
/// long after its successor began signing.
pub const ACCESS_TOKEN_TTL_SECONDS: u64 = 3600;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The host's issuer URL.
    pub iss: String,
    /// The MCP resource URL the token is for.
    pub aud: String,
    /// The human's id.
    pub sub: String,
    /// The agent's OAuth client id.
    pub client_id: String,
    /// The consent session id.
    pub sid: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

/// Why a token was not accepted. Every variant means "401 invalid_token" to a client; the
/// variants exist for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWT, or a claim is missing or mistyped.
    #[error("the token is malformed")]
    Malformed,
    /// The header's `kid` is missing or not a key of this host.
    #[error("the token was not signed by this host")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// `iss` is not this host.
    #[error("the token was issued by another host")]
    WrongIssuer,
    /// `aud` is not this resource.
    #[error("the token is for another resource")]
    WrongAudience,
    /// Signing failed.
    #[error("signing the token failed")]
    Sign,
}

/// Signs `claims` with `key`.
pub fn mint(key: &SigningKey, claims: &AccessClaims) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid().to_owned());
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding()).map_err(|_| TokenError::Sign)
}

/// Verifies tokens of one host: its keys and its issuer.
#[derive(Clone, Debug)]
pub struct Verifier {
    issuer: String,
    keys: HashMap<String, VerifyingKey>,
}

impl Verifier {
    /// A verifier for `issuer` trusting `keys`.
    pub fn new(issuer: String, keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self {
            issuer,
            keys: keys
                .into_iter()
                .map(|key| (key.kid().to_owned(), key))
                .collect(),
        }
    }

    /// The issuer it accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies signature, algorithm, issuer and expiry; returns the claims. The audience is
    /// the caller's to check (`AccessClaims::aud`), since one host serves several resources.
    pub fn verify(&self, token: &str, now_seconds: u64) -> Result<AccessClaims, TokenError> {
        self.verify_keyed(token, now_seconds)
            .map(|(claims, _)| claims)
    }

    /// As `verify`, also returning the id of the key that verified it, so a cache of
    /// verified tokens can drop them when that key is retired.
    pub fn verify_keyed(
        &self,
        token: &str,
        now_seconds: u64,
    ) -> Result<(AccessClaims, String), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, key.decoding(), &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                _ => TokenError::Malformed,
            })?;
        // Expiry against the caller's clock, so tests and callers control time.
        if data.claims.exp.saturating_add(LEEWAY_SECONDS) <= now_seconds {
            return Err(TokenError::Expired);
        }
        Ok((data.claims, kid))
    }
}

#[cfg(test)]
mod tests;
