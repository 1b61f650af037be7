//! Traces leave `portcullis dev` over OTLP/gRPC and reach a real receiver (PyPI
//! `opentelemetry-proto` + `grpcio`), and one trace runs from the MCP client through the
//! gateway to the upstream: the client's `traceparent` is the parent of the gateway's request
//! span, whose upstream-call span is the parent named in the `traceparent` the upstream gets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use portcullis_e2e::Process;
use portcullis_e2e::gateway::seed_dev_data_dir;
use portcullis_proto::TrustLevel;
use serde_json::{Value, json};
use test_fixtures::{OtlpSink, ReceivedSpan};

/// A minimal MCP upstream that records the `traceparent` of every `tools/call` it receives.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/mcp",
        post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
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
                        "serverInfo": {"name": "traced", "version": "1"}
                    })),
                    Some("tools/list") => reply(json!({"tools": [{
                        "name": "look", "inputSchema": {"type": "object"}
                    }]})),
                    Some("tools/call") => {
                        let traceparent = headers
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        record.lock().unwrap().push(traceparent);
                        reply(json!({"content": [{"type": "text", "text": "seen"}]}))
                    }
                    Some(_) if id.is_none() => StatusCode::ACCEPTED.into_response(),
                    _ => reply(json!({})),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// `00-<trace id>-<parent id>-<flags>` split into its trace and parent ids.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent:?}");
    assert_eq!(parts[0], "00", "{traceparent:?}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// Whether `span` descends from the span `ancestor` within `spans`.
fn descends_from(spans: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &str) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_client_through_the_gateway_to_the_upstream() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sink = OtlpSink::start().await.expect("OTLP receiver");
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = portcullis_e2e::free_addr();
    let seeded = seed_dev_data_dir(&data, listen, &upstream, "traced", TrustLevel::Low).await;
    let data_arg = data.to_str().unwrap();
    let mut dev = Process::start_at(
        &[
            "dev",
            "--data-dir",
            data_arg,
            "--otlp-endpoint",
            &sink.endpoint,
        ],
        dir.path(),
        listen,
    );
    dev.wait_ready(Duration::from_secs(30));

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{listen}/mcp");
    let post = |session: Option<&str>, traceparent: Option<&str>, body: Value| {
        let mut request = http
            .post(&url)
            .header("authorization", format!("Bearer {}", seeded.token))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session.to_owned());
        }
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent.to_owned());
        }
        request.send()
    };
    let init = post(None, None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = |id: u32| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"look","arguments":{}}});

    // A call that continues the client's trace, and one without any trace context.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let answer: Value = post(
        Some(&session),
        Some(&format!("00-{client_trace}-{client_span}-01")),
        call(2),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "seen", "{answer}");
    let answer: Value = post(Some(&session), None, call(3))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["result"]["content"][0]["text"], "seen", "{answer}");

    let forwarded = seen.lock().unwrap().clone();
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    let (upstream_trace, upstream_parent) = ids(&forwarded[0]);
    assert_eq!(
        upstream_trace, client_trace,
        "the upstream joins the client's trace"
    );
    assert_ne!(
        upstream_parent, client_span,
        "the gateway's own span sits in between"
    );
    let (fresh_trace, fresh_parent) = ids(&forwarded[1]);
    assert_ne!(
        fresh_trace, client_trace,
        "a call without context starts its own trace"
    );

    // Spans are batched; stopping the process flushes them.
    let status = dev.terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", dev.log_text());
    let spans = sink
        .wait_for(Duration::from_secs(15), |spans| {
            let has = |span_id: &str| spans.iter().any(|s| s.span_id == span_id);
            (has(&upstream_parent) && has(&fresh_parent)).then(|| spans.to_vec())
        })
        .await
        .expect("the gateway's upstream-call spans reach the receiver");

    let upstream_span = spans.iter().find(|s| s.span_id == upstream_parent).unwrap();
    assert_eq!(upstream_span.name, "upstream.request");
    assert_eq!(upstream_span.kind, "client");
    assert_eq!(upstream_span.service, "portcullis");
    assert_eq!(upstream_span.trace_id, client_trace);
    assert_eq!(upstream_span.attributes["http.response.status_code"], "200");
    let request_span = spans
        .iter()
        .find(|s| {
            s.name == "mcp.request"
                && s.trace_id == client_trace
                && s.attributes.get("rpc").map(String::as_str) == Some("tools/call")
        })
        .expect("the gateway's request span in the client's trace");
    assert_eq!(request_span.kind, "server");
    assert_eq!(
        request_span.parent_span_id, client_span,
        "the client's span is the parent of the gateway's"
    );
    assert_eq!(request_span.attributes["status"], "200");
    assert!(
        descends_from(&spans, upstream_span, &request_span.span_id),
        "the upstream call is inside the request: {spans:#?}"
    );

    let fresh_span = spans.iter().find(|s| s.span_id == fresh_parent).unwrap();
    assert_eq!(fresh_span.trace_id, fresh_trace);
    let fresh_root = spans
        .iter()
        .find(|s| s.name == "mcp.request" && s.trace_id == fresh_trace)
        .expect("the request span of the call without context");
    assert!(fresh_root.parent_span_id.is_empty(), "{fresh_root:?}");
    assert!(descends_from(&spans, fresh_span, &fresh_root.span_id));

    // Nothing secret rides along: no bearer token in any span.
    let everything = serde_json::to_string(
        &spans
            .iter()
            .map(|s| (&s.name, &s.attributes))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        !everything.contains(&seeded.token),
        "a token leaked into spans"
    );
}
