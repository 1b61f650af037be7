//! The REST surface under `/api/v1`.

use axum::Router;

use crate::ApiState;

/// The REST routes (no fallback: `crate::router` adds one after merging gRPC).
pub fn router(state: ApiState) -> Router {
    Router::new().with_state(state)
}
