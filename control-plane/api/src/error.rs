//! `ApiError`: every failure the API can answer with, mapped onto HTTP (JSON body
//! `{"error":{"code","message","details"}}`) and onto gRPC status codes — here, once, with
//! exhaustive matches, so a new variant must choose its status.
//!
//! Messages are safe to show a client; causes stay in the logs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_commands::control::ControlError;
use portcullis_upstream::{DiscoverError, OAuthError};
use serde_json::{Value, json};

/// Any failure of an API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The control service refused or failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// Upstream discovery failed.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// Authorizing at an upstream's authorization server failed.
    #[error(transparent)]
    UpstreamOAuth(OAuthError),
    /// The upstream OAuth callback's `state` is missing, forged, tampered with or expired.
    #[error(
        "the authorization state is missing, invalid or expired ({reason}); start again with \
         discover"
    )]
    OAuthState {
        /// `missing`, `invalid`, `expired` or `not_configured`.
        reason: &'static str,
    },
    /// A failure of the gateway itself (the cause is not for the client).
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The request body or a parameter is malformed.
    #[error("{message}")]
    BadRequest {
        /// The offending field, as the API spells it, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The body is not JSON.
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than the API accepts.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// No such route.
    #[error("no such endpoint")]
    NoRoute,
    /// The route exists, but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// HTTP status, stable error code, and structured details.
    pub fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            ApiError::Control(error) => match error {
                ControlError::Unauthenticated => {
                    (StatusCode::UNAUTHORIZED, "unauthenticated", json!({}))
                }
                ControlError::NotFound { what, id } => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    json!({ "resource": what, "id": id }),
                ),
                ControlError::Invalid { field, reason } => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    json!({ "field": field, "reason": reason }),
                ),
                ControlError::Conflict { what, id, reason } => (
                    StatusCode::CONFLICT,
                    "conflict",
                    json!({ "resource": what, "id": id, "reason": reason }),
                ),
                ControlError::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    json!({ "retry": "with the same Idempotency-Key" }),
                ),
            },
            ApiError::Discover(error) => match error {
                DiscoverError::Rejected(rejected) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    json!({ "field": "url", "reason": rejected.to_string() }),
                ),
                DiscoverError::Unreachable { url, detail, .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_unreachable",
                    json!({ "url": url, "reason": detail }),
                ),
                DiscoverError::Timeout { url, stage, .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_timeout",
                    json!({ "url": url, "stage": stage }),
                ),
                DiscoverError::NotMcp { url, detail } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_not_mcp",
                    json!({ "url": url, "reason": detail }),
                ),
                DiscoverError::AuthorizationRequired {
                    url,
                    resource_metadata,
                    ..
                } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_authorization_required",
                    json!({ "url": url, "resource_metadata": resource_metadata }),
                ),
                other => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_error",
                    json!({ "reason": other.to_string() }),
                ),
            },
            ApiError::UpstreamOAuth(error) => match error {
                OAuthError::ClientCredentialsRequired { issuer } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_client_credentials_required",
                    json!({ "field": "oauth", "issuer": issuer }),
                ),
                OAuthError::Rejected { url, source, .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_oauth_failed",
                    json!({ "url": url, "reason": source.to_string() }),
                ),
                OAuthError::StateMismatch
                | OAuthError::IssuerParameterMismatch { .. }
                | OAuthError::IssuerParameterMissing { .. }
                | OAuthError::MissingCode => (
                    StatusCode::BAD_REQUEST,
                    "invalid_oauth_callback",
                    json!({ "reason": error.to_string() }),
                ),
                other => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "upstream_oauth_failed",
                    json!({ "reason": other.to_string() }),
                ),
            },
            ApiError::OAuthState { reason } => (
                StatusCode::BAD_REQUEST,
                "invalid_oauth_state",
                json!({ "field": "state", "reason": reason }),
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", json!({})),
            ApiError::BadRequest { field, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                match field {
                    Some(field) => json!({ "field": field }),
                    None => json!({}),
                },
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                json!({}),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                json!({}),
            ),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "not_found", json!({})),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                json!({}),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self, cause = ?std::error::Error::source(&self), "Request failed.");
        }
        let body =
            json!({ "error": { "code": code, "message": self.to_string(), "details": details } });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            );
        }
        response
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let (status, _, details) = error.parts();
        let message = match details.get("field").and_then(Value::as_str) {
            Some(field) if !error.to_string().contains(field) => format!("{error} (field {field})"),
            _ => error.to_string(),
        };
        let code = match status {
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::BAD_REQUEST
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::InvalidArgument,
            StatusCode::CONFLICT => tonic::Code::Aborted,
            StatusCode::UNPROCESSABLE_ENTITY => tonic::Code::FailedPrecondition,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            StatusCode::METHOD_NOT_ALLOWED => tonic::Code::Unimplemented,
            _ => tonic::Code::Internal,
        };
        tonic::Status::new(code, message)
    }
}

#[cfg(test)]
mod tests;
