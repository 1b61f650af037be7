//! The MCP conformance suite (`@modelcontextprotocol/conformance` 0.1.16, server mode, every
//! scenario) against the fixture upstream `conformance-upstream` directly: the baseline that a
//! run through the gateway is held to. And the `BearerShim` that lets the suite, which sends
//! no token, reach the gateway: it must stream SSE event by event and change nothing but
//! `Authorization`.
//!
//! Needs Node 22 and the suite (`source scripts/lib/tools.sh; ensure_conformance`) and the
//! fixture binary (`cargo build -p conformance-upstream`; `scripts/test` does both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::time::{Duration, Instant};

use test_fixtures::{BearerShim, ConformanceSuite, ConformanceUpstream};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Server scenarios in conformance 0.1.16 (`conformance list --server`), pending ones included.
const SERVER_SCENARIOS: usize = 32;
/// How long one read through the shim may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_passes_the_server_suite_directly() {
    let upstream = ConformanceUpstream::start().await.unwrap();
    let started = Instant::now();
    let outcome = ConformanceSuite::new(upstream.url()).run().await.unwrap();
    let report = format!(
        "{outcome}--- fixture log ---\n{}\n(the suite took {:?})",
        upstream.log(),
        started.elapsed()
    );

    assert!(outcome.status.success(), "{report}");
    let (passed, failed) = outcome.totals.expect("a closing `Total:` line");
    assert!(passed >= 30, "only {passed} checks passed\n{report}");
    assert_eq!(failed, 0, "{report}");
    assert_eq!(outcome.scenarios.len(), SERVER_SCENARIOS, "{report}");
    assert!(outcome.failed_scenarios().is_empty(), "{report}");
    // No warnings either: `server-sse-polling` warns when a closed stream cannot be resumed,
    // and the fixture implements SEP-1699 fully.
    let (checks_passed, _, warnings) = outcome.check_counts();
    assert_eq!(
        checks_passed, passed,
        "checks.json files and the summary agree\n{report}"
    );
    assert_eq!(warnings, 0, "{report}");
    // Priming event, retry field, and resuming the stream `test_reconnection` closed; a tool
    // that answered without closing its stream would score 2 (plus an INFO check).
    let polling = outcome
        .scenarios
        .iter()
        .find(|s| s.name == "server-sse-polling")
        .expect("the SSE polling scenario ran");
    assert_eq!(polling.passed, 3, "{report}");
}

#[tokio::test]
async fn the_fixture_upstream_exits_cleanly_on_sigterm_and_stops_listening() {
    let mut upstream = ConformanceUpstream::start().await.unwrap();
    let url = upstream.url().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert!(TcpStream::connect(upstream.address()).await.is_ok());
    let status = upstream.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}\n{}", upstream.log());
    assert!(TcpStream::connect(upstream.address()).await.is_err());
}

#[tokio::test]
async fn the_bearer_shim_streams_sse_event_by_event_and_changes_only_authorization() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_address = target.local_addr().unwrap();
    let (head_sender, head) = oneshot::channel();
    let (go_sender, go) = oneshot::channel::<()>();
    // The target: records the request head, sends one event, and the second only when the
    // test says so.
    tokio::spawn(async move {
        let (mut socket, _) = target.accept().await.unwrap();
        let (request_head, _) = read_head(&mut socket).await;
        head_sender.send(request_head).unwrap();
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n",
            )
            .await
            .unwrap();
        write_chunk(&mut socket, b"id: 1\ndata: first\n\n").await;
        go.await.unwrap();
        write_chunk(&mut socket, b"id: 2\ndata: second\n\n").await;
        socket.write_all(b"0\r\n\r\n").await.unwrap();
    });
    let shim = BearerShim::start(target_address, "token-123".to_owned())
        .await
        .unwrap();

    let mut client = TcpStream::connect(shim.address()).await.unwrap();
    client
        .write_all(
            b"GET /mcp?probe=1 HTTP/1.1\r\nHost: gateway.example:8443\r\n\
              Origin: http://evil.example\r\nAuthorization: Basic c2VjcmV0\r\n\
              Accept: text/event-stream\r\nMcp-Session-Id: session-1\r\n\r\n",
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    read_until(&mut client, &mut received, "data: first").await;
    assert!(
        !String::from_utf8_lossy(&received).contains("data: second"),
        "the target has not sent the second event yet"
    );
    go_sender.send(()).unwrap();
    read_until(&mut client, &mut received, "data: second").await;

    let request_head = head.await.unwrap();
    assert!(
        request_head.starts_with("GET /mcp?probe=1 HTTP/1.1\r\n"),
        "{request_head}"
    );
    for (name, value) in [
        ("host", "gateway.example:8443"),
        ("origin", "http://evil.example"),
        ("accept", "text/event-stream"),
        ("mcp-session-id", "session-1"),
        ("authorization", "Bearer token-123"),
    ] {
        assert_eq!(
            header_values(&request_head, name),
            [value],
            "{name} in\n{request_head}"
        );
    }
}

#[tokio::test]
async fn the_bearer_shim_streams_a_request_body_as_it_arrives_and_adds_a_missing_token() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_address = target.local_addr().unwrap();
    let (first_part_sender, first_part) = oneshot::channel();
    let (head_sender, head) = oneshot::channel();
    // The target: answers once the whole body is in, after reporting its first part.
    tokio::spawn(async move {
        let (mut socket, _) = target.accept().await.unwrap();
        let (request_head, mut body) = read_head(&mut socket).await;
        head_sender.send(request_head).unwrap();
        read_until(&mut socket, &mut body, "first-part").await;
        first_part_sender.send(()).unwrap();
        read_until(&mut socket, &mut body, "second-part").await;
        socket
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let shim = BearerShim::start(target_address, "token-456".to_owned())
        .await
        .unwrap();

    let mut client = TcpStream::connect(shim.address()).await.unwrap();
    let host = format!("Host: {}\r\n", shim.address());
    client
        .write_all(
            format!(
                "POST /mcp HTTP/1.1\r\n{host}Content-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    write_chunk(&mut client, b"{\"first-part\":").await;
    tokio::time::timeout(READ_TIMEOUT, first_part)
        .await
        .expect("the first part reaches the target before the rest is sent")
        .unwrap();
    write_chunk(&mut client, b"\"second-part\"}").await;
    client.write_all(b"0\r\n\r\n").await.unwrap();
    let mut received = Vec::new();
    read_until(&mut client, &mut received, "202 Accepted").await;

    let request_head = head.await.unwrap();
    assert_eq!(
        header_values(&request_head, "authorization"),
        ["Bearer token-456"]
    );
    assert_eq!(
        header_values(&request_head, "host"),
        [shim.address().to_string()]
    );
}

/// Reads an HTTP/1.1 head (up to the blank line); returns it and any body bytes read with it.
async fn read_head(socket: &mut TcpStream) -> (String, Vec<u8>) {
    let mut received = Vec::new();
    read_until(socket, &mut received, "\r\n\r\n").await;
    let end = find(&received, "\r\n\r\n").unwrap() + 4;
    let body = received.split_off(end);
    (String::from_utf8(received).unwrap(), body)
}

/// Reads from `socket` into `received` until it contains `needle`; fails after
/// `READ_TIMEOUT`.
async fn read_until(socket: &mut TcpStream, received: &mut Vec<u8>, needle: &str) {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    let mut buffer = [0; 4096];
    while find(received, needle).is_none() {
        let read = tokio::time::timeout_at(deadline, socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{needle:?} did not arrive within {READ_TIMEOUT:?}; got {:?}",
                    String::from_utf8_lossy(received)
                )
            })
            .unwrap();
        assert!(
            read > 0,
            "connection closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
}

/// Writes `data` as one chunk of a chunked HTTP/1.1 body.
async fn write_chunk(socket: &mut TcpStream, data: &[u8]) {
    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    socket.write_all(&chunk).await.unwrap();
    socket.flush().await.unwrap();
}

fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
}

/// The values of header `name` (any case) in an HTTP/1.1 head.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(header, _)| header.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().to_owned())
        .collect()
}

/// The same suite through the gateway: shim (adds a valid bearer) → a data-plane replica →
/// the fixture upstream, imported and granted at High so every fixture tool may be called.
/// Every scenario must pass, or be listed in `conformance/expected-failures.yml` with the
/// reason it cannot pass through a proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_through_the_gateway() {
    use portcullis_e2e::gateway::Gateway;
    use portcullis_proto::TrustLevel;

    let upstream = ConformanceUpstream::start().await.unwrap();
    let gateway = Gateway::start().await;
    let server = gateway.import(upstream.url(), "conformance").await;
    let human = gateway.add_human("conformance@example.com").await;
    gateway
        .grant(&human, &server.server_id, TrustLevel::High)
        .await;
    let connection = gateway
        .connect(&human, &server.server_id, TrustLevel::High)
        .await;
    let shim = BearerShim::start(gateway.primary.addr, connection.token.clone())
        .await
        .unwrap();
    let expected = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance")
        .join("expected-failures.yml");
    let mut suite = ConformanceSuite::new(format!("http://{}/mcp", shim.address()));
    if expected.exists() {
        suite = suite.expected_failures(&expected);
    }
    let started = Instant::now();
    let outcome = suite.run().await.unwrap();
    let report = format!(
        "{outcome}--- fixture log ---\n{}\n(the suite took {:?})",
        upstream.log(),
        started.elapsed()
    );
    assert!(outcome.status.success(), "{report}");
    assert_eq!(outcome.scenarios.len(), SERVER_SCENARIOS, "{report}");
    let (passed, failed) = outcome.totals.expect("a closing `Total:` line");
    assert!(passed >= 30, "only {passed} checks passed\n{report}");
    assert_eq!(failed, 0, "{report}");
    // Resuming a closed stream through the gateway works too (sealed event ids).
    let (_, _, warnings) = outcome.check_counts();
    assert_eq!(warnings, 0, "{report}");
    let polling = outcome
        .scenarios
        .iter()
        .find(|s| s.name == "server-sse-polling")
        .expect("the SSE polling scenario ran");
    assert_eq!(polling.passed, 3, "{report}");
    eprintln!("through the gateway: {passed} checks passed, {failed} failed, {warnings} warnings");
    // Every tools/call the suite made went through policy and was audited.
    let page = gateway
        .audit()
        .query(
            portcullis_store::AuditFilter::host(&gateway.host_id),
            100,
            None,
        )
        .await
        .unwrap();
    assert!(
        page.records.len() >= 10,
        "{} audit records",
        page.records.len()
    );
}
