//! The consent flow end to end with real clients: `portcullis dev` (the real binary, its mail
//! in `<data-dir>/outbox`), `server-everything` imported by the admin API, `mcp-remote` as
//! the MCP client (dynamic registration, PKCE, `resource`), and headless Chromium driven by
//! playwright-core through the consent pages by their accessible names
//! (`tests/fixtures/peers/consent_browser.mjs`).
//!
//! One human signs up, proves the email with the mailed code, picks the server and Medium;
//! the chosen level is enforced on every call; reconnecting with High allows more; the
//! admin lowering the grant denies it again; an admin revoking the agent makes the client
//! run consent again on its next start, and so does a session that expired.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::time::Duration;

use portcullis_e2e::dev_admin::DevGateway;
use serde_json::{Value, json};
use test_fixtures::clients::{
    Account, ClientError, ConsentBrowser, ConsentLevel, ConsentOutcome, ConsentScript, Decision,
    McpRemote, ToolAccess, query_param,
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

/// Starts mcp-remote, walks the browser with `script`, and returns the initialized client.
async fn connect(
    gateway: &DevGateway,
    config: &std::path::Path,
    script: impl FnOnce(String) -> ConsentScript,
) -> (McpRemote, ConsentOutcome) {
    let remote = McpRemote::start(
        &gateway.mcp_url(),
        free_loopback_port().unwrap(),
        config,
        &["--auth-timeout", "90"],
    )
    .unwrap();
    let initialize = remote.send_initialize().unwrap();
    let url = remote.authorization_url(STEP).await.unwrap();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", gateway.base)),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "resource").as_deref(),
        Some(gateway.mcp_url().as_str())
    );
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let outcome = ConsentBrowser::run(&script(url))
        .await
        .unwrap_or_else(|e| panic!("consent: {e}\n{}", gateway.process.log_text()));
    let initialized = remote
        .finish_initialize(initialize, STEP)
        .await
        .unwrap_or_else(|e| panic!("initialize: {e}\n{}", remote.stderr()));
    assert!(initialized["serverInfo"].is_object(), "{initialized}");
    (remote, outcome)
}

async fn call(remote: &McpRemote, tool: &str, arguments: Value) -> Result<Value, Value> {
    match remote
        .request(
            "tools/call",
            json!({ "name": tool, "arguments": arguments }),
            STEP,
        )
        .await
    {
        Ok(result) => Ok(result),
        Err(ClientError::JsonRpc { error, .. }) => Err(error),
        Err(other) => panic!("tools/call {tool}: {other}\n{}", remote.stderr()),
    }
}

fn assert_denied(result: Result<Value, Value>, tool: &str, granted: &str) {
    let error = result.expect_err("the call must be denied");
    assert_eq!(error["code"], -32003, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(tool), "{message}");
    assert_eq!(error["data"]["required_trust"], "high", "{error}");
    assert_eq!(error["data"]["granted_trust"], granted, "{error}");
}

fn level(script: ConsentScript, level: ConsentLevel, account: Account) -> ConsentScript {
    ConsentScript {
        level,
        account,
        server: Some("Everything".to_owned()),
        decision: Decision::Accept,
        timeout: Duration::from_secs(60),
        ..script
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_remote_consents_in_the_browser_and_the_chosen_level_is_enforced() {
    let (gateway, _upstream) = gateway().await;
    let outbox = gateway.outbox();

    // 1. Sign up, verify the mailed code, choose the server, Medium.
    let first = tempfile::tempdir().unwrap();
    let (remote, outcome) = connect(&gateway, first.path(), |url| {
        level(
            ConsentScript {
                outbox: Some(outbox.clone()),
                ..ConsentScript::new(url, EMAIL, PASSWORD)
            },
            ConsentLevel::Medium,
            Account::Create,
        )
    })
    .await;
    assert_eq!(outcome.pages, ["sign-in", "verify", "server", "trust"]);
    assert!(outcome.disabled_levels.is_empty(), "ceiling is High");
    assert_eq!(outcome.tools.get("echo"), Some(&ToolAccess::Allowed));
    assert_eq!(outcome.tools.get("get-sum"), Some(&ToolAccess::Allowed));
    assert_eq!(outcome.tools.get("get-env"), Some(&ToolAccess::Denied));
    assert!(
        outcome.redirect_param("code").is_some(),
        "{}",
        outcome.final_url
    );
    assert_eq!(
        outcome.redirect_param("iss").as_deref(),
        Some(gateway.base.as_str())
    );

    // Low and Medium tools work; the High one is denied with the permission error.
    let echo = call(&remote, "echo", json!({ "message": "hi" }))
        .await
        .unwrap();
    assert!(echo.to_string().contains("hi"), "{echo}");
    let sum = call(&remote, "get-sum", json!({ "a": 2, "b": 3 }))
        .await
        .unwrap();
    assert!(sum.to_string().contains('5'), "{sum}");
    assert_denied(
        call(&remote, "get-env", json!({})).await,
        "get-env",
        "medium",
    );

    // The agent is on the Agents list, connected to Ada.
    let client_id = query_param(&remote.authorization_urls()[0], "client_id").unwrap();
    let agents = gateway.agents().await;
    let agent = agents
        .iter()
        .find(|a| a["client_id"] == client_id.as_str())
        .unwrap_or_else(|| panic!("agent {client_id} not listed: {agents:?}"));
    assert_eq!(agent["human_email"], EMAIL, "{agent}");

    // 2. Reconnecting (a new client) with High allows it; the account now signs in.
    let second = tempfile::tempdir().unwrap();
    let (high, outcome) = connect(&gateway, second.path(), |url| {
        level(
            ConsentScript::new(url, EMAIL, PASSWORD),
            ConsentLevel::High,
            Account::SignIn,
        )
    })
    .await;
    assert_eq!(outcome.pages, ["sign-in", "server", "trust"]);
    assert_eq!(outcome.tools.get("get-env"), Some(&ToolAccess::Allowed));
    call(&high, "get-env", json!({})).await.unwrap();

    // 3. The admin lowers the grant: denied again, on the live connection.
    gateway.grant(EMAIL, "everything", "medium").await;
    let mut denied = None;
    for _ in 0..50 {
        match call(&high, "get-env", json!({})).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => {
                denied = Some(error);
                break;
            }
        }
    }
    assert_denied(
        Err(denied.expect("lowering the grant denies the call")),
        "get-env",
        "medium",
    );

    // 4. The admin revokes the second agent: its tokens die, and on its next start the client
    //    runs consent again (the consent page now caps the levels at Medium).
    let high_client = query_param(&high.authorization_urls()[0], "client_id").unwrap();
    drop(high);
    let agent_id = gateway
        .agents()
        .await
        .into_iter()
        .find(|a| a["client_id"] == high_client.as_str())
        .and_then(|a| a["id"].as_str().map(str::to_owned))
        .unwrap();
    gateway.revoke_agent(&agent_id, "everything").await;
    let (again, outcome) = connect(&gateway, second.path(), |url| {
        level(
            ConsentScript::new(url, EMAIL, PASSWORD),
            ConsentLevel::Medium,
            Account::SignIn,
        )
    })
    .await;
    assert_eq!(outcome.disabled_levels, [ConsentLevel::High]);
    call(&again, "echo", json!({ "message": "back" }))
        .await
        .unwrap();
    assert_denied(
        call(&again, "get-env", json!({})).await,
        "get-env",
        "medium",
    );
}

/// The access token mcp-remote stored in `config` (its `*_tokens.json`), if any.
fn stored_access_token(config: &std::path::Path) -> Option<String> {
    let mut pending = vec![config.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with("_tokens.json"))
            {
                let tokens: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                return tokens["access_token"].as_str().map(str::to_owned);
            }
        }
    }
    None
}

/// The host's sessions idle out after a minute (the shortest lifetime a host may set). Ada
/// consents; once the session has sat idle past its lifetime the data plane refuses its
/// still-unexpired access token with 401 `invalid_token`, the refresh token is refused, and
/// mcp-remote, started again with its stored tokens, runs the consent again; the new session
/// keeps the admin's grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_makes_mcp_remote_run_consent_again() {
    const IDLE_SECONDS: u64 = 60;
    let (gateway, _upstream) = gateway().await;
    let (status, host) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "session_idle_seconds": IDLE_SECONDS } })),
        )
        .await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["settings"]["session_idle_seconds"], IDLE_SECONDS);

    let config = tempfile::tempdir().unwrap();
    let outbox = gateway.outbox();
    let (remote, _) = connect(&gateway, config.path(), |url| {
        level(
            ConsentScript {
                outbox: Some(outbox.clone()),
                ..ConsentScript::new(url, EMAIL, PASSWORD)
            },
            ConsentLevel::Medium,
            Account::Create,
        )
    })
    .await;
    let consented = std::time::Instant::now();
    call(&remote, "echo", json!({ "message": "before" }))
        .await
        .unwrap();
    drop(remote);
    let token = stored_access_token(config.path())
        .unwrap_or_else(|| panic!("mcp-remote stored no tokens under {:?}", config.path()));

    // Past the idle lifetime (with a margin for the clocks of the two processes).
    let lifetime = Duration::from_secs(IDLE_SECONDS + 2);
    tokio::time::sleep(lifetime.saturating_sub(consented.elapsed())).await;
    let refused = reqwest::Client::new()
        .post(gateway.mcp_url())
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": { "name": "expiry-check", "version": "1" },
            },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let challenge = refused
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // The client's next start: its stored tokens are refused, and it asks for consent again.
    let (again, outcome) = connect(&gateway, config.path(), |url| {
        level(
            ConsentScript::new(url, EMAIL, PASSWORD),
            ConsentLevel::Medium,
            Account::SignIn,
        )
    })
    .await;
    assert_eq!(outcome.pages, ["sign-in", "server", "trust"]);
    assert!(
        outcome.disabled_levels.is_empty(),
        "the grant is still High"
    );
    call(&again, "echo", json!({ "message": "after" }))
        .await
        .unwrap();
    assert_ne!(
        stored_access_token(config.path()).as_deref(),
        Some(token.as_str()),
        "new tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_sends_access_denied_to_the_client() {
    let (gateway, _upstream) = gateway().await;
    gateway.add_human("bob@example.com").await;
    gateway.grant("bob@example.com", "everything", "low").await;
    let config = tempfile::tempdir().unwrap();
    let remote = McpRemote::start(
        &gateway.mcp_url(),
        free_loopback_port().unwrap(),
        config.path(),
        &[],
    )
    .unwrap();
    let _initialize = remote.send_initialize().unwrap();
    let url = remote.authorization_url(STEP).await.unwrap();
    let outcome = ConsentBrowser::run(&ConsentScript {
        outbox: Some(gateway.outbox()),
        decision: Decision::Deny,
        timeout: Duration::from_secs(60),
        ..ConsentScript::new(url.clone(), "bob@example.com", PASSWORD)
    })
    .await
    .unwrap();
    assert_eq!(
        outcome.disabled_levels,
        [ConsentLevel::Medium, ConsentLevel::High]
    );
    assert_eq!(
        outcome.redirect_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        outcome.redirect_param("state"),
        query_param(&url, "state"),
        "state comes back"
    );
    assert!(outcome.redirect_param("code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_mcp_on_the_mcp_url_pre_selects_a_granted_server_and_is_ignored_otherwise() {
    let (gateway, everything) = gateway().await;
    let python = McpPeer::python_server(&[]).await.expect("python server");
    gateway.import(python.url(), "python", "Python").await;
    gateway.grant(EMAIL, "python", "low").await;
    let encoded = |url: &str| url.replace(':', "%3A").replace('/', "%2F");

    // Granted: the hinted server's radio is the checked one.
    let hinted = format!(
        "{}?upstream_mcp={}",
        gateway.mcp_url(),
        encoded(python.url())
    );
    let seen = consent_stops_at_server(&gateway, &hinted, Account::Create).await;
    let checked: Vec<_> = seen
        .iter()
        .filter(|s| s.checked)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(checked, ["Python"], "{seen:?}");

    // Not granted (an unknown URL): ignored silently, nothing is pre-selected or revealed.
    let unknown = format!(
        "{}?upstream_mcp={}",
        gateway.mcp_url(),
        encoded("http://127.0.0.1:9/not-granted")
    );
    let seen = consent_stops_at_server(&gateway, &unknown, Account::SignIn).await;
    assert!(seen.iter().all(|s| !s.checked), "{seen:?}");
    let mut names: Vec<_> = seen.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Everything", "Python"]);
    drop(everything);
}

/// Connects mcp-remote to `mcp_url` and walks the browser to the server page.
async fn consent_stops_at_server(
    gateway: &DevGateway,
    mcp_url: &str,
    account: Account,
) -> Vec<test_fixtures::clients::ServerChoice> {
    let config = tempfile::tempdir().unwrap();
    let remote =
        McpRemote::start(mcp_url, free_loopback_port().unwrap(), config.path(), &[]).unwrap();
    let _initialize = remote.send_initialize().unwrap();
    let url = remote.authorization_url(STEP).await.unwrap();
    let resource = query_param(&url, "resource").unwrap();
    assert_eq!(resource, mcp_url, "the resource keeps the hint");
    let outcome = ConsentBrowser::run(&ConsentScript {
        outbox: Some(gateway.outbox()),
        account,
        stop_at: Some(test_fixtures::clients::StopAt::Server),
        timeout: Duration::from_secs(60),
        ..ConsentScript::new(url, EMAIL, PASSWORD)
    })
    .await
    .unwrap_or_else(|e| panic!("consent: {e}\n{}", gateway.process.log_text()));
    outcome.servers.expect("the server page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_protected_upstream_gets_the_humans_own_sign_in_and_never_the_clients_token() {
    let upstream = McpPeer::sdk_oauth_example()
        .await
        .expect("SDK OAuth example");
    let gateway = DevGateway::start(&[]).await;
    gateway
        .import_oauth(upstream.url(), "demo", "OAuth Demo")
        .await;
    gateway.set_tool("demo", "greet", "low").await;
    gateway.add_human(EMAIL).await;
    gateway.grant(EMAIL, "demo", "medium").await;

    let config = tempfile::tempdir().unwrap();
    let (remote, outcome) = connect(&gateway, config.path(), |url| ConsentScript {
        outbox: Some(gateway.outbox()),
        server: Some("OAuth Demo".to_owned()),
        level: ConsentLevel::Medium,
        timeout: Duration::from_secs(60),
        ..ConsentScript::new(url, EMAIL, PASSWORD)
    })
    .await;
    // Step 4 came between the server choice and the trust level.
    assert_eq!(
        outcome.pages,
        ["sign-in", "verify", "server", "upstream", "trust"]
    );
    let greeting = call(&remote, "greet", json!({ "name": "gw" }))
        .await
        .unwrap();
    assert_eq!(greeting["content"][0]["text"], "Hello, gw!", "{greeting}");

    // Nothing the client received carries an upstream token or the upstream's address.
    let seen = format!(
        "{}{}{}",
        remote.stderr(),
        serde_json::to_string(&remote.notifications()).unwrap(),
        greeting
    );
    let upstream_authority = upstream.url().split('/').nth(2).unwrap().to_owned();
    assert!(!seen.contains(&upstream_authority), "{seen}");
    // mcp-remote stores what it received: only the gateway's own tokens.
    for entry in walk(config.path()) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains(&upstream_authority),
            "{}: {text}",
            entry.display()
        );
        if let Ok(tokens) = serde_json::from_str::<Value>(&text)
            && let Some(access) = tokens["access_token"].as_str()
        {
            // The gateway's token: a JWT its own issuer signed.
            assert_eq!(access.split('.').count(), 3, "{access}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
