//! The MCP proxy end to end: real data-plane replicas on loopback in front of the real
//! `@modelcontextprotocol/server-everything`, driven over HTTP as an MCP client would.
//!
//! Proves: 401 + RFC 9728 metadata, `invalid_token` for foreign or dead tokens, the transport
//! rules (Accept, versions, batches, malformed JSON, Origin, sizes, session handles), the
//! trust rule on `tools/call` for every combination through the gateway, audit before the
//! call, list filtering, disabled tools, host isolation, and revocation reaching two replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::time::{Duration, Instant};

use portcullis_commands::control::HostSettingsPatch;
use portcullis_e2e::gateway::{Gateway, now_seconds};
use portcullis_projector::models::ToolVisibility;
use portcullis_proto::TrustLevel;
use portcullis_store::{AuditDecision, AuditFilter};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_fixtures::McpPeer;

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A plain-HTTP client (the workspace's reqwest brings no TLS provider of its own).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// One MCP client session over raw HTTP.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
    next_id: u64,
}

/// An HTTP answer: status, headers and the JSON-RPC message (the last one of an SSE stream).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    message: Value,
}

async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let message = if sse {
        text.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter(|data| !data.is_empty())
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(Value::Null)
    } else if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        message,
    }
}

impl Client {
    fn new(url: &str, token: &str) -> Self {
        Self {
            http: http_client(),
            url: url.to_owned(),
            token: token.to_owned(),
            session: None,
            next_id: 1,
        }
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("authorization", format!("Bearer {}", self.token))
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        request
    }

    async fn post(&self, body: Value) -> Answer {
        read_answer(
            self.request(reqwest::Method::POST)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn rpc(&mut self, method: &str, params: Value) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    async fn initialize(&mut self) -> Answer {
        let answer = self
            .rpc(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "e2e", "version": "1"}
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        self.session = Some(
            answer
                .headers
                .get("mcp-session-id")
                .expect("a session handle")
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let initialized = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status, StatusCode::ACCEPTED, "{initialized:?}");
        answer
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Answer {
        self.rpc("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let answer = self.rpc("tools/list", json!({})).await;
        let mut names: Vec<String> = answer.message["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {answer:?}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

fn denied_reason(answer: &Answer) -> Option<String> {
    (answer.message["error"]["code"] == -32003).then(|| {
        answer.message["error"]["data"]["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    })
}

fn allowed(answer: &Answer) -> bool {
    answer.status == StatusCode::OK && answer.message.get("result").is_some()
}

/// The gateway with server-everything imported as `everything`: `echo` low, `get-sum` medium,
/// `get-env` high.
async fn setup() -> (Gateway, McpPeer, String) {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = Gateway::start().await;
    let server = gateway.import(upstream.url(), "everything").await;
    gateway
        .set_tool(&server.server_id, "get-sum", Some(TrustLevel::Medium), None)
        .await;
    gateway
        .set_tool(&server.server_id, "get-env", Some(TrustLevel::High), None)
        .await;
    (gateway, upstream, server.server_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_client_is_sent_to_the_protected_resource_metadata() {
    let (gateway, _upstream, _server) = setup().await;
    let http = http_client();
    let base = gateway.primary.url();
    for path in ["/mcp", "/mcp/everything"] {
        let response = http
            .post(format!("{base}{path}"))
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let prm = format!("{base}/.well-known/oauth-protected-resource{path}");
        assert_eq!(challenge, format!("Bearer resource_metadata=\"{prm}\""));
        let document: Value = http.get(&prm).send().await.unwrap().json().await.unwrap();
        assert_eq!(document["resource"], format!("{base}{path}"));
        assert_eq!(document["authorization_servers"], json!([base]));
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    }
    let root: Value = http
        .get(format!("{base}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["resource"], format!("{base}/mcp"));
    let unknown = http
        .get(format!(
            "{base}/.well-known/oauth-protected-resource/mcp/nope"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_forged_expired_and_revoked_tokens_get_invalid_token() {
    let (gateway, _upstream, server) = setup().await;
    let human = gateway.add_human("ada@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let good = gateway.connect(&human, &server, TrustLevel::High).await;
    let mut client = Client::new(&gateway.mcp_url(), &good.token);
    client.initialize().await;

    let expired = gateway
        .control
        .test_access_token(
            &gateway.ring,
            &gateway.host_id,
            &good.session_id,
            &gateway.primary.url(),
            &gateway.mcp_url(),
            now_seconds() - 3600,
            60,
        )
        .await
        .unwrap();
    let other_resource = gateway
        .token(&good.session_id, "https://elsewhere.example/mcp", 600)
        .await;
    let wrong_issuer = gateway
        .control
        .test_access_token(
            &gateway.ring,
            &gateway.host_id,
            &good.session_id,
            "http://evil.example",
            &gateway.mcp_url(),
            now_seconds(),
            600,
        )
        .await
        .unwrap();
    let mut tampered = good.token.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (what, token) in [
        ("expired", expired.as_str()),
        ("another resource", other_resource.as_str()),
        ("another issuer", wrong_issuer.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "not-a-jwt"),
    ] {
        let answer = Client::new(&gateway.mcp_url(), token)
            .rpc("ping", json!({}))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {answer:?}"
        );
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(
            challenge.contains("resource_metadata="),
            "{what}: {challenge}"
        );
    }

    // Another host: its own keys; a token of one host is useless on the other.
    let other = gateway
        .control
        .create_host(
            &gateway.admin,
            &portcullis_commands::Context::system("e2e", "h2"),
            None,
            portcullis_commands::control::CreateHost {
                org_id: None,
                prefix: "other".to_owned(),
                settings: None,
            },
        )
        .await
        .unwrap();
    let other_host_url = format!(
        "http://{}.localhost:{}/mcp",
        other.host_id,
        gateway.primary.addr.port()
    );
    let answer = gateway_post_with_host(&gateway, &other.host_id, &good.token).await;
    assert_eq!(
        answer,
        StatusCode::UNAUTHORIZED,
        "host A's token on host B ({other_host_url})"
    );

    // The agent revoked from the server: its session dies, the client must re-consent.
    gateway
        .control
        .revoke_agent_server(
            &gateway.admin,
            &portcullis_commands::Context::system("e2e", "revoke"),
            None,
            &gateway.host_id,
            &good.agent_id,
            &server,
        )
        .await
        .unwrap();
    let answer = client.rpc("ping", json!({})).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(
        answer.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

/// POSTs a ping to `host_id`'s MCP endpoint on the primary replica (by Host header).
async fn gateway_post_with_host(gateway: &Gateway, host_id: &str, token: &str) -> StatusCode {
    http_client()
        .post(gateway.mcp_url())
        .header(
            "host",
            format!("{host_id}.localhost:{}", gateway.primary.addr.port()),
        )
        .header("authorization", format!("Bearer {token}"))
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lists_calls_is_audited_and_ends() {
    let (gateway, _upstream, server) = setup().await;
    let human = gateway.add_human("grace@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let connection = gateway.connect(&human, &server, TrustLevel::Medium).await;
    let mut client = Client::new(&gateway.mcp_url(), &connection.token);
    let init = client.initialize().await;
    assert_eq!(init.message["result"]["protocolVersion"], "2025-11-25");
    let handle = client.session.clone().unwrap();
    assert!(handle.starts_with("pcs1."), "{handle}");
    assert!(handle.len() < 600);

    // Medium: echo (low) and get-sum (medium) are listed, get-env (high) is not.
    let names = client.tool_names().await;
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(names.contains(&"get-sum".to_owned()), "{names:?}");
    assert!(!names.contains(&"get-env".to_owned()), "{names:?}");

    let echo = client
        .call("echo", json!({"message": "through the gate"}))
        .await;
    assert!(allowed(&echo), "{echo:?}");
    assert!(echo.message.to_string().contains("through the gate"));
    let sum = client.call("get-sum", json!({"a": 2, "b": 3})).await;
    assert!(allowed(&sum), "{sum:?}");

    let env = client.call("get-env", json!({})).await;
    assert_eq!(
        denied_reason(&env).as_deref(),
        Some("insufficient_trust"),
        "{env:?}"
    );
    let error = &env.message["error"];
    assert_eq!(error["data"]["required_trust"], "high");
    assert_eq!(error["data"]["granted_trust"], "medium");
    assert_eq!(error["data"]["tool"], "get-env");
    let text = error["message"].as_str().unwrap();
    assert!(
        text.contains("get-env") && text.contains("high") && text.contains("medium"),
        "{text}"
    );
    assert!(text.contains("Reconnect and choose high"), "{text}");

    let unknown = client.call("no-such-tool", json!({})).await;
    assert_eq!(denied_reason(&unknown).as_deref(), Some("unknown_tool"));

    // Every decision was durable before the answer: four records, newest first.
    let page = gateway
        .audit()
        .query(AuditFilter::host(&gateway.host_id), 10, None)
        .await
        .unwrap();
    let decisions: Vec<(String, AuditDecision)> = page
        .records
        .iter()
        .map(|r| (r.entry.tool.clone(), r.entry.decision))
        .collect();
    assert_eq!(
        decisions,
        vec![
            ("no-such-tool".to_owned(), AuditDecision::Denied),
            ("get-env".to_owned(), AuditDecision::Denied),
            ("get-sum".to_owned(), AuditDecision::Allowed),
            ("echo".to_owned(), AuditDecision::Allowed),
        ]
    );
    assert!(page.records.iter().all(|r| r.entry.human_id == human
        && r.entry.agent_id == connection.agent_id
        && r.entry.server_id == server));

    // DELETE ends the upstream session; the handle is then gone.
    let deleted = client
        .request(reqwest::Method::DELETE)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let after = client.call("echo", json!({"message": "x"})).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_rules_are_enforced_with_typed_errors() {
    let (gateway, _upstream, server) = setup().await;
    let human = gateway.add_human("linus@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let a = gateway.connect(&human, &server, TrustLevel::Low).await;
    let b = gateway.connect(&human, &server, TrustLevel::Low).await;
    let mut client = Client::new(&gateway.mcp_url(), &a.token);
    client.initialize().await;
    let raw = |body: &'static str| {
        client
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .body(body)
    };
    for (body, status, code) in [
        ("{not json", StatusCode::BAD_REQUEST, -32700),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (r#"{"id":1}"#, StatusCode::BAD_REQUEST, -32600),
    ] {
        let answer = read_answer(raw(body).send().await.unwrap()).await;
        assert_eq!(answer.status, status, "{body}");
        assert_eq!(answer.message["error"]["code"], code, "{body}");
    }
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let answer = read_answer(
        client
            .request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .body(deep)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(5 << 20)
    );
    let answer = client
        .request(reqwest::Method::POST)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let only_json = http_client()
        .post(gateway.mcp_url())
        .header("authorization", format!("Bearer {}", a.token))
        .header("mcp-session-id", client.session.clone().unwrap())
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(only_json.status(), StatusCode::NOT_ACCEPTABLE);
    let oversized_headers = client
        .request(reqwest::Method::POST)
        .header("x-padding", "p".repeat(40 * 1024))
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        oversized_headers.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let twice = client
        .request(reqwest::Method::POST)
        .header("mcp-protocol-version", "2025-06-18")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    let bad_version = http_client()
        .post(gateway.mcp_url())
        .header("authorization", format!("Bearer {}", a.token))
        .header("mcp-session-id", client.session.clone().unwrap())
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", "1999-01-01")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), StatusCode::BAD_REQUEST);
    let evil_origin = client
        .request(reqwest::Method::POST)
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(evil_origin.status(), StatusCode::FORBIDDEN);
    let misdirected = client
        .request(reqwest::Method::POST)
        .header("host", "evil.example")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert!(
        misdirected.status().is_client_error(),
        "{}",
        misdirected.status()
    );

    // Session handles: required, unforgeable, bound to their consent session.
    let mut no_session = Client::new(&gateway.mcp_url(), &a.token);
    assert_eq!(
        no_session.rpc("ping", json!({})).await.status,
        StatusCode::BAD_REQUEST
    );
    no_session.session = Some("pcs1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned());
    assert_eq!(
        no_session.rpc("ping", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let mut stolen = Client::new(&gateway.mcp_url(), &b.token);
    stolen.session = client.session.clone();
    assert_eq!(
        stolen.rpc("ping", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(allowed(&client.rpc("ping", json!({})).await));

    // A token for this server at another server's path: 403.
    let other = gateway.import(_upstream.url(), "everything-2").await;
    let mut elsewhere = Client::new(
        &format!("{}/mcp/{}", gateway.primary.url(), other.key),
        &a.token,
    );
    let answer = elsewhere.rpc("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}})).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    let mut right_path = Client::new(
        &format!("{}/mcp/everything", gateway.primary.url()),
        &a.token,
    );
    right_path.initialize().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_combination_of_consent_grant_and_cap_is_enforced_through_the_gateway() {
    let (gateway, _upstream, server) = setup().await;
    let tools = [
        (TrustLevel::Low, "echo", json!({"message": "m"})),
        (TrustLevel::Medium, "get-sum", json!({"a": 1, "b": 2})),
        (TrustLevel::High, "get-env", json!({})),
    ];
    let mut checked = 0;
    for (index, ceiling) in TrustLevel::ALL.into_iter().enumerate() {
        let human = gateway.add_human(&format!("h{index}@example.com")).await;
        gateway.grant(&human, &server, ceiling).await;
        for consented in TrustLevel::ALL {
            for cap in [None, Some(TrustLevel::Low), Some(TrustLevel::Medium)] {
                let connection = gateway.connect(&human, &server, consented).await;
                if let Some(cap) = cap {
                    gateway
                        .control
                        .put_agent_cap(
                            &gateway.admin,
                            &portcullis_commands::Context::system("e2e", "cap"),
                            None,
                            &gateway.host_id,
                            &connection.agent_id,
                            &server,
                            cap,
                        )
                        .await
                        .unwrap();
                }
                let effective = [Some(consented), Some(ceiling), cap]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap();
                let mut client = Client::new(&gateway.mcp_url(), &connection.token);
                client.initialize().await;
                for (required, tool, arguments) in &tools {
                    let answer = client.call(tool, arguments.clone()).await;
                    if *required <= effective {
                        assert!(
                            allowed(&answer),
                            "{consented:?}/{ceiling:?}/{cap:?} {tool}: {answer:?}"
                        );
                    } else {
                        assert_eq!(
                            denied_reason(&answer).as_deref(),
                            Some("insufficient_trust"),
                            "{consented:?}/{ceiling:?}/{cap:?} {tool}: {answer:?}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 3 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_tools_visibility_and_revocation_reach_two_replicas() {
    let (gateway, _upstream, server) = setup().await;
    let second = gateway.start_replica().await;
    let human = gateway.add_human("barbara@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let connection = gateway.connect(&human, &server, TrustLevel::High).await;
    let mut first = Client::new(&gateway.mcp_url(), &connection.token);
    first.initialize().await;
    // The same MCP session continues on the other replica (stateless handles).
    let mut other = Client::new(&format!("{}/mcp", second.url()), &connection.token);
    other.session = first.session.clone();
    assert!(allowed(
        &other.call("echo", json!({"message": "hop"})).await
    ));

    gateway.set_tool(&server, "echo", None, Some(false)).await;
    for client in [&mut first, &mut other] {
        let answer = client.call("echo", json!({"message": "x"})).await;
        assert_eq!(
            denied_reason(&answer).as_deref(),
            Some("tool_disabled"),
            "{answer:?}"
        );
        assert!(!client.tool_names().await.contains(&"echo".to_owned()));
    }

    // Visibility "all": every enabled tool is listed, calls are still decided one by one.
    let low = gateway.connect(&human, &server, TrustLevel::Low).await;
    let mut low_client = Client::new(&gateway.mcp_url(), &low.token);
    low_client.initialize().await;
    assert!(
        !low_client
            .tool_names()
            .await
            .contains(&"get-env".to_owned())
    );
    gateway
        .control
        .update_host_settings(
            &gateway.admin,
            &portcullis_commands::Context::system("e2e", "vis"),
            None,
            &gateway.host_id,
            HostSettingsPatch {
                tool_visibility: Some(ToolVisibility::All),
                ..HostSettingsPatch::default()
            },
        )
        .await
        .unwrap();
    let names = low_client.tool_names().await;
    assert!(
        names.contains(&"get-env".to_owned()) && !names.contains(&"echo".to_owned()),
        "{names:?}"
    );
    assert_eq!(
        denied_reason(&low_client.call("get-env", json!({})).await).as_deref(),
        Some("insufficient_trust")
    );

    // Revoking the grant: both replicas deny within the watch's staleness.
    assert!(allowed(
        &first.call("get-sum", json!({"a": 1, "b": 1})).await
    ));
    let revoked_at = Instant::now();
    gateway.revoke_grant(&human, &server).await;
    for client in [&mut first, &mut other] {
        loop {
            let answer = client.call("get-sum", json!({"a": 1, "b": 1})).await;
            if denied_reason(&answer).as_deref() == Some("no_grant") {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(2),
                "still allowed: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(first.tool_names().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_elicitation_roots_and_progress_work_with_answers_on_another_replica() {
    let (gateway, _upstream, server) = setup().await;
    let second = gateway.start_replica().await;
    let human = gateway.add_human("katherine@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let connection = gateway.connect(&human, &server, TrustLevel::Medium).await;
    let output = portcullis_e2e::sdk_client::run(
        &gateway.mcp_url(),
        &connection.token,
        &format!("{}/mcp", second.url()),
    )
    .await;
    assert!(output.get("error").is_none(), "{output:#}");
    let tools: Vec<&str> = output["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tool in [
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "get-roots-list",
    ] {
        assert!(tools.contains(&tool), "{tool} listed: {output:#}");
    }
    assert!(!tools.contains(&"get-env"), "{output:#}");
    let sampling = output["sampling"].as_str().unwrap();
    assert!(
        sampling.contains("e2e-model") && sampling.contains("hello gateway"),
        "{output:#}"
    );
    let elicitation = output["elicitation"].as_str().unwrap();
    assert!(
        elicitation.contains("accept") && elicitation.contains("Ada Lovelace"),
        "{output:#}"
    );
    let roots = output["roots"].as_str().unwrap();
    assert!(
        roots.contains("file:///srv/portcullis-e2e-root"),
        "{output:#}"
    );
    assert!(output["progress"].as_u64().unwrap() >= 3, "{output:#}");
    assert_eq!(output["denied"]["code"], -32003, "{output:#}");
    // Every answer to a server request went to the second replica, none to the first.
    let counts = &output["counts"];
    assert!(
        counts["answersToSecond"].as_u64().unwrap() >= 3,
        "{output:#}"
    );
    assert_eq!(counts["answersToFirst"], 0, "{output:#}");
    let asked: Vec<&str> = counts["serverRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
        assert!(asked.contains(&method), "{method}: {output:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_the_client_did_not_declare_is_not_relayed() {
    let (gateway, _upstream, server) = setup().await;
    let human = gateway.add_human("alan@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let connection = gateway.connect(&human, &server, TrustLevel::High).await;
    // A client that declares nothing: server-everything hides its capability tools from it,
    // but the gateway's catalog has them (discovery declares every capability). Calling one
    // makes the upstream ask for sampling, which the gateway must answer with an error itself.
    let mut client = Client::new(&gateway.mcp_url(), &connection.token);
    client.initialize().await;
    let answer = client
        .call(
            "trigger-sampling-request",
            json!({"prompt": "p", "maxTokens": 5}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let text = answer.message.to_string();
    assert!(!text.contains("sampling/createMessage"), "relayed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_a_clear_error_not_a_hang_and_metrics_count_everything() {
    let (gateway, upstream, server) = setup().await;
    let human = gateway.add_human("edsger@example.com").await;
    gateway.grant(&human, &server, TrustLevel::High).await;
    let connection = gateway.connect(&human, &server, TrustLevel::Low).await;
    let mut client = Client::new(&gateway.mcp_url(), &connection.token);
    client.initialize().await;
    assert!(allowed(&client.call("echo", json!({"message": "m"})).await));
    assert!(denied_reason(&client.call("get-env", json!({})).await).is_some());

    drop(upstream);
    let started = Instant::now();
    let answer = client.call("echo", json!({"message": "m"})).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.message["error"]["code"], -32010, "{answer:?}");
    let message = answer.message["error"]["message"].as_str().unwrap();
    assert!(message.contains("`everything`"), "{message}");
    assert_eq!(answer.message["error"]["data"]["server"], "everything");

    let metrics = gateway.primary.proxy.metrics_text();
    for line in [
        "portcullis_mcp_decisions_total{decision=\"allowed\",reason=\"allowed\"}",
        "portcullis_mcp_decisions_total{decision=\"denied\",reason=\"insufficient_trust\"}",
        "portcullis_mcp_requests_total{method=\"POST\",rpc=\"tools/call\",status=\"200\"}",
        "portcullis_mcp_upstream_failures_total{kind=\"connect\"} 1",
        "portcullis_mcp_token_cache_total{result=\"hit\"}",
        "portcullis_mcp_decision_seconds_bucket",
        "portcullis_read_model_fresh 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}
