//! An admin's per-server upstream timeout bounds the wait for that server's answer: a slow
//! upstream yields a clear JSON-RPC error naming the server after its own timeout, not after
//! the data plane's global one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use portcullis_commands::control::ServerDetailsPatch;
use portcullis_e2e::gateway::Gateway;
use portcullis_proto::TrustLevel;
use serde_json::{Value, json};

/// An MCP upstream whose one tool, `slow`, answers after three seconds.
async fn slow_upstream() -> String {
    let app = Router::new().route(
        "/mcp",
        post(|body: String| async move {
            let message: Value = serde_json::from_str(&body).unwrap();
            let id = message.get("id").cloned();
            let reply = |result: Value| {
                (
                    StatusCode::OK,
                    [
                        ("content-type", "application/json"),
                        ("mcp-session-id", "s"),
                    ],
                    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                )
                    .into_response()
            };
            match message["method"].as_str() {
                Some("initialize") => reply(json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "slow", "version": "1"}
                })),
                Some("tools/list") => reply(json!({"tools": [{
                    "name": "slow", "inputSchema": {"type": "object"}
                }]})),
                Some("tools/call") => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    reply(json!({"content": [{"type": "text", "text": "late"}]}))
                }
                Some(_) if id.is_none() => StatusCode::ACCEPTED.into_response(),
                _ => reply(json!({})),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_server_timeout_ends_a_slow_call_with_a_clear_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = slow_upstream().await;
    let gateway = Gateway::start().await;
    let server = gateway.import(&upstream, "slow").await;
    gateway
        .control
        .update_server(
            &gateway.admin,
            &portcullis_commands::Context::system("e2e", "timeout"),
            None,
            &gateway.host_id,
            &server.server_id,
            ServerDetailsPatch {
                timeout_seconds: Some(1),
                ..ServerDetailsPatch::default()
            },
        )
        .await
        .unwrap();
    let human = gateway.add_human("ada@example.com").await;
    gateway
        .grant(&human, &server.server_id, TrustLevel::High)
        .await;
    let connection = gateway
        .connect(&human, &server.server_id, TrustLevel::High)
        .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |session: Option<&str>, body: Value| {
        let mut request = http
            .post(gateway.mcp_url())
            .header("authorization", format!("Bearer {}", connection.token))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session.to_owned());
        }
        request.send()
    };
    let init = post(None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let answer: Value = post(
        Some(&session),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{}}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(answer["error"]["code"], -32010, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`slow`") && message.contains("no answer within 1s"),
        "{message}"
    );
}
