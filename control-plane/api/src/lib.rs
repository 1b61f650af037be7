//! The admin control API: REST under `/api/v1` (with its OpenAPI 3 document at
//! `/api/v1/openapi.json`) and gRPC (`portcullis.control.v1.*`, with reflection and health),
//! served on one port by `control-plane` and `dev`.
//!
//! Owns: the wire surface — paths, JSON and protobuf shapes, status codes — and the mapping of
//! every `ControlError` and discovery failure onto it, exactly once (`error`); admin
//! authentication from the `Authorization` header (`auth`); the discover → import flow that
//! both surfaces share (`flows`); the browser half of connecting an OAuth-protected upstream
//! (`upstream_oauth`); public URLs and client configuration snippets
//! (`public_urls`).
//!
//! Must not: decide anything about the domain (that is `portcullis-commands` and
//! `portcullis-domain`), read stores directly, or log a token or secret.
//!
//! Boundary: the REST paths and JSON shapes are a contract (see the OpenAPI document).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod error;
pub mod flows;
pub mod grpc;
pub mod openapi;
pub use portcullis_tokens::public_urls;
pub mod rest;
pub mod upstream_oauth;

use std::sync::Arc;

use portcullis_commands::control::Control;
use portcullis_store::AuditLog;
use portcullis_upstream::DiscoverOptions;
use portcullis_upstream::url_guard::UrlPolicy;

pub use error::ApiError;
pub use public_urls::PublicUrls;
pub use upstream_oauth::UpstreamOAuthConfig;

/// What every handler needs. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The control service.
    pub control: Arc<Control>,
    /// Which upstream URLs may be contacted (`dev` allows private and loopback addresses).
    pub url_policy: UrlPolicy,
    /// Limits of upstream discovery.
    pub discover: DiscoverOptions,
    /// How hosts' public URLs are formed.
    pub public_urls: PublicUrls,
    /// The audit log that `GET /api/v1/hosts/{host}/audit` reads; `None` answers empty pages.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// The gateway as an OAuth client of upstreams (key ring, callback base URL, lifetimes).
    pub upstream_oauth: UpstreamOAuthConfig,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("url_policy", &self.url_policy)
            .field("public_urls", &self.public_urls)
            .field("audit", &self.audit.is_some())
            .field("upstream_oauth", &self.upstream_oauth)
            .finish_non_exhaustive()
    }
}

/// REST and gRPC on one router: gRPC by its `/<package>.<Service>/<Method>` paths, REST under
/// `/api/v1`, and a JSON 404 for anything else.
pub fn router(state: ApiState) -> axum::Router {
    grpc::router(state.clone())
        .merge(rest::router(state))
        .fallback(|| async { ApiError::NoRoute })
}
