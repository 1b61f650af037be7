//! Wire types shared by several resources: trust levels, tool visibility, the error body, and
//! small response helpers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_projector::models;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A trust level: what a tool needs, what a human may delegate, what an agent may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Read-only tools.
    Low,
    /// Tools that create or change things.
    Medium,
    /// Destructive tools.
    High,
}

impl From<portcullis_proto::TrustLevel> for TrustLevel {
    fn from(level: portcullis_proto::TrustLevel) -> Self {
        match level {
            portcullis_proto::TrustLevel::Low => TrustLevel::Low,
            portcullis_proto::TrustLevel::Medium => TrustLevel::Medium,
            portcullis_proto::TrustLevel::High => TrustLevel::High,
        }
    }
}

impl From<TrustLevel> for portcullis_proto::TrustLevel {
    fn from(level: TrustLevel) -> Self {
        match level {
            TrustLevel::Low => portcullis_proto::TrustLevel::Low,
            TrustLevel::Medium => portcullis_proto::TrustLevel::Medium,
            TrustLevel::High => portcullis_proto::TrustLevel::High,
        }
    }
}

/// Which tools `tools/list` shows an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolVisibility {
    /// Only the tools the session may call (the default).
    Permitted,
    /// Every enabled tool.
    All,
}

impl From<models::ToolVisibility> for ToolVisibility {
    fn from(visibility: models::ToolVisibility) -> Self {
        match visibility {
            models::ToolVisibility::Permitted => ToolVisibility::Permitted,
            models::ToolVisibility::All => ToolVisibility::All,
        }
    }
}

impl From<ToolVisibility> for models::ToolVisibility {
    fn from(visibility: ToolVisibility) -> Self {
        match visibility {
            ToolVisibility::Permitted => models::ToolVisibility::Permitted,
            ToolVisibility::All => models::ToolVisibility::All,
        }
    }
}

/// Every error response: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `invalid_request`, `unauthenticated`, `not_found`,
    /// `conflict`, `unsupported_media_type`, `payload_too_large`, `upstream_unreachable`,
    /// `upstream_timeout`, `upstream_not_mcp`, `upstream_authorization_required`,
    /// `upstream_error`, `unavailable`.
    pub code: String,
    /// Human-readable explanation, safe to show.
    pub message: String,
    /// Structured details: `field` (the offending request field, as the API spells it) for
    /// `invalid_request`; `resource` and `id` for `not_found` and `conflict`; `url` and
    /// `reason` for upstream errors.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// `201 Created` with a JSON body.
#[derive(Debug)]
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// `204 No Content`.
pub fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}
