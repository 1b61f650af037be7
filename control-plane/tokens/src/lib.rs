//! Access tokens and where hosts answer.
//!
//! Owns: per-host ES256 signing keys (`keys`), the access-token format with minting and
//! verification (`access`), and the public URLs clients are told (`public_urls`).
//!
//! Must not: touch a store. Callers load keys from the host aggregate (private, sealed) or
//! the `hosts` read model (public) and hand them in.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod keys;
pub mod public_urls;

pub use access::{AccessClaims, TokenError, Verifier};
pub use keys::{SigningKey, VerifyingKey};
pub use public_urls::{HostRef, PublicUrls};
