//! The gateway as a SAML 2.0 service provider, for the consent pages' "SAML SSO" sign-in:
//! SP-initiated Web Browser SSO only (AuthnRequest over HTTP-Redirect, Response over
//! HTTP-POST), on top of samael (libxml2 + xmlsec1).
//!
//! Owns: the SP and IdP settings and their checks (`config`), the SP metadata (`metadata`),
//! the AuthnRequest and its redirect URL (`authn_request`), and the verification of the
//! Response (`response`): shape checks before any signature work (`precheck`: no DTD, one
//! Assertion, nothing encrypted, allow-listed algorithms, size), samael's signature check and
//! reduction to the signed content with the configured certificates only, and our own checks
//! of the signed assertion (issuer, audience, recipient, request id, validity window).
//!
//! Must not: store anything (the caller keeps the request ID with the pending sign-in, uses
//! RelayState as an opaque key, and keeps the replay cache of assertion IDs), accept an
//! unsigned or IdP-initiated response, trust a key carried in a message, read identity from
//! unsigned content, fetch metadata or anything else over the network, or log any part of a
//! message.
//!
//! Invariant: `IdentityProvider::check` refuses a configuration without a certificate, and
//! `verify_response` refuses to run samael without one (samael skips signature checks when the
//! IdP metadata has no signing key).
//!
//! Layout: `config`, `metadata`, `authn_request`, `precheck`, `response`, `error`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod authn_request;
mod config;
mod error;
mod metadata;
mod precheck;
mod response;
#[cfg(test)]
mod test_support;

pub use authn_request::{AuthnRequest, MAX_RELAY_STATE_BYTES, authn_request};
pub use config::{IdentityProvider, MAX_CERTIFICATES, MAX_ENTITY_ID_CHARS, ServiceProvider};
pub use error::SamlError;
pub use metadata::{NAME_ID_FORMAT_EMAIL, sp_metadata};
pub use response::{
    CLOCK_SKEW, EMAIL_ATTRIBUTES, MAX_ASSERTION_AGE, MAX_ENCODED_RESPONSE_BYTES,
    MAX_RESPONSE_BYTES, VerifiedAssertion, verify_response,
};
