//! Forwarding to the upstream and relaying its answer to the client.
//!
//! JSON answers are read whole (bounded) and passed on byte for byte, except `tools/list`
//! results, which are filtered by policy. SSE answers are relayed event by event through a
//! bounded channel, never buffered whole: each event's id is sealed (so resuming works on any
//! replica and the upstream's ids stay private), `tools/list` results are filtered, and a
//! server-to-client request for a capability the client did not declare is not relayed: the
//! upstream gets an error answer instead. A stream that goes silent longer than the idle
//! limit ends with a JSON-RPC error for the pending request, never a hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use portcullis_upstream::{ForwardBody, ForwardFailure, ForwardResponse};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::handle::SessionHandle;
use crate::jsonrpc::{self, Outbound, codes};
use crate::proxy::{Inner, Reject};
use crate::sse;

/// MCP session header.
pub const MCP_SESSION_ID: &str = "mcp-session-id";
/// MCP protocol version header.
pub const MCP_PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// How to change a response on its way to the client.
#[derive(Clone, Default)]
pub enum Transform {
    /// Pass it on.
    #[default]
    None,
    /// Keep only these tools in the `tools/list` result answering `id`.
    FilterTools {
        /// The request id (raw JSON).
        id: String,
        /// Which tool names to keep.
        keep: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    },
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transform::None => f.write_str("None"),
            Transform::FilterTools { id, .. } => f
                .debug_struct("FilterTools")
                .field("id", id)
                .finish_non_exhaustive(),
        }
    }
}

/// One upstream exchange to make.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// HTTP method.
    pub method: Method,
    /// The upstream MCP URL.
    pub url: &'a str,
    /// The server's key (for error messages).
    pub server_key: &'a str,
    /// The body, for POST.
    pub body: Option<Bytes>,
    /// The protocol version to send.
    pub protocol_version: Option<&'a str>,
    /// The upstream session to name.
    pub upstream_session: Option<&'a str>,
    /// `Last-Event-ID` to send (already opened).
    pub last_event_id: Option<String>,
    /// The server's own wait for a response head, when an admin set one (else the
    /// data plane's `--upstream-timeout`).
    pub timeout: Option<Duration>,
    /// The human's own access token at the upstream, for servers that need one (never the
    /// client's token).
    pub bearer: Option<&'a str>,
}

/// Why an upstream exchange failed.
#[derive(Debug)]
pub struct UpstreamFailure {
    /// Metric label.
    pub kind: &'static str,
    /// What to tell the client.
    pub detail: String,
}

/// Sends the exchange and waits (bounded) for the response head.
pub async fn send(
    inner: &Inner,
    exchange: Exchange<'_>,
) -> Result<ForwardResponse, UpstreamFailure> {
    // The forwarding client's connector checks scheme, credentials and IP literals for each
    // new connection, and its resolver every address a name resolves to.
    let uri: Uri = exchange.url.parse().map_err(|e| UpstreamFailure {
        kind: "connect",
        detail: format!("its URL is invalid: {e}"),
    })?;
    // The URL without query or credentials: an admin may have put a key in it.
    let span = tracing::info_span!(
        "upstream.request",
        otel.kind = "client",
        http.request.method = %exchange.method,
        server.address = uri.host().unwrap_or(""),
        url.path = uri.path(),
        http.response.status_code = tracing::field::Empty,
    );
    let accept = match exchange.method {
        Method::GET => "text/event-stream",
        _ => "application/json, text/event-stream",
    };
    let mut request = Request::builder()
        .method(exchange.method)
        .uri(uri)
        .header(header::ACCEPT, accept);
    if exchange.body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(version) = exchange.protocol_version {
        request = request.header(MCP_PROTOCOL_VERSION, version);
    }
    if let Some(session) = exchange.upstream_session {
        request = request.header(MCP_SESSION_ID, session);
    }
    if let Some(last) = exchange.last_event_id {
        request = request.header("last-event-id", last);
    }
    if let Some(token) = exchange.bearer {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| UpstreamFailure {
                kind: "connect",
                detail: "its access token cannot be sent in a header".to_owned(),
            })?;
        value.set_sensitive(true);
        request = request.header(header::AUTHORIZATION, value);
    }
    if let Some(headers) = request.headers_mut() {
        headers.extend(crate::tracing_context::headers_for(&span));
    }
    let request = request
        .body(ForwardBody::new(exchange.body.unwrap_or_default()))
        .map_err(|e| UpstreamFailure {
            kind: "connect",
            detail: format!("the request could not be built: {e}"),
        })?;
    let started = Instant::now();
    let limit = exchange.timeout.unwrap_or(inner.config.upstream_timeout);
    let sent = tokio::time::timeout(limit, inner.client.send(request))
        .instrument(span.clone())
        .await;
    inner
        .metrics
        .upstream_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Ok(Ok(response)) = &sent {
        span.record("http.response.status_code", response.status().as_u16());
    }
    match sent {
        Err(_) => Err(inner.upstream_failure(
            "timeout",
            format!("no answer within {}", humantime::format_duration(limit)),
        )),
        Ok(Err(ForwardFailure::Rejected(rejected))) => {
            Err(inner.upstream_failure("connect", format!("its URL is refused: {rejected}")))
        }
        Ok(Err(error)) => Err(inner.upstream_failure("connect", error.to_string())),
        Ok(Ok(response)) => Ok(response),
    }
}

/// The next chunk of `body`'s data within `idle` (trailers are skipped): `Err(())` when the
/// wait timed out, `Ok(None)` at the end.
async fn next_chunk(
    body: &mut Incoming,
    idle: Duration,
) -> Result<Option<Result<Bytes, hyper::Error>>, ()> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(()),
            Ok(None) => return Ok(None),
            Ok(Some(Err(error))) => return Ok(Some(Err(error))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(Ok(data)));
                }
            }
        }
    }
}

fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The message and `data` of the JSON-RPC error for a failed upstream exchange.
fn failure_report(server_key: &str, failure: &UpstreamFailure) -> (String, Value) {
    (
        format!(
            "Upstream MCP server `{server_key}` failed: {}",
            failure.detail
        ),
        serde_json::json!({ "server": server_key, "failure": failure.kind }),
    )
}

/// The JSON-RPC error for a failed upstream exchange: HTTP 200 answering request `id`, or
/// 502 (without an id) when the client sent a notification or response.
pub fn upstream_error(
    server_key: &str,
    id: Option<&RawValue>,
    failure: &UpstreamFailure,
) -> Reject {
    let (message, data) = failure_report(server_key, failure);
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Reject::rpc(status, id, codes::UPSTREAM_FAILED, message, Some(data))
}

fn is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// Reads a body chunk by chunk up to `limit` bytes, each chunk within `idle`.
async fn read_bounded(
    response: ForwardResponse,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, UpstreamFailure> {
    let mut body = response.into_body();
    let mut read = Vec::new();
    loop {
        match next_chunk(&mut body, idle).await {
            Err(()) => {
                return Err(UpstreamFailure {
                    kind: "timeout",
                    detail: "its answer stalled".to_owned(),
                });
            }
            Ok(None) => return Ok(Bytes::from(read)),
            Ok(Some(Err(error))) => {
                return Err(UpstreamFailure {
                    kind: "stream",
                    detail: innermost(&error),
                });
            }
            Ok(Some(Ok(chunk))) => {
                if read.len() + chunk.len() > limit {
                    return Err(UpstreamFailure {
                        kind: "too_large",
                        detail: format!("its answer is larger than {limit} bytes"),
                    });
                }
                // A whole answer in one chunk (the usual case) is passed on without a copy.
                if read.is_empty() && body.is_end_stream() {
                    return Ok(chunk);
                }
                read.extend_from_slice(&chunk);
            }
        }
    }
}

/// Applies `transform` to one JSON-RPC message; returns the bytes to send on.
fn transform_message(transform: &Transform, data: &[u8]) -> Option<Vec<u8>> {
    let Transform::FilterTools { id, keep } = transform else {
        return None;
    };
    let mut value: Value = serde_json::from_slice(data).ok()?;
    let matches = value
        .get("id")
        .is_some_and(|found| serde_json::to_string(found).ok().as_deref() == Some(id.as_str()));
    if !matches {
        return None;
    }
    let tools = value.get_mut("result")?.get_mut("tools")?.as_array_mut()?;
    tools.retain(|tool| {
        tool.get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| keep(name))
    });
    serde_json::to_vec(&value).ok()
}

/// What the relay needs to know about the client request being answered.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The request id, if the client message was a request.
    pub id: Option<Box<RawValue>>,
    /// The server key (for error messages).
    pub server_key: String,
    /// The upstream URL (for answering refused server requests).
    pub url: String,
}

/// Relays an upstream answer to the client. `handle` is the client's session (also used to
/// seal event ids); `session_header` is set on the response when a new session starts.
pub async fn respond(
    inner: Arc<Inner>,
    upstream: ForwardResponse,
    handle: SessionHandle,
    session_header: Option<String>,
    pending: Pending,
    transform: Transform,
) -> Response {
    let status = upstream.status();
    let mut headers = HeaderMap::new();
    if let Some(session) = &session_header
        && let Ok(value) = HeaderValue::from_str(session)
    {
        headers.insert(MCP_SESSION_ID, value);
    }
    if status == StatusCode::ACCEPTED {
        return (StatusCode::ACCEPTED, headers).into_response();
    }
    if status == StatusCode::NOT_FOUND && handle.upstream_session.is_some() {
        return Reject::session_gone().into_response();
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Reject::rpc(
                StatusCode::OK,
                pending.id.as_deref(),
                codes::UPSTREAM_AUTH_REQUIRED,
                format!(
                    "Upstream MCP server `{}` refused the gateway's credentials (HTTP {}). Reconnect to sign in to it again, or ask an admin to check its settings.",
                    pending.server_key,
                    status.as_u16()
                ),
                Some(serde_json::json!({ "server": pending.server_key, "status": status.as_u16() })),
            )
            .into_response();
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return (StatusCode::METHOD_NOT_ALLOWED, headers).into_response();
    }
    if !status.is_success() {
        let detail = read_bounded(upstream, 4096, inner.config.sse_idle_timeout)
            .await
            .map(|body| excerpt(&body))
            .unwrap_or_default();
        // Some servers (the TS SDK's among them) answer 400 rather than 404 for a session
        // they no longer know; the client must then initialize again, as after a 404.
        if status == StatusCode::BAD_REQUEST
            && handle.upstream_session.is_some()
            && detail.to_ascii_lowercase().contains("session")
        {
            return Reject::session_gone().into_response();
        }
        let failure = inner.upstream_failure(
            "status",
            if detail.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!("HTTP {}: {detail}", status.as_u16())
            },
        );
        return upstream_error(&pending.server_key, pending.id.as_deref(), &failure)
            .into_response();
    }
    if is_sse(upstream.headers()) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store"),
        );
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        let body = relay_sse(inner, upstream, handle, pending, transform);
        return (status, headers, body).into_response();
    }
    if pending.id.is_none() && !is_json(upstream.headers()) {
        // An empty 200 to a notification or response.
        return (StatusCode::ACCEPTED, headers).into_response();
    }
    let body = match read_bounded(
        upstream,
        inner.config.max_response_bytes,
        inner.config.sse_idle_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(failure) => {
            let failure = inner.upstream_failure(failure.kind, failure.detail);
            return upstream_error(&pending.server_key, pending.id.as_deref(), &failure)
                .into_response();
        }
    };
    let body = transform_message(&transform, &body).map_or(body, Bytes::from);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (status, headers, body).into_response()
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}

/// The SSE relay: a task reads the upstream, the client reads a bounded channel.
fn relay_sse(
    inner: Arc<Inner>,
    upstream: ForwardResponse,
    handle: SessionHandle,
    pending: Pending,
    transform: Transform,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let idle = inner.config.sse_idle_timeout;
        let mut parser = sse::Parser::new(inner.config.max_event_bytes);
        let mut stream = upstream.into_body();
        let mut answered = pending.id.is_none();
        let pending_id = pending.id.as_ref().map(|id| id.get().to_owned());
        let failure = loop {
            let next = tokio::select! {
                () = sender.closed() => return,
                next = next_chunk(&mut stream, idle) => next,
            };
            let chunk = match next {
                Err(()) => {
                    break UpstreamFailure {
                        kind: "timeout",
                        detail: format!(
                            "its stream was silent for {}",
                            humantime::format_duration(idle)
                        ),
                    };
                }
                Ok(None) => return,
                Ok(Some(Err(error))) => {
                    break UpstreamFailure {
                        kind: "stream",
                        detail: innermost(&error),
                    };
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let events = match parser.feed(&chunk) {
                Ok(events) => events,
                Err(too_large) => {
                    break UpstreamFailure {
                        kind: "too_large",
                        detail: too_large.to_string(),
                    };
                }
            };
            for mut event in events {
                if let Some(id) = event.id.take() {
                    event.id = handle.seal_event_id(&inner.ring, &id);
                }
                if let Some(data) = &event.data
                    && !data.is_empty()
                {
                    match jsonrpc::classify_outbound(data.as_bytes()) {
                        Outbound::Request(method, id) if !handle.capabilities.allows(&method) => {
                            tracing::info!(%method, "Refusing a server-to-client request for a capability the client did not declare.");
                            refuse_server_request(inner.clone(), &handle, &pending, &method, id);
                            continue;
                        }
                        Outbound::Response(id) if Some(id.get()) == pending_id.as_deref() => {
                            answered = true;
                        }
                        _ => {}
                    }
                    if let Some(changed) = transform_message(&transform, data.as_bytes()) {
                        event.data = Some(String::from_utf8_lossy(&changed).into_owned());
                    }
                }
                if sender.send(Ok(event.encode())).await.is_err() {
                    return;
                }
            }
        };
        // The request is still unanswered: end its stream with the error, never a hang.
        if !answered {
            let failure = inner.upstream_failure(failure.kind, failure.detail);
            let (message, data) = failure_report(&pending.server_key, &failure);
            let body = jsonrpc::error_response(
                pending.id.as_deref(),
                codes::UPSTREAM_FAILED,
                &message,
                Some(data),
            );
            let _ = sender
                .send(Ok(sse::Event::data(String::from_utf8_lossy(&body)).encode()))
                .await;
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
}

/// Answers an upstream's server-to-client request the client cannot receive.
fn refuse_server_request(
    inner: Arc<Inner>,
    handle: &SessionHandle,
    pending: &Pending,
    method: &str,
    id: Box<RawValue>,
) {
    let body = jsonrpc::error_response(
        Some(&id),
        -32601,
        &format!("The client did not declare the capability `{method}` needs"),
        None,
    );
    let url = pending.url.clone();
    let key = pending.server_key.clone();
    let session = handle.upstream_session.clone();
    let version = handle.protocol_version.clone();
    tokio::spawn(async move {
        let exchange = Exchange {
            method: Method::POST,
            url: &url,
            server_key: &key,
            body: Some(body),
            protocol_version: Some(&version),
            upstream_session: session.as_deref(),
            last_event_id: None,
            timeout: None,
            bearer: None,
        };
        if let Err(failure) = send(&inner, exchange).await {
            tracing::warn!(server = %key, detail = %failure.detail, "Could not tell the upstream that a request was refused.");
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report
    use super::*;

    #[test]
    fn only_the_answer_to_the_list_request_is_filtered() {
        let transform = Transform::FilterTools {
            id: "5".to_owned(),
            keep: Arc::new(|name| name == "keep"),
        };
        let answer = br#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"keep"},{"name":"drop"},{"x":1}],"nextCursor":"c"}}"#;
        let filtered: Value =
            serde_json::from_slice(&transform_message(&transform, answer).unwrap()).unwrap();
        assert_eq!(
            filtered["result"]["tools"],
            serde_json::json!([{"name":"keep"}])
        );
        assert_eq!(filtered["result"]["nextCursor"], "c");
        assert!(
            transform_message(
                &transform,
                br#"{"jsonrpc":"2.0","id":6,"result":{"tools":[]}}"#
            )
            .is_none()
        );
        assert!(transform_message(&Transform::None, answer).is_none());
    }
}
