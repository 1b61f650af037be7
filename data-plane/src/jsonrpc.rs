//! The JSON-RPC envelope the proxy reads, the limits on it, and the errors it writes.
//!
//! The proxy never re-serializes a message it forwards: it parses only the envelope (`id`,
//! `method`, and for `tools/call` the tool name and a digest of the arguments) and passes the
//! original bytes on, so upstream and client fields the gateway does not know survive.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Stable JSON-RPC error codes of the gateway (implementation-defined range).
pub mod codes {
    /// Standard: malformed JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Standard: not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Standard: internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Policy denied a tool call.
    pub const PERMISSION_DENIED: i64 = -32003;
    /// The upstream server failed (unreachable, timed out, bad answer).
    pub const UPSTREAM_FAILED: i64 = -32010;
    /// The upstream needs the human to sign in to it first.
    pub const UPSTREAM_AUTH_REQUIRED: i64 = -32011;
    /// The gateway cannot decide right now (policy not current, audit store down).
    pub const GATEWAY_UNAVAILABLE: i64 = -32012;
    /// The MCP session is unknown or ended.
    pub const SESSION_NOT_FOUND: i64 = -32001;
}

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// What kind of message a client sent.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A request: has a method and an id.
    Request {
        /// The raw id (number or string), as sent.
        id: Box<RawValue>,
        /// The method.
        method: String,
    },
    /// A notification: a method, no id.
    Notification {
        /// The method.
        method: String,
    },
    /// A response to a server-to-client request.
    Response,
}

/// One parsed client message.
#[derive(Debug)]
pub struct Message {
    /// Its kind.
    pub kind: Kind,
    /// `params.name` (tools/call, prompts/get), when a string.
    pub name: Option<String>,
    /// `params.arguments` (raw), when present.
    pub arguments: Option<Box<RawValue>>,
    /// `params.capabilities` (initialize), when present.
    pub capabilities: Option<Value>,
    /// `params.protocolVersion` (initialize), when a string.
    pub protocol_version: Option<String>,
    /// The original bytes.
    pub bytes: Bytes,
}

impl Message {
    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response => None,
        }
    }

    /// The id of a request.
    pub fn id(&self) -> Option<&RawValue> {
        match &self.kind {
            Kind::Request { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Why a body was refused; each maps to HTTP 400 and a JSON-RPC error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    /// Not JSON, or nested too deep.
    #[error("{0}")]
    Parse(String),
    /// JSON, but not one JSON-RPC 2.0 message.
    #[error("{0}")]
    Invalid(String),
}

impl BadMessage {
    /// The JSON-RPC code.
    pub fn code(&self) -> i64 {
        match self {
            BadMessage::Parse(_) => codes::PARSE_ERROR,
            BadMessage::Invalid(_) => codes::INVALID_REQUEST,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    arguments: Option<Box<RawValue>>,
    #[serde(default)]
    capabilities: Option<Value>,
    #[serde(default, rename = "protocolVersion")]
    protocol_version: Option<Value>,
}

/// Parses one client message within `limits`.
pub fn parse(bytes: Bytes, limits: &Limits) -> Result<Message, BadMessage> {
    check_depth(&bytes, limits.max_depth)?;
    let trimmed = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if trimmed == Some(&b'[') {
        // Parse first so malformed JSON is still -32700.
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
            .map_err(|e| BadMessage::Parse(format!("the body is not valid JSON: {e}")))?;
        return Err(BadMessage::Invalid(
            "JSON-RPC batches are not supported (MCP 2025-06-18 and later): send one message per request".to_owned(),
        ));
    }
    let envelope: Envelope<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_data() {
            BadMessage::Invalid(format!("the body is not a JSON-RPC message: {e}"))
        } else {
            BadMessage::Parse(format!("the body is not valid JSON: {e}"))
        }
    })?;
    if envelope.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Err(BadMessage::Invalid("`jsonrpc` must be \"2.0\"".to_owned()));
    }
    if let Some(id) = &envelope.id {
        let text = id.get();
        let valid = text.starts_with('"') || serde_json::from_str::<i64>(text).is_ok();
        if !valid {
            return Err(BadMessage::Invalid(
                "`id` must be a string or an integer".to_owned(),
            ));
        }
    }
    let kind = match (envelope.method, envelope.id) {
        (Some(method), Some(id)) => {
            if envelope.result.is_some() || envelope.error.is_some() {
                return Err(BadMessage::Invalid(
                    "a request must not carry `result` or `error`".to_owned(),
                ));
            }
            Kind::Request { id, method }
        }
        (Some(method), None) => Kind::Notification { method },
        (None, Some(_)) => {
            if envelope.result.is_some() == envelope.error.is_some() {
                return Err(BadMessage::Invalid(
                    "a response must carry exactly one of `result` and `error`".to_owned(),
                ));
            }
            Kind::Response
        }
        (None, None) => {
            return Err(BadMessage::Invalid(
                "a message needs a `method` or an `id`".to_owned(),
            ));
        }
    };
    if matches!(&kind, Kind::Request { method, .. } | Kind::Notification { method } if method.is_empty())
    {
        return Err(BadMessage::Invalid("`method` must not be empty".to_owned()));
    }
    let params = match envelope.params {
        Some(raw) if raw.get().starts_with('{') => Some(
            serde_json::from_str::<Params>(raw.get())
                .map_err(|e| BadMessage::Invalid(format!("`params` is malformed: {e}")))?,
        ),
        Some(raw) if raw.get() == "null" => None,
        Some(_) => {
            return Err(BadMessage::Invalid("`params` must be an object".to_owned()));
        }
        None => None,
    };
    let (name, arguments, capabilities, protocol_version) = match params {
        Some(p) => (
            p.name.and_then(|v| v.as_str().map(str::to_owned)),
            p.arguments,
            p.capabilities,
            p.protocol_version
                .and_then(|v| v.as_str().map(str::to_owned)),
        ),
        None => (None, None, None, None),
    };
    Ok(Message {
        kind,
        name,
        arguments,
        capabilities,
        protocol_version,
        bytes,
    })
}

/// Refuses JSON nested deeper than `max` (serde_json's own limit is 128 and a stack risk for
/// whoever handles the value next). Counts brackets outside strings; a malformed document is
/// left for the parser to report.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), BadMessage> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(BadMessage::Parse(format!(
                        "the body nests deeper than {max} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A JSON-RPC error response (`id` null when unknown).
pub fn error_response(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Bytes {
    let id: Value = id
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null);
    let mut error = json!({ "code": code, "message": message });
    if let (Some(data), Some(object)) = (data, error.as_object_mut()) {
        object.insert("data".to_owned(), data);
    }
    Bytes::from(json!({ "jsonrpc": "2.0", "id": id, "error": error }).to_string())
}

/// What one server-to-client message is, as far as routing cares.
#[derive(Debug)]
pub enum Outbound {
    /// A request from the server (sampling, elicitation, roots, ping…): method and raw id.
    Request(String, Box<RawValue>),
    /// A response to a client request: its raw id.
    Response(Box<RawValue>),
    /// A notification or anything else.
    Other,
}

#[derive(Deserialize)]
struct OutboundEnvelope {
    #[serde(default)]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<String>,
}

/// Classifies a message the upstream sent.
pub fn classify_outbound(data: &[u8]) -> Outbound {
    match serde_json::from_slice::<OutboundEnvelope>(data) {
        Ok(OutboundEnvelope {
            id: Some(id),
            method: Some(method),
        }) => Outbound::Request(method, id),
        Ok(OutboundEnvelope {
            id: Some(id),
            method: None,
        }) => Outbound::Response(id),
        _ => Outbound::Other,
    }
}

#[cfg(test)]
mod tests;
