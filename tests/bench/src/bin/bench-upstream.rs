//! `bench-upstream`: a minimal, fast MCP server that the `proxy` benchmark puts behind every
//! target (direct, nginx, the gateway), so that each target differs only by its hop.
//!
//! Speaks the Streamable HTTP transport (2025-06-18 and 2025-11-25) with JSON responses only,
//! enough for a real client: `initialize` (echoes the client's protocol version when it is one
//! of those two, and hands out an `Mcp-Session-Id`), notifications and responses (202),
//! `ping`, `tools/list` (three tools, one per trust level: `get_weather` low, `update_record`
//! medium, `delete_record` high), `tools/call` (echoes the arguments), and `DELETE /mcp` to
//! end a session. It checks what a strict server checks: `Accept`, `Content-Type`, `Origin`,
//! the session header after `initialize` (400 without, 404 for an unknown one) and
//! `MCP-Protocol-Version` when sent. It opens no SSE streams: `GET /mcp` is 405.
//!
//! Must not: listen anywhere but loopback, log per request, or do work that a real server's
//! transport would not (the benchmark measures the hop, not this server).
#![allow(clippy::expect_used)] // only at start-up, where failing loudly is right

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use serde_json::{Value, json};

/// Protocol versions this server speaks; `initialize` echoes the client's when it is one of
/// these, and answers with the newest otherwise (the client then decides whether to go on).
const SUPPORTED_VERSIONS: [&str; 2] = ["2025-11-25", "2025-06-18"];
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

/// A minimal MCP upstream for benchmarks, on loopback only.
#[derive(Debug, Parser)]
struct Args {
    /// Loopback address to listen on; port 0 picks a free one. The chosen address is printed
    /// as `listening on http://<addr>/mcp`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "bench-upstream listens on loopback only, not {}",
        args.listen
    );
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.enable_all().build()?.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::serve::ListenerExt as _;
    use std::io::Write as _;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    // Small requests and responses on keep-alive connections: never wait for Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}/mcp")?;
    stdout.flush()?;
    axum::serve(listener, router()).await?;
    Ok(())
}

fn router() -> Router {
    Router::new()
        .route(
            "/mcp",
            post(post_mcp).delete(delete_mcp).get(|| async {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(header::ALLOW, "POST, DELETE")],
                )
            }),
        )
        .with_state(Arc::new(Sessions::default()))
}

/// Session ids handed out by `initialize` and not yet deleted. Every request after
/// `initialize` reads it once; only `initialize` and `DELETE` write.
#[derive(Debug, Default)]
struct Sessions(RwLock<HashSet<String>>);

impl Sessions {
    fn open(&self) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id.clone());
        id
    }

    fn contains(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(id)
    }

    fn close(&self, id: &str) -> bool {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(id)
    }
}

async fn post_mcp(
    State(sessions): State<Arc<Sessions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = check_origin(&headers) {
        return refused;
    }
    if !accepts(&headers, "application", "json") || !accepts(&headers, "text", "event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            &Value::Null,
            -32600,
            "Accept must list application/json and text/event-stream",
        );
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_body {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &Value::Null,
            -32600,
            "Content-Type must be application/json",
        );
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(_) => return rpc_error(StatusCode::BAD_REQUEST, &Value::Null, -32700, "parse error"),
    };
    let Some(object) = message.as_object() else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32600,
            "expected one JSON-RPC message (batches are not part of this protocol version)",
        );
    };
    let id = object.get("id").cloned().unwrap_or(Value::Null);
    let method = object.get("method").and_then(Value::as_str);

    if method == Some("initialize") {
        return initialize(&sessions, &id, object.get("params"));
    }
    match headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        None => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                -32600,
                "missing Mcp-Session-Id",
            );
        }
        Some(session) if !sessions.contains(session) => {
            return rpc_error(StatusCode::NOT_FOUND, &id, -32001, "session not found");
        }
        Some(_) => {}
    }
    if let Some(version) = headers.get(VERSION_HEADER)
        && !SUPPORTED_VERSIONS
            .iter()
            .any(|v| version.as_bytes() == v.as_bytes())
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &id,
            -32600,
            "unsupported MCP-Protocol-Version",
        );
    }
    let Some(method) = method else {
        // A response to a server request (this server sends none, but must accept them).
        return if object.contains_key("result") || object.contains_key("error") {
            StatusCode::ACCEPTED.into_response()
        } else {
            rpc_error(
                StatusCode::BAD_REQUEST,
                &id,
                -32600,
                "not a JSON-RPC message",
            )
        };
    };
    if !object.contains_key("id") {
        return StatusCode::ACCEPTED.into_response(); // a notification
    }
    let params = object.get("params");
    match method {
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, tools()),
        "tools/call" => call_tool(&id, params),
        _ => rpc_error(StatusCode::OK, &id, -32601, "method not found"),
    }
}

fn initialize(sessions: &Sessions, id: &Value, params: Option<&Value>) -> Response {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version = match requested {
        Some(v) if SUPPORTED_VERSIONS.contains(&v) => v,
        _ => SUPPORTED_VERSIONS[0],
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": {} },
        "serverInfo": { "name": "bench-upstream", "version": env!("CARGO_PKG_VERSION") },
    });
    let mut response = rpc_result(id, result);
    let session =
        HeaderValue::try_from(sessions.open()).expect("hex digits are a valid header value");
    response.headers_mut().insert(SESSION_HEADER, session);
    response
}

fn call_tool(id: &Value, params: Option<&Value>) -> Response {
    let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
    let Some(name) = name else {
        return rpc_error(StatusCode::OK, id, -32602, "tools/call needs params.name");
    };
    if !["get_weather", "update_record", "delete_record"].contains(&name) {
        return rpc_error(StatusCode::OK, id, -32602, &format!("unknown tool: {name}"));
    }
    let arguments = params
        .and_then(|p| p.get("arguments"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let text = format!("{name} called with {arguments}");
    rpc_result(
        id,
        json!({ "content": [{ "type": "text", "text": text }], "isError": false }),
    )
}

/// One tool per trust level as Portcullis classifies them: by name keyword, raised by
/// annotations (`control-plane/domain/src/classify.rs`).
fn tools() -> Value {
    json!({ "tools": [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "inputSchema": {
                "type": "object",
                "properties": { "city": { "type": "string" } },
                "required": ["city"],
            },
            "annotations": { "readOnlyHint": true },
        },
        {
            "name": "update_record",
            "description": "Updates fields of a record.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "id": { "type": "string" },
                    "fields": { "type": "object" },
                },
                "required": ["id", "fields"],
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": false },
        },
        {
            "name": "delete_record",
            "description": "Deletes a record.",
            "inputSchema": {
                "type": "object",
                "properties": { "id": { "type": "string" } },
                "required": ["id"],
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": true },
        },
    ]})
}

async fn delete_mcp(State(sessions): State<Arc<Sessions>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check_origin(&headers) {
        return refused;
    }
    match headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        None => StatusCode::BAD_REQUEST.into_response(),
        Some(session) if sessions.close(session) => StatusCode::OK.into_response(),
        Some(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Whether the `Accept` header has a media range that matches `kind/subtype`.
fn accepts(headers: &HeaderMap, kind: &str, subtype: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|range| range.split(';').next().unwrap_or("").trim())
        .any(|range| {
            let (k, s) = range.split_once('/').unwrap_or((range, ""));
            (k == "*" || k.eq_ignore_ascii_case(kind))
                && (s == "*" || s.eq_ignore_ascii_case(subtype))
        })
}

/// The transport's DNS-rebinding guard: a browser `Origin` must be a loopback one.
fn check_origin(headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    if ["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        None
    } else {
        Some(StatusCode::FORBIDDEN.into_response())
    }
}

fn rpc_result(id: &Value, result: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "jsonrpc": "2.0", "id": id, "result": result }),
    )
}

fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response {
    json_response(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serializes");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}
