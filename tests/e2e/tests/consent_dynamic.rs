//! Dynamic MCPs in the consent flow end to end: `portcullis dev` (the real binary), the
//! admin API turning the host setting `dynamic_mcps` on or off, `mcp-remote` as the MCP
//! client, and headless Chromium (`tests/fixtures/peers/consent_browser.mjs`) on the pages.
//!
//! With dynamic MCPs on, a human the admin granted nothing types server-everything's URL into
//! "Server URL", sets their own level, and calls a tool through the gateway. With them off,
//! the page has no such field and tells the human to ask their admin.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::time::Duration;

use portcullis_e2e::dev_admin::DevGateway;
use serde_json::json;
use test_fixtures::clients::{
    Account, ClientError, ConsentBrowser, ConsentLevel, ConsentScript, McpRemote, StopAt,
    ToolAccess,
};
use test_fixtures::{McpPeer, free_loopback_port};

const STEP: Duration = Duration::from_secs(30);
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery";

/// Turns the default host's `dynamic_mcps` setting on or off.
async fn set_dynamic_mcps(gateway: &DevGateway, on: bool) {
    let (status, body) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "dynamic_mcps": on } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["dynamic_mcps"], on, "{body}");
}

/// Starts mcp-remote on the default host and returns it with the authorization URL.
async fn start_client(gateway: &DevGateway, config: &std::path::Path) -> (McpRemote, u64, String) {
    let remote = McpRemote::start(
        &gateway.mcp_url(),
        free_loopback_port().unwrap(),
        config,
        &["--auth-timeout", "90"],
    )
    .unwrap();
    let initialize = remote.send_initialize().unwrap();
    let url = remote.authorization_url(STEP).await.unwrap();
    (remote, initialize, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_without_grants_adds_a_server_by_url_and_sets_their_own_level() {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = DevGateway::start(&[]).await;
    set_dynamic_mcps(&gateway, true).await;
    gateway.add_human(EMAIL).await;

    let config = tempfile::tempdir().unwrap();
    let (remote, initialize, url) = start_client(&gateway, config.path()).await;
    let outcome = ConsentBrowser::run(&ConsentScript {
        outbox: Some(gateway.outbox()),
        account: Account::Create,
        server_url: Some(upstream.url().to_owned()),
        level: ConsentLevel::Medium,
        timeout: Duration::from_secs(60),
        ..ConsentScript::new(url, EMAIL, PASSWORD)
    })
    .await
    .unwrap_or_else(|e| panic!("consent: {e}\n{}", gateway.process.log_text()));
    assert_eq!(outcome.pages, ["sign-in", "verify", "server", "trust"]);
    assert_eq!(outcome.servers.as_deref().map(<[_]>::len), Some(0));
    // The human sets their own level: nothing above a ceiling is disabled.
    assert!(
        outcome.disabled_levels.is_empty(),
        "{:?}",
        outcome.disabled_levels
    );
    // server-everything's `echo` is classified Low by the product rule.
    assert_eq!(outcome.tools.get("echo"), Some(&ToolAccess::Allowed));

    let initialized = remote
        .finish_initialize(initialize, STEP)
        .await
        .unwrap_or_else(|e| panic!("initialize: {e}\n{}", remote.stderr()));
    assert!(initialized["serverInfo"].is_object(), "{initialized}");
    let echoed = remote
        .request(
            "tools/call",
            json!({ "name": "echo", "arguments": { "message": "hi" } }),
            STEP,
        )
        .await
        .unwrap_or_else(|e| panic!("echo: {e}\n{}", remote.stderr()));
    let text = echoed["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("hi"), "{echoed}");

    // The server was recorded in the host under its `dyn-` key, with the human's grant.
    let (status, servers) = gateway
        .api(
            "GET",
            &format!("/api/v1/hosts/{}/servers", gateway.host),
            None,
        )
        .await;
    assert_eq!(status, 200, "{servers}");
    let listed = servers.to_string();
    assert!(listed.contains("\"dyn-"), "{servers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dynamic_mcps_the_page_has_no_server_url_and_says_to_ask_the_admin() {
    let gateway = DevGateway::start(&[]).await;
    set_dynamic_mcps(&gateway, false).await;
    gateway.add_human(EMAIL).await;

    let config = tempfile::tempdir().unwrap();
    let (_remote, _initialize, url) = start_client(&gateway, config.path()).await;
    let outcome = ConsentBrowser::run(&ConsentScript {
        outbox: Some(gateway.outbox()),
        account: Account::Create,
        stop_at: Some(StopAt::Server),
        timeout: Duration::from_secs(60),
        ..ConsentScript::new(url, EMAIL, PASSWORD)
    })
    .await;
    // The browser driver knows the server page by its radios or its "Server URL" field; the
    // empty state has neither, so the driver stops there and reports the page it saw.
    let failure = match outcome {
        Err(ClientError::Consent(failure)) => failure,
        Ok(outcome) => panic!("the server page had a form: {outcome:?}"),
        Err(other) => panic!("consent: {other}\n{}", gateway.process.log_text()),
    };
    assert!(failure.error.contains("unrecognised page"), "{failure}");
    assert_eq!(failure.pages, ["sign-in", "verify"], "{failure}");
    assert!(failure.text.contains("Choose an MCP server"), "{failure}");
    assert!(
        failure.text.contains("You have no MCP servers yet"),
        "{failure}"
    );
    assert!(failure.text.contains("Ask your admin"), "{failure}");
    assert!(!failure.text.contains("Server URL"), "{failure}");
}
