//! A real MCP client over one keep-alive HTTP/1.1 connection (hyper's low-level client, so
//! the harness decides exactly how many connections each target sees): the handshake
//! (`initialize`, `notifications/initialized`), `tools/list`, `tools/call`, and `DELETE` of
//! the session. Answers may be JSON or SSE; a call counts only when it is HTTP 200 carrying a
//! JSON-RPC result (not an error) for its id.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use super::target::Endpoint;

/// The version this client asks for; it goes on with any version it knows that the server
/// answers instead.
const PROTOCOL_VERSION: &str = "2025-11-25";
const KNOWN_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// A request taking longer than this is an error (and its connection is replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one request did not count as a successful call. `label` is what the report counts by.
#[derive(Debug)]
pub enum CallError {
    /// Connecting, writing or reading failed, or the server closed the connection.
    Transport(String),
    /// No answer within `REQUEST_TIMEOUT`.
    Timeout,
    /// An HTTP status other than the one expected.
    Status(StatusCode),
    /// A JSON-RPC error answer.
    Rpc(i64),
    /// An answer that is not the expected JSON-RPC response.
    Malformed(&'static str),
}

impl CallError {
    /// A short, bounded label for counting errors by kind.
    pub fn label(&self) -> String {
        match self {
            CallError::Transport(_) => "transport error".to_owned(),
            CallError::Timeout => "timeout".to_owned(),
            CallError::Status(status) => format!("HTTP {}", status.as_u16()),
            CallError::Rpc(code) => format!("JSON-RPC error {code}"),
            CallError::Malformed(what) => format!("malformed answer ({what})"),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Transport(detail) => write!(f, "transport error: {detail}"),
            other => f.write_str(&other.label()),
        }
    }
}

impl std::error::Error for CallError {}

/// One MCP session on one HTTP/1.1 connection; reconnects (same session) when the server
/// closes the connection.
#[derive(Debug)]
pub struct McpConnection {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
    session: Option<HeaderValue>,
    version: HeaderValue,
    next_id: u64,
    /// `"tool_name"`, JSON-escaped once.
    tool_json: String,
}

impl McpConnection {
    /// Connects and runs the MCP handshake: `initialize`, then `notifications/initialized`.
    pub async fn open(endpoint: Arc<Endpoint>, tool: &str) -> anyhow::Result<McpConnection> {
        let mut connection = McpConnection {
            endpoint,
            sender: None,
            session: None,
            version: HeaderValue::from_static(PROTOCOL_VERSION),
            next_id: 1,
            tool_json: serde_json::to_string(tool)?,
        };
        let url = connection.endpoint.url.clone();
        connection
            .initialize()
            .await
            .map_err(|e| anyhow::anyhow!("MCP handshake with {url}: {e}"))?;
        Ok(connection)
    }

    async fn initialize(&mut self) -> Result<(), CallError> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"portcullis-bench","version":"{}"}}}}}}"#,
            env!("CARGO_PKG_VERSION")
        );
        let (status, headers, bytes) = self.post(Bytes::from(body)).await?;
        let result = rpc_result(status, &headers, &bytes, 0)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or(CallError::Malformed(
                "initialize result without protocolVersion",
            ))?;
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(CallError::Malformed("unknown protocol version"));
        }
        self.version =
            HeaderValue::from_str(version).map_err(|_| CallError::Malformed("protocol version"))?;
        self.session = headers.get("mcp-session-id").cloned();
        let (status, _, _) = self
            .post(Bytes::from_static(
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            ))
            .await?;
        if !status.is_success() {
            return Err(CallError::Status(status));
        }
        Ok(())
    }

    /// The names of the tools the server lists (first page).
    pub async fn list_tools(&mut self) -> Result<Vec<String>, CallError> {
        let id = self.take_id();
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{}}}}"#);
        let (status, headers, bytes) = self.post(Bytes::from(body)).await?;
        let result = rpc_result(status, &headers, &bytes, id)?;
        let tools = result
            .get("tools")
            .and_then(Value::as_array)
            .ok_or(CallError::Malformed("tools/list result without tools"))?;
        Ok(tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// One `tools/call` of the target's tool with small arguments.
    pub async fn call_tool(&mut self) -> Result<(), CallError> {
        let id = self.take_id();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":{},"arguments":{{"city":"Berlin"}}}}}}"#,
            self.tool_json
        );
        let (status, headers, bytes) = self.post(Bytes::from(body)).await?;
        rpc_result(status, &headers, &bytes, id).map(drop)
    }

    /// Ends the session (`DELETE`); a server may refuse (405), which is fine.
    pub async fn close(mut self) {
        if self.session.is_some() {
            let _ = self.send(Method::DELETE, None).await;
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn post(
        &mut self,
        body: Bytes,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), CallError> {
        self.send(Method::POST, Some(body)).await
    }

    async fn send(
        &mut self,
        method: Method,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), CallError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(method, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None; // the answer may still come: never reuse this connection
                Err(CallError::Timeout)
            }
        }
    }

    async fn send_inner(
        &mut self,
        method: Method,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), CallError> {
        let endpoint = &self.endpoint;
        let mut request = Request::builder()
            .method(method)
            .uri(endpoint.path.as_str())
            .header(HOST, endpoint.authority.clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .header("mcp-protocol-version", self.version.clone());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session.clone());
        }
        for (name, value) in &endpoint.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CallError::Transport(format!("building the request: {e}")))?;
        let response = self
            .ready_sender()
            .await?
            .send_request(request)
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    /// The connection's sender, reconnecting first when there is none or the server closed it.
    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, CallError> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            self.sender = Some(connect(&self.endpoint).await?);
        }
        Ok(self.sender.as_mut().expect("set just above"))
    }
}

async fn connect(endpoint: &Endpoint) -> Result<SendRequest<Full<Bytes>>, CallError> {
    let stream = tokio::net::TcpStream::connect(endpoint.addr)
        .await
        .map_err(|e| CallError::Transport(format!("connecting to {}: {e}", endpoint.addr)))?;
    stream
        .set_nodelay(true)
        .map_err(|e| CallError::Transport(e.to_string()))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
    // Drives the connection until either side closes it; errors surface through `sender`.
    tokio::spawn(connection);
    Ok(sender)
}

/// The `result` of the JSON-RPC response to `id` in an HTTP answer, JSON or SSE.
fn rpc_result(
    status: StatusCode,
    headers: &hyper::HeaderMap,
    body: &[u8],
    id: u64,
) -> Result<Value, CallError> {
    if status != StatusCode::OK {
        return Err(CallError::Status(status));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut message = if content_type.starts_with("text/event-stream") {
        sse_response(body, id)?
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|_| CallError::Malformed("body is not JSON"))?
    } else {
        return Err(CallError::Malformed("unexpected Content-Type"));
    };
    if message.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(CallError::Malformed("response id does not match"));
    }
    if let Some(error) = message.get("error") {
        return Err(CallError::Rpc(
            error.get("code").and_then(Value::as_i64).unwrap_or(0),
        ));
    }
    message
        .get_mut("result")
        .map(Value::take)
        .ok_or(CallError::Malformed("neither result nor error"))
}

/// The JSON-RPC response to `id` among the events of an SSE body (requests and notifications
/// from the server may come first).
fn sse_response(body: &[u8], id: u64) -> Result<Value, CallError> {
    let text = std::str::from_utf8(body).map_err(|_| CallError::Malformed("SSE is not UTF-8"))?;
    for event in text.split("\n\n").flat_map(|e| e.split("\r\n\r\n")) {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) else {
            return Err(CallError::Malformed("SSE data is not JSON"));
        };
        let is_response = message.get("result").is_some() || message.get("error").is_some();
        if is_response && message.get("id").and_then(Value::as_u64) == Some(id) {
            return Ok(message);
        }
    }
    Err(CallError::Malformed(
        "SSE stream ended without the response",
    ))
}
