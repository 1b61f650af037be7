//! The consent flow end to end with two more real clients, as `tests/consent.rs` proves it
//! for mcp-remote: the Python SDK's `OAuthClientProvider` (`mcp` 2.3.0,
//! `tests/fixtures/peers/python_oauth_client.py`) and the MCP Inspector's CLI. Each runs
//! against `portcullis dev` (the real binary) with `server-everything` imported; headless
//! Chromium walks the consent pages (`tests/fixtures/peers/consent_browser.mjs`) from the
//! authorization URL the client asked to open to its loopback callback, and the client then
//! finishes on its own: registers, exchanges the code, lists tools and calls one.
//!
//! Per client, one human creates an account and consents at Medium, and a Medium tool works;
//! a second run (a new process, so a new registration) signs in, consents at Medium again
//! and is refused the High tool with the gateway's permission error (-32003).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use portcullis_e2e::dev_admin::DevGateway;
use serde_json::{Value, json};
use test_fixtures::clients::{
    Account, ConsentBrowser, ConsentLevel, ConsentOutcome, ConsentScript, Decision, InspectorCall,
    InspectorCli, InspectorOutcome, PythonClientMode, PythonOAuthClient, PythonOutcome, ToolAccess,
    query_param,
};
use test_fixtures::{McpPeer, free_loopback_port};

const STEP: Duration = Duration::from_secs(30);
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery";

/// `dev` with server-everything imported as "Everything": `echo` low, `get-sum` medium,
/// `get-env` high; Ada pre-authorized with a High ceiling.
async fn gateway() -> (DevGateway, McpPeer) {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = DevGateway::start(&[]).await;
    gateway
        .import(upstream.url(), "everything", "Everything")
        .await;
    gateway.set_tool("everything", "echo", "low").await;
    gateway.set_tool("everything", "get-sum", "medium").await;
    gateway.set_tool("everything", "get-env", "high").await;
    gateway.add_human(EMAIL).await;
    gateway.grant(EMAIL, "everything", "high").await;
    (gateway, upstream)
}

/// Checks the authorization request a client made, then walks the consent pages as Ada
/// (creating her account, or signing in), picking "Everything" and Medium, and accepting.
/// The browser ends at `redirect_uri` with a code; the client's callback takes it from there.
async fn consent_at_medium(
    gateway: &DevGateway,
    url: String,
    redirect_uri: &str,
    account: Account,
) -> ConsentOutcome {
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", gateway.base)),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "redirect_uri").as_deref(),
        Some(redirect_uri),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "resource").as_deref(),
        Some(gateway.mcp_url().as_str()),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256"),
        "{url}"
    );
    let script = ConsentScript {
        outbox: Some(gateway.outbox()),
        account,
        server: Some("Everything".to_owned()),
        level: ConsentLevel::Medium,
        decision: Decision::Accept,
        timeout: Duration::from_secs(40),
        ..ConsentScript::new(url, EMAIL, PASSWORD)
    };
    let outcome = ConsentBrowser::run(&script)
        .await
        .unwrap_or_else(|e| panic!("consent: {e}\n{}", gateway.process.log_text()));
    let expected_pages: &[&str] = match account {
        Account::Create => &["sign-in", "verify", "server", "trust"],
        Account::SignIn => &["sign-in", "server", "trust"],
    };
    assert_eq!(outcome.pages, expected_pages);
    assert_eq!(outcome.tools.get("echo"), Some(&ToolAccess::Allowed));
    assert_eq!(outcome.tools.get("get-sum"), Some(&ToolAccess::Allowed));
    assert_eq!(outcome.tools.get("get-env"), Some(&ToolAccess::Denied));
    assert!(
        outcome.final_url.starts_with(redirect_uri),
        "{}",
        outcome.final_url
    );
    assert!(
        outcome.redirect_param("code").is_some(),
        "{}",
        outcome.final_url
    );
    assert_eq!(
        outcome.redirect_param("iss").as_deref(),
        Some(gateway.base.as_str())
    );
    outcome
}

/// One Python client run: it registers, asks for the browser, gets consent at Medium,
/// lists the tools and calls `tool`. In the SDK's default mode (`Auto`): it probes
/// `server/discover` first, which the gateway refuses (400, an unsupported protocol
/// version), and falls back to `initialize`.
/// (Both refusals come before the gateway reads the body, so they say `Connection: close`:
/// see `a_post_refused_before_its_body_is_read_says_the_connection_closes`.)
async fn python_run(
    gateway: &DevGateway,
    tool: &str,
    arguments: Value,
    account: Account,
) -> (PythonOutcome, String) {
    let client = PythonOAuthClient::start(
        &gateway.mcp_url(),
        free_loopback_port().unwrap(),
        tool,
        &arguments,
        PythonClientMode::Auto,
    )
    .unwrap();
    let url = match client.authorization_url(STEP).await {
        Ok(url) => url,
        Err(error) => {
            // The error quotes only the tail of its output; the whole trace says which
            // request failed.
            let stderr = match client.finish(STEP).await {
                Ok(outcome) => outcome.stderr,
                Err(other) => other.to_string(),
            };
            panic!(
                "authorization URL: {error}\n--- its stderr ---\n{stderr}\n--- gateway ---\n{}",
                gateway.process.log_text()
            );
        }
    };
    let client_id = query_param(&url, "client_id").unwrap();
    consent_at_medium(gateway, url, &client.redirect_uri(), account).await;
    let outcome = client
        .finish(STEP)
        .await
        .unwrap_or_else(|e| panic!("python client: {e}\n{}", gateway.process.log_text()));
    assert_eq!(
        outcome.error,
        None,
        "{}\n--- gateway ---\n{}",
        outcome.stderr,
        gateway.process.log_text()
    );
    assert!(outcome.success, "{}", outcome.stderr);
    // tools/list is filtered to what Medium permits.
    let tools = outcome.tools.clone().unwrap();
    for permitted in ["echo", "get-sum"] {
        assert!(
            tools.iter().any(|t| t == permitted),
            "{permitted}: {tools:?}"
        );
    }
    assert!(!tools.iter().any(|t| t == "get-env"), "{tools:?}");
    (outcome, client_id)
}

/// One Inspector CLI run on its own callback port (so no process-wide lock on 6276):
/// `tools/call <call.tool>` after consent at Medium. Returns what it printed and its client id.
async fn inspector_run(
    gateway: &DevGateway,
    call: InspectorCall,
    account: Account,
) -> (InspectorOutcome, String) {
    let port = free_loopback_port().unwrap();
    let inspector = InspectorCli::start(&InspectorCall {
        callback_port: Some(port),
        ..call
    })
    .await
    .unwrap();
    assert_eq!(
        inspector.redirect_uri(),
        format!("http://127.0.0.1:{port}/oauth/callback")
    );
    let url = inspector
        .authorization_url(STEP)
        .await
        .unwrap_or_else(|e| panic!("authorization URL: {e}\n{}", gateway.process.log_text()));
    let client_id = query_param(&url, "client_id").unwrap();
    let redirect_uri = inspector.redirect_uri().to_owned();
    consent_at_medium(gateway, url, &redirect_uri, account).await;
    let outcome = inspector
        .finish(STEP)
        .await
        .unwrap_or_else(|e| panic!("inspector: {e}\n{}", gateway.process.log_text()));
    (outcome, client_id)
}

/// The host's audit records of calls to `tool`, newest first.
async fn audited_calls(gateway: &DevGateway, tool: &str) -> Vec<Value> {
    let (status, page) = gateway
        .api(
            "GET",
            &format!("/api/v1/hosts/{}/audit?tool={tool}", gateway.host),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["records"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_consents_at_medium_and_the_level_is_enforced() {
    let (gateway, _upstream) = gateway().await;

    // 1. Ada creates her account and consents at Medium; the Medium tool works.
    let (sum, first_client) = python_run(
        &gateway,
        "get-sum",
        json!({ "a": 2, "b": 3 }),
        Account::Create,
    )
    .await;
    let call = sum.call.unwrap();
    assert_eq!(call.get("error"), None, "{call}");
    assert_ne!(call["isError"], true, "{call}");
    assert!(call["content"].to_string().contains('5'), "{call}");
    assert_eq!(sum.callback.unwrap()["iss"], gateway.base.as_str());
    assert!(sum.protocol_version.is_some(), "{}", sum.stderr);

    // 2. A new process registers again; Ada signs in and consents at Medium. The High tool
    //    is refused with the JSON-RPC permission error (the script reports a JSON-RPC error
    //    as `call.error`, a tool's own failure as a result with `isError`).
    let (env, second_client) = python_run(&gateway, "get-env", json!({}), Account::SignIn).await;
    assert_ne!(first_client, second_client, "a new registration");
    let call = env.call.unwrap();
    let error = &call["error"];
    assert_eq!(error["code"], -32003, "{call}\n{}", env.stderr);
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("get-env"), "{message}");

    // The gateway audited the denial against the second agent, at Medium.
    let records = audited_calls(&gateway, "get-env").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"], "denied", "{}", records[0]);
    assert_eq!(records[0]["client_id"], second_client.as_str());
    assert_eq!(records[0]["human_email"], EMAIL);
    assert_eq!(records[0]["required_trust_level"], "high");
    assert_eq!(records[0]["granted_trust_level"], "medium");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_cli_consents_at_medium_and_the_level_is_enforced() {
    let (gateway, _upstream) = gateway().await;

    // 1. Ada creates her account and consents at Medium; echo (Low) works.
    let (echo, first_client) = inspector_run(
        &gateway,
        InspectorCall::new(gateway.mcp_url(), "echo").arg("message", "insp"),
        Account::Create,
    )
    .await;
    assert!(
        echo.success,
        "{}\n{}",
        echo.stderr,
        gateway.process.log_text()
    );
    assert_ne!(echo.json["isError"], true, "{}", echo.stdout);
    assert!(
        echo.json["content"].to_string().contains("insp"),
        "{}\n{}",
        echo.stdout,
        echo.stderr
    );
    let records = audited_calls(&gateway, "echo").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"], "allowed", "{}", records[0]);
    assert_eq!(records[0]["client_id"], first_client.as_str());

    // 2. A second run (a new registration); Ada signs in and consents at Medium again. The
    //    Inspector lists the tools before it calls one and refuses, client-side, to call a
    //    tool the list lacks; the gateway's list hides get-env at Medium, so the Inspector
    //    reports `tool_not_found` and never sends the call the gateway would deny with
    //    -32003 (nothing is audited for get-env).
    let (env, second_client) = inspector_run(
        &gateway,
        InspectorCall::new(gateway.mcp_url(), "get-env"),
        Account::SignIn,
    )
    .await;
    assert_ne!(first_client, second_client, "a new registration");
    let context = format!("stdout:\n{}\nstderr:\n{}", env.stdout, env.stderr);
    assert!(!env.success, "{context}");
    assert!(env.json.get("content").is_none(), "{context}");
    assert_eq!(env.json["error"]["code"], "tool_not_found", "{context}");
    assert_eq!(
        env.json["error"]["message"], "Tool 'get-env' not found on server.",
        "{context}"
    );
    assert!(env.stderr.contains("Authorization complete."), "{context}");
    assert_eq!(
        audited_calls(&gateway, "get-env").await,
        Vec::<Value>::new()
    );
}

/// The gateway refuses a POST on the MCP URL (401 here; also the 400 for an unsupported
/// `MCP-Protocol-Version`) before it reads the body, so the connection ends after the answer;
/// the answer must say so (`Connection: close`), or a keep-alive client sends its next
/// request on the closing connection and gets no answer (found with the Python SDK, whose
/// OAuth flow fetches the protected-resource metadata right after the 401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_refused_before_its_body_is_read_says_the_connection_closes() {
    let gateway = DevGateway::start(&[]).await;
    let addr = gateway.process.addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The headers only: the body (10 bytes, announced) is still on its way, as when a client
    // writes the two separately and the gateway is quick.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 10\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0_u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .unwrap_or(false);
    let response = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 401"), "{response}");
    assert!(response.contains("\r\nconnection: close"), "{response}");
    assert!(
        closed,
        "the gateway ends the connection it announced closing: {response}"
    );
}
