//! Request extraction for the REST handlers, every rejection an `ApiError`:
//!
//! - `Admin`: the authenticated admin, the request's event context and its optional
//!   `Idempotency-Key`. Handlers take it first, so nothing else is looked at for a caller
//!   without a valid token.
//! - `ApiJson`: a JSON body (`Content-Type: application/json` or `+json`, else 415; larger than
//!   the body limit, 413), parsed with `serde_path_to_error` so a 400 names the offending
//!   field by its path (`settings.allowed_origins[2]`, `tools[0].trust_level`), unknown and
//!   missing fields included.
//! - `ApiPath`, `ApiQuery`: path and query parameters with 400s instead of axum's plain-text
//!   rejections.
//! - `request_id`: the middleware giving every request a fresh ULID, returned in
//!   `x-request-id`.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use portcullis_commands::Context;
use portcullis_commands::control::{IdempotencyKey, Principal};
use serde::de::DeserializeOwned;

use crate::{ApiError, ApiState, auth};

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request header carrying an idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// The id of one request: a ULID made on arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Middleware: gives the request a fresh id (in its extensions) and returns it in
/// `x-request-id`.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = ulid::Ulid::new().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The authenticated admin of a request.
#[derive(Debug)]
pub struct Admin {
    /// Who.
    pub principal: Principal,
    /// The metadata of the events this request records (the request id as correlation id).
    pub context: Context,
    /// The caller's `Idempotency-Key`, if any.
    pub idempotency_key: Option<IdempotencyKey>,
}

impl Admin {
    /// The idempotency key to pass to the service.
    pub fn key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let principal = auth::authenticate(&state.control, authorization).await?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| ulid::Ulid::new().to_string(), |id| id.0.clone());
        let idempotency_key = match parts.headers.get(IDEMPOTENCY_KEY_HEADER) {
            None => None,
            Some(value) => {
                let text = value
                    .to_str()
                    .map_err(|_| ApiError::invalid("idempotency_key", "must be printable ASCII"))?;
                Some(IdempotencyKey::parse(text)?)
            }
        };
        Ok(Admin {
            context: Context::admin(&principal, &request_id),
            principal,
            idempotency_key,
        })
    }
}

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest {
            field: None,
            message: format!("cannot read the request body: {}", rejection.body_text()),
        }
    }
}

/// Whether the request says its body is JSON: `application/json` or `application/<x>+json`,
/// parameters (`; charset=utf-8`) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON document, naming the offending field of any error by its path: first as
/// JSON (a syntax error is "malformed JSON"), then as `T` (every error names its field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| ApiError::BadRequest {
            field: None,
            message: format!("malformed JSON: {error}"),
        })?;
    // serde would also fill a struct from an array, by position.
    if !value.is_object() {
        return Err(ApiError::BadRequest {
            field: None,
            message: "the request body must be a JSON object".to_owned(),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = field_of(&path, &inner.to_string());
        let message = match &field {
            Some(field) => format!("invalid {field}: {}", without_position(&inner)),
            None => format!("invalid request body: {}", without_position(&inner)),
        };
        ApiError::BadRequest { field, message }
    })
}

/// serde_json's message without the trailing " at line L column C".
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The field a data error is about: the path, plus the field named by an "unknown field" or
/// "missing field" message (serde reports those at the enclosing object).
pub fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| {
            let rest = message.strip_prefix(prefix)?;
            rest.split('`').next().map(str::to_owned)
        });
    let path = if path == "." { "" } else { path };
    match (path, named) {
        ("", None) => None,
        ("", Some(name)) => Some(name),
        (path, None) => Some(path.to_owned()),
        (path, Some(name)) if path.ends_with(&name) => Some(path.to_owned()),
        (path, Some(name)) => Some(format!("{path}.{name}")),
    }
}

/// Path parameters of type `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::BadRequest {
                field: None,
                message: format!("invalid path parameter: {}", rejection.body_text()),
            })
    }
}

/// Query parameters of type `T` (unknown parameters are refused when `T` denies them).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_owned();
                // axum reports `<path>: <serde message>`.
                let field = match detail.split_once(": ") {
                    Some((path, message)) if !path.is_empty() && !path.contains(' ') => {
                        field_of(path, message)
                    }
                    _ => field_of("", &detail),
                };
                ApiError::BadRequest {
                    field,
                    message: format!("invalid query: {detail}"),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        level: portcullis_proto::TrustLevel,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        list: Option<Vec<Inner>>,
    }

    fn field(body: &str) -> Option<String> {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_by_its_path() {
        assert_eq!(field(r#"{"name":"a","bogus":1}"#).as_deref(), Some("bogus"));
        assert_eq!(field(r#"{"inner":null}"#).as_deref(), Some("name"));
        assert_eq!(field(r#"{"name":1}"#).as_deref(), Some("name"));
        assert_eq!(
            field(r#"{"name":"a","inner":{"level":"extreme"}}"#).as_deref(),
            Some("inner.level")
        );
        assert_eq!(
            field(r#"{"name":"a","inner":{"level":"low","x":1}}"#).as_deref(),
            Some("inner.x")
        );
        assert_eq!(
            field(r#"{"name":"a","list":[{"level":"low"},{"level":"max"}]}"#).as_deref(),
            Some("list[1].level")
        );
        assert_eq!(field(r#"{"name":"a""#), None);
        assert_eq!(field(r#"{"name":"a"} trailing"#), None);
        assert_eq!(field(r#"["a", null, null]"#), None);
    }

    #[test]
    fn only_json_content_types_are_json() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }
}
