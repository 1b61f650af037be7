//! The REST surface under `/api/v1`: one module per resource, each handler documented with
//! `#[utoipa::path]` and registered through `utoipa_axum::routes!`, so the router and the
//! OpenAPI document (`crate::openapi`) come from the same declarations.
//!
//! Every handler authenticates first (the `Admin` extractor comes before any other), runs
//! under a fresh ULID request id (returned as `x-request-id` and recorded as the events'
//! correlation id), and maps every failure through `ApiError`. Request bodies are JSON of at
//! most `MAX_BODY_BYTES`, with unknown fields refused (`extract`).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiState;

pub mod agents;
pub mod audit;
pub mod extract;
pub mod hosts;
pub mod humans;
pub mod organizations;
pub mod servers;
pub mod types;
pub mod upstream_oauth;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The REST routes (no fallback: `crate::router` adds one after merging gRPC).
pub fn router(state: ApiState) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .method_not_allowed_fallback(|| async { crate::ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(extract::request_id))
        .with_state(state)
}

/// Every documented route, with its OpenAPI operation: the one list both the router and the
/// document are built from.
pub(crate) fn api_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(crate::openapi::serve))
        .routes(routes!(organizations::list, organizations::create))
        .routes(routes!(hosts::list, hosts::create))
        .routes(routes!(hosts::get, hosts::update, hosts::delete))
        .routes(routes!(hosts::client_config))
        .routes(routes!(hosts::saml_metadata))
        .routes(routes!(hosts::list_signing_keys, hosts::rotate_signing_key))
        .routes(routes!(hosts::retire_signing_key))
        .routes(routes!(servers::discover))
        .routes(routes!(servers::list, servers::import))
        .routes(routes!(servers::get, servers::update, servers::delete))
        .routes(routes!(servers::refresh))
        .routes(routes!(servers::add_tool))
        .routes(routes!(servers::update_tool, servers::remove_tool))
        .routes(routes!(upstream_oauth::callback))
        .routes(routes!(humans::list, humans::add))
        .routes(routes!(humans::get, humans::delete))
        .routes(routes!(humans::put_grant, humans::delete_grant))
        .routes(routes!(agents::list, agents::register))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(agents::put_cap, agents::revoke_server))
        .routes(routes!(audit::query))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}
