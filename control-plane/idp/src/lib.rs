//! The gateway as a relying party of external identity providers, for the consent pages'
//! sign-in: generic OpenID Connect, Google (an OIDC preset), Microsoft Entra ID (an OIDC
//! preset with tenant rules) and GitHub (OAuth 2.0 plus its REST API). SAML is not here.
//!
//! Owns: provider configuration and its checks (`config`), the authorization URL with PKCE
//! S256, state and nonce, the callback checks (constant-time state, RFC 9207 `iss`, provider
//! errors), the code exchange, ID-token verification (openidconnect: signature with the
//! provider's keys, audience, expiry, nonce, `at_hash`) with our own issuer and Microsoft
//! tenant rules (`issuer`), userinfo, and the rules that decide which email addresses a
//! provider vouches for (`claims`, `github`). Discovery documents and key sets are cached for
//! five minutes (`relying_party`).
//!
//! Must not: store anything (the caller seals `PendingSignIn` into a cookie and links or
//! creates accounts from `ExternalIdentity`), normalize or trust an unverified email, follow
//! redirects or reach a URL the `UrlPolicy` refuses (every request goes through the guarded
//! `Egress` client of `portcullis-upstream`), or print a secret (client secret, state, nonce,
//! verifier, code, tokens).
//!
//! Layout: `config`, `issuer`, `sign_in` (start/pending/callback/identity values), `oidc`,
//! `github`, `claims`, `egress_client` (openidconnect's HTTP client trait over `Egress`),
//! `relying_party` (`Idp`), `error`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod claims;
mod config;
mod egress_client;
mod error;
mod github;
mod issuer;
mod oidc;
mod relying_party;
mod sign_in;

pub use config::{
    GITHUB_API_BASE, GITHUB_AUTHORIZATION_ENDPOINT, GITHUB_TOKEN_ENDPOINT, GOOGLE_ISSUER,
    MICROSOFT_AUTHORITY, ProviderConfig, ProviderKind,
};
pub use error::IdpError;
pub use relying_party::{CACHE_TTL, Idp};
pub use sign_in::{Callback, ExternalIdentity, PendingSignIn, SIGN_IN_MAX_AGE, SignInStart};
