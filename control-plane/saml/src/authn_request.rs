//! The SP-initiated start of a sign-in: an AuthnRequest sent with the HTTP-Redirect binding.
//!
//! Owns: the request's fresh random ID, its fields (IssueInstant, Destination,
//! AssertionConsumerServiceURL, ProtocolBinding HTTP-POST, Issuer, NameIDPolicy emailAddress),
//! and the redirect URL (raw DEFLATE, base64, URL-encoded `SAMLRequest` and `RelayState`).
//!
//! Must not: sign the request (the SP has no key; `AuthnRequestsSigned="false"` in its
//! metadata) or store anything: the caller keeps the ID until the response comes back, and
//! uses RelayState as an opaque key to its own state, never as a URL.

use std::io::Write as _;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use samael::metadata::HTTP_POST_BINDING;
use samael::schema::{AuthnRequest as SamlAuthnRequest, Issuer, NameIdPolicy};
use samael::traits::ToXml;
use url::Url;

use crate::config::{IdentityProvider, ServiceProvider};
use crate::error::SamlError;
use crate::metadata::NAME_ID_FORMAT_EMAIL;

/// The longest RelayState the HTTP-Redirect binding allows (saml-bindings §3.4.3).
pub const MAX_RELAY_STATE_BYTES: usize = 80;

/// A started sign-in: where to send the browser, and the ID the response must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnRequest {
    /// The request's ID (`_` and 32 hex digits): keep it with the pending sign-in and pass it
    /// to `verify_response` as `expected_request_id`.
    pub id: String,
    /// `sso_url?SAMLRequest=<deflate+base64>&RelayState=<relay_state>` (no RelayState when it
    /// is empty): answer the browser with a redirect (302/303) to it.
    pub redirect_url: String,
}

/// Builds an AuthnRequest from `sp` to `idp`, issued at `now`, and its HTTP-Redirect URL.
/// `relay_state` (at most 80 bytes) comes back unchanged with the response.
pub fn authn_request(
    sp: &ServiceProvider,
    idp: &IdentityProvider,
    relay_state: &str,
    now: SystemTime,
) -> Result<AuthnRequest, SamlError> {
    sp.check()?;
    idp.check()?;
    if relay_state.len() > MAX_RELAY_STATE_BYTES {
        return Err(SamlError::RelayStateTooLong);
    }
    let id = request_id();
    let request = SamlAuthnRequest {
        id: id.clone(),
        version: "2.0".to_owned(),
        issue_instant: DateTime::<Utc>::from(now),
        destination: Some(idp.sso_url.clone()),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST_BINDING.to_owned()),
        issuer: Some(Issuer {
            // samael writes the Issuer's text as is (attributes it escapes itself).
            value: Some(quick_xml::escape::escape(sp.entity_id.as_str()).into_owned()),
            ..Issuer::default()
        }),
        name_id_policy: Some(NameIdPolicy {
            format: Some(NAME_ID_FORMAT_EMAIL.to_owned()),
            allow_create: Some(true),
            ..NameIdPolicy::default()
        }),
        ..SamlAuthnRequest::default()
    };
    let xml = ToXml::to_string(&request).map_err(|_| SamlError::Internal)?;
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(xml.as_bytes())
        .map_err(|_| SamlError::Internal)?;
    let deflated = encoder.finish().map_err(|_| SamlError::Internal)?;

    // `check` parsed this URL already; appending keeps any query the IdP's URL has.
    let mut url = Url::parse(&idp.sso_url).map_err(|_| SamlError::Internal)?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("SAMLRequest", &STANDARD.encode(deflated));
        if !relay_state.is_empty() {
            query.append_pair("RelayState", relay_state);
        }
    }
    Ok(AuthnRequest {
        id,
        redirect_url: url.into(),
    })
}

/// `_` and 128 random bits in hex: an `xs:ID` (starts with a letter or `_`) nobody can guess.
fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(33);
    id.push('_');
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests;
