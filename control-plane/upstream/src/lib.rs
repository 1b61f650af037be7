//! The control plane's client of upstream MCP servers: what an admin's "import server" and
//! "connect with OAuth" need.
//!
//! Owns: the SSRF guard for every URL a user or an upstream supplies (`url_guard`), tool
//! discovery over Streamable HTTP with the classifier's suggested trust levels (`discover`),
//! and the gateway's OAuth client flow towards an upstream's authorization server (`oauth`):
//! protected-resource and authorization-server metadata, dynamic client registration, PKCE,
//! the code exchange.
//!
//! Must not: store anything (the caller persists `PendingAuthorization` and `Tokens`), follow
//! redirects, connect to an address the guard refused, or print a secret (`Secret` redacts
//! itself in `Debug`). The data plane relays tool calls itself; it takes only its
//! forwarding client from here (`forward`), so that every outbound connection passes the
//! same guard.
//!
//! Layout: `url_guard` (policy, address classes, the checking DNS resolver), `http` (the
//! control plane's outbound client builder and bounded body reads), `forward` (the data
//! plane's pooled forwarding client on hyper-util), `mcp_client` (a small JSON-RPC client over
//! Streamable HTTP), `discover`, `oauth`, `www_authenticate` (RFC 6750/9728 challenges),
//! `schema_hash` (canonical JSON + SHA-256), `secret`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client_metadata;
pub mod discover;
mod forward;
mod http;
mod mcp_client;
pub mod oauth;
pub mod schema_hash;
pub mod secret;
pub mod url_guard;
pub mod www_authenticate;

pub use discover::{
    DiscoverError, DiscoverOptions, DiscoveredTool, Discovery, ServerInfo, ToolAnnotations,
    discover, discover_with_token,
};
pub use forward::{ForwardBody, ForwardFailure, ForwardResponse, ForwardingClient};
pub use http::{Egress, HttpFailure, HttpLimits};
pub use oauth::{
    AuthorizationOptions, AuthorizationRequest, BegunAuthorization, CallbackParams,
    ClientCredentials, OAuthError, PendingAuthorization, PreRegisteredClient, TokenAuthMethod,
    Tokens, begin_authorization, complete_authorization,
};
pub use secret::Secret;
pub use url_guard::{AddressClass, GuardedUrl, UrlPolicy, UrlRejected};
pub use www_authenticate::BearerChallenge;
