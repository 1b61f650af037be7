//! The discovery documents of a host's authorization server: RFC 8414 metadata, its OpenID
//! Connect discovery variant, and the JWKS its access tokens verify with.
//!
//! The issuer is the host's base URL (no path), so the HTTP layer serves the documents at
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`; the
//! `issuer` inside equals the URL clients built it from, as MCP 2026-07-28 requires.

use serde_json::{Value, json};

use crate::SCOPE;

/// The endpoints of a host's authorization server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer: the host's base URL, no trailing slash.
    pub issuer: String,
    /// `<issuer>/oauth/authorize`.
    pub authorization: String,
    /// `<issuer>/oauth/token`.
    pub token: String,
    /// `<issuer>/oauth/register`.
    pub registration: String,
    /// `<issuer>/oauth/jwks`.
    pub jwks: String,
}

impl Endpoints {
    /// The endpoints under `issuer` (a trailing slash is ignored).
    pub fn new(issuer: &str) -> Self {
        let issuer = issuer.trim_end_matches('/').to_owned();
        Self {
            authorization: format!("{issuer}/oauth/authorize"),
            token: format!("{issuer}/oauth/token"),
            registration: format!("{issuer}/oauth/register"),
            jwks: format!("{issuer}/oauth/jwks"),
            issuer,
        }
    }
}

/// The RFC 8414 authorization-server metadata document.
pub fn authorization_server_metadata(issuer: &str) -> Value {
    let endpoints = Endpoints::new(issuer);
    json!({
        "issuer": endpoints.issuer,
        "authorization_endpoint": endpoints.authorization,
        "token_endpoint": endpoints.token,
        "registration_endpoint": endpoints.registration,
        "jwks_uri": endpoints.jwks,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        // Public clients only: no client secrets are issued.
        "token_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        // HTTPS client ids are fetched as metadata documents (`service::ClientMetadataFetcher`,
        // public HTTPS only).
        "client_id_metadata_document_supported": true,
        "scopes_supported": [SCOPE],
    })
}

/// The OpenID Connect discovery variant: the same document plus the fields OIDC Discovery
/// marks required, for clients that only look there. No ID tokens are issued.
pub fn openid_configuration(issuer: &str) -> Value {
    let mut document = authorization_server_metadata(issuer);
    if let Some(object) = document.as_object_mut() {
        object.insert("subject_types_supported".to_owned(), json!(["public"]));
        object.insert(
            "id_token_signing_alg_values_supported".to_owned(),
            json!([portcullis_tokens::keys::ALGORITHM]),
        );
    }
    document
}

/// One public signing key: its id and its hex SEC1 point (as the `hosts` read model holds).
#[derive(Clone, Copy, Debug)]
pub struct PublicKeyHex<'a> {
    /// Key id.
    pub kid: &'a str,
    /// Lower-case hex of the uncompressed SEC1 point.
    pub public_key: &'a str,
}

/// The JWKS document (RFC 7517) of a host's keys; malformed keys are left out (and logged).
pub fn jwks<'a>(keys: impl IntoIterator<Item = PublicKeyHex<'a>>) -> Value {
    let keys: Vec<Value> = keys
        .into_iter()
        .filter_map(|key| {
            let jwk = decode_hex(key.public_key)
                .and_then(|point| portcullis_tokens::keys::public_jwk(key.kid, &point));
            if jwk.is_none() {
                tracing::warn!(kid = %key.kid, "Signing key left out of the JWKS: not a P-256 point.");
            }
            jwk
        })
        .collect();
    json!({ "keys": keys })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
