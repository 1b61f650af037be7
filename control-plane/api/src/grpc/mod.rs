//! The gRPC surface: `portcullis.control.v1.*`, reflection and health.

use axum::Router;

use crate::ApiState;

/// The gRPC services as an axum router (no fallback).
pub fn router(_state: ApiState) -> Router {
    Router::new()
}
