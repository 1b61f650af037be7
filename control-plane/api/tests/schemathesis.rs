//! Schemathesis (PyPI, pinned by `scripts/lib/tools.sh`'s `ensure_schemathesis`) fuzzes the
//! REST API from its own OpenAPI document, with a valid admin token, against a real server:
//! the router on a loopback port over a real SQLite store with the projector running. Any
//! 5xx fails the test (`not_a_server_error`).
//!
//! Bounded: a fixed seed (override with `PORTCULLIS_SCHEMATHESIS_SEED`), a few examples per
//! operation (`PORTCULLIS_SCHEMATHESIS_MAX_EXAMPLES`, default 8), and a hard time limit.
//! `PORTCULLIS_SCHEMATHESIS_CHECKS` runs other checks (e.g. `all`) when exploring.
//! Discovery and import are left out: fuzzed upstream URLs would send traffic off this
//! machine; `tests/rest/upstream.rs` covers them against real upstreams, and the server here
//! refuses private and loopback upstreams anyway (production URL policy).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is the report

#[path = "rest/support.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use portcullis_proto::TrustLevel;
use portcullis_upstream::DiscoverOptions;
use portcullis_upstream::url_guard::UrlPolicy;
use serde_json::json;
use support::{App, TOKEN, closed_port_url};
use test_fixtures::installed_tool;

/// The whole schemathesis run must end within this.
const TIME_LIMIT: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let schemathesis =
        installed_tool("PORTCULLIS_SCHEMATHESIS", "ensure_schemathesis").expect("schemathesis");
    let app = App::start().await;
    // Something to find besides 404s: a host with a server, a human with a grant, an agent.
    let host = app.host("acme").await;
    let server = app.seed_server_at(&host, "files", &closed_port_url()).await;
    let human = app
        .post(
            &format!("/api/v1/hosts/{host}/humans"),
            json!({ "email": "ada@example.com" }),
        )
        .send()
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.put(
        &format!("/api/v1/hosts/{host}/humans/ada@example.com/grants/files"),
        json!({ "max_trust_level": "low" }),
    )
    .send()
    .await;
    let agent = app
        .connect_agent(&host, "cursor", &human, &server.server_id, TrustLevel::Low)
        .await;

    let router = app.router_with(|state| {
        state.url_policy = UrlPolicy::PRODUCTION;
        state.discover = DiscoverOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(3),
            ..DiscoverOptions::default()
        };
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });

    // First with the path parameters pinned to the things above and without deletes (so
    // requests reach past the lookups), then with whatever ids schemathesis makes up or finds
    // by following links (which may delete everything).
    let pinned = format!(
        "[parameters]\n\
         \"path.host\" = \"{host}\"\n\
         \"path.key\" = \"files\"\n\
         \"path.server_key\" = \"files\"\n\
         \"path.tool\" = \"read_file\"\n\
         \"path.email\" = \"ada@example.com\"\n\
         \"path.agent_id\" = \"{agent}\"\n"
    );
    let deletes = [
        "delete_host",
        "delete_server",
        "remove_tool",
        "delete_human",
        "delete_grant",
        "delete_agent",
        "revoke_agent_server",
    ];
    run(&schemathesis, addr, Some(&pinned), &deletes).await;
    run(&schemathesis, addr, None, &[]).await;
}

/// One bounded schemathesis run against `addr`, with `config` (a `schemathesis.toml`) and
/// without the operations `excluded`; fails the test on any failure.
async fn run(
    schemathesis: &std::path::Path,
    addr: std::net::SocketAddr,
    config: Option<&str>,
    excluded: &[&str],
) {
    let seed = std::env::var("PORTCULLIS_SCHEMATHESIS_SEED").unwrap_or_else(|_| "7".to_owned());
    let max_examples =
        std::env::var("PORTCULLIS_SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "8".to_owned());
    let checks = std::env::var("PORTCULLIS_SCHEMATHESIS_CHECKS")
        .unwrap_or_else(|_| "not_a_server_error".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(schemathesis);
    if let Some(config) = config {
        let file = dir.path().join("schemathesis.toml");
        std::fs::write(&file, config).unwrap();
        command.arg("--config-file").arg(file);
    }
    command
        .arg("--no-color")
        .arg("run")
        .arg(format!("http://{addr}/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", &checks])
        .args(["--max-examples", &max_examples])
        .args(["--seed", &seed])
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--suppress-health-check", "all"])
        .arg("--no-shrink")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for operation in ["discover_server", "import_server"].iter().chain(excluded) {
        command.args(["--exclude-operation-id", operation]);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(TIME_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {TIME_LIMIT:?}"))
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The summary, in the test's output (shown with --nocapture, and on failure).
    println!(
        "schemathesis (seed {seed}, {max_examples} examples per operation, pinned ids: {}) \
         took {:?}:\n{stdout}{stderr}",
        config.is_some(),
        started.elapsed()
    );
    assert!(
        output.status.success(),
        "schemathesis found failures (exit {}):\n{stdout}{stderr}",
        output.status
    );
    assert!(
        !stdout.contains("Server error"),
        "schemathesis reported a server error:\n{stdout}"
    );
}
