//! What a SIGKILL of a data plane loses: nothing that was forwarded.
//!
//! `portcullis dev` (the real binary) proxies a stream of concurrent `tools/call`s to an
//! upstream that records every call it receives; the process is killed with SIGKILL in the
//! middle. After a restart, every call the upstream saw has its audit record (matched by the
//! SHA-256 of the arguments), because the record is made durable before a call is forwarded.
//! Both settings of `--audit-durability` are run: `process-crash` only skips the fsync, and a
//! SIGKILL must not find the difference.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use portcullis_e2e::Process;
use portcullis_e2e::gateway::seed_dev_data_dir;
use portcullis_proto::TrustLevel;
use portcullis_store::{AuditFilter, AuditLog};
use prost::Message as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A minimal MCP upstream that records the `nonce` argument of every `tools/call`.
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
                        [("content-type", "application/json"), ("mcp-session-id", "up-1")],
                        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
                    )
                        .into_response()
                };
                match message["method"].as_str() {
                    Some("initialize") => reply(json!({
                        "protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "recorder", "version": "1"}
                    })),
                    Some("tools/list") => reply(json!({"tools": [{
                        "name": "record",
                        "description": "Records a nonce.",
                        "inputSchema": {"type": "object", "properties": {"nonce": {"type": "string"}}}
                    }]})),
                    Some("tools/call") => {
                        assert!(headers.get("authorization").is_none(), "no token upstream");
                        let nonce = message["params"]["arguments"]["nonce"].as_str().unwrap();
                        record.lock().unwrap().push(nonce.to_owned());
                        reply(json!({"content": [{"type": "text", "text": nonce}]}))
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

fn arguments(nonce: &str) -> String {
    format!(r#"{{"nonce":"{nonce}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_data_plane_loses_no_audit_record_of_a_forwarded_call() {
    sigkill_with_calls_in_flight(&[]).await;
}

/// The relaxed durability still survives the process: the records are in the WAL file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_data_plane_loses_nothing_forwarded_with_process_crash_durability() {
    sigkill_with_calls_in_flight(&["--audit-durability", "process-crash"]).await;
}

/// Runs `dev` (with `flags`) under eight calling clients, SIGKILLs it, restarts it on the
/// same data and checks that every call the upstream received has its audit record.
async fn sigkill_with_calls_in_flight(flags: &[&str]) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listen = portcullis_e2e::free_addr();
    let seeded = seed_dev_data_dir(&data, listen, &upstream, "recorder", TrustLevel::Low).await;
    let data_arg = data.to_str().unwrap();
    let args: Vec<&str> = ["dev", "--data-dir", data_arg]
        .into_iter()
        .chain(flags.iter().copied())
        .collect();
    let mut dev = Process::start_at(&args, dir.path(), listen);
    dev.wait_ready(Duration::from_secs(30));

    // Eight clients, each with its own MCP session, calling as fast as they can.
    let url = format!("http://{listen}/mcp");
    let mut clients = Vec::new();
    for worker in 0..8 {
        let url = url.clone();
        let token = seeded.token.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let post = |session: Option<String>, body: String| {
                let mut request = http
                    .post(&url)
                    .header("authorization", format!("Bearer {token}"))
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(session) = session {
                    request = request.header("mcp-session-id", session);
                }
                request.send()
            };
            let init = post(None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"w","version":"1"}}}).to_string())
                .await
                .unwrap();
            let session = init.headers()["mcp-session-id"].to_str().unwrap().to_owned();
            let mut answered = 0u32;
            for call in 1.. {
                let nonce = format!("w{worker}-c{call}");
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{call},"method":"tools/call","params":{{"name":"record","arguments":{}}}}}"#,
                    arguments(&nonce)
                );
                match post(Some(session.clone()), body).await {
                    Ok(response) if response.status().is_success() => answered += 1,
                    _ => break,
                }
            }
            answered
        }));
    }
    // Kill it while calls are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 400 {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls did not flow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dev.kill();
    let mut answered = 0;
    for client in clients {
        answered += client.await.unwrap();
    }
    let forwarded: Vec<String> = seen.lock().unwrap().clone();

    // Restart on the same data and address: it comes back, then stop it and read its audit.
    let mut again = Process::start_at(&args, dir.path(), listen);
    again.wait_ready(Duration::from_secs(30));
    let status = again.terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", again.log_text());
    let store = portcullis_store_sqlite::SqliteStore::open(&data.join("portcullis.db")).unwrap();
    let mut audited = HashSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(AuditFilter::host(&seeded.host_id), 500, cursor)
            .await
            .unwrap();
        for record in &page.records {
            let decoded =
                portcullis_proto::audit::v1::AuditRecord::decode(record.entry.record.clone())
                    .unwrap();
            audited.insert(decoded.arguments_sha256);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let lost: Vec<&String> = forwarded
        .iter()
        .filter(|nonce| !audited.contains(Sha256::digest(arguments(nonce)).as_slice()))
        .collect();
    eprintln!(
        "SIGKILL with calls in flight ({flags:?}): {} forwarded, {} answered, {} audit records, {} forwarded without a record",
        forwarded.len(),
        answered,
        audited.len(),
        lost.len()
    );
    assert!(forwarded.len() >= 400);
    assert!(
        lost.is_empty(),
        "forwarded without an audit record: {lost:?}"
    );
    assert!(audited.len() >= forwarded.len());
}
