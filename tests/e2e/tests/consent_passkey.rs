//! Passkeys on the consent pages of `portcullis dev`, in a real browser: Debian's Chromium
//! through playwright-core with a DevTools virtual authenticator
//! (`tests/fixtures/peers/passkey_browser.mjs`).
//!
//! Two hosts of one gateway, each its own relying party (`<host>.localhost`): the human signs
//! in at host A with a mailed code, adds a passkey, and later signs in with it; the same
//! answer posted again is refused (a ceremony is spent once); the sign-in options for an
//! address nobody has look like real ones (no account enumeration); A's passkey answer
//! is refused at host B, even with a ceremony B really started for the same address; B's own
//! passkey signs in at B. Plus what the gateway records: the passkey is on the human's
//! events, and its signature counter moves with each sign-in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::time::Duration;

use portcullis_e2e::consent_client::{form, pkce};
use portcullis_e2e::dev_admin::DevGateway;
use serde_json::{Value, json};
use test_fixtures::clients::PasskeyBrowser;

const EMAIL: &str = "ada@corp.example";
const REDIRECT: &str = "http://127.0.0.1:43119/callback";

/// Creates a host with passkeys and mailed codes on; its id and base URL.
async fn passkey_host(gateway: &DevGateway, prefix: &str) -> (String, String) {
    let (status, host) = gateway
        .api(
            "POST",
            "/api/v1/hosts",
            Some(json!({ "prefix": prefix, "settings": { "auth": {
                "password": true, "email_otp": true, "passkeys": true,
            } } })),
        )
        .await;
    assert_eq!(status, 201, "{host}");
    assert_eq!(host["settings"]["auth"]["passkeys"], true, "{host}");
    let id = host["id"].as_str().expect("id").to_owned();
    let base = host["mcp_url"]
        .as_str()
        .expect("mcp_url")
        .trim_end_matches("/mcp")
        .to_owned();
    (id, base)
}

/// A plain client that reaches `<host>.localhost` at the gateway's address (the name is
/// Chromium's to resolve; here the `Host` header carries it).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Registers a client at the host at `base` and returns an authorization URL for it.
async fn authorization_url(gateway: &DevGateway, base: &str) -> String {
    let host = base.trim_start_matches("http://");
    let response = client()
        .post(format!("{}/oauth/register", gateway.base))
        .header(reqwest::header::HOST, host)
        .json(&json!({
            "client_name": "Passkey tests",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }))
        .send()
        .await
        .expect("register");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, 201, "{body}");
    let client_id = body["client_id"].as_str().expect("client_id");
    let (_verifier, challenge) = pkce();
    let resource = format!("{base}/mcp");
    format!(
        "{base}/oauth/authorize?{}",
        form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("state", "passkeys"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
        ])
    )
}

/// The types of the passkey events in `dev`'s event log, in order.
fn passkey_events(gateway: &DevGateway) -> Vec<String> {
    let db = gateway.data.path().join("data").join("portcullis.db");
    let connection = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the event log");
    let mut statement = connection
        .prepare("SELECT event_type FROM events WHERE event_type LIKE 'HumanPasskey%' ORDER BY seq")
        .expect("query");
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .expect("rows")
        .map(|row| row.expect("row"))
        .collect()
}

#[track_caller]
fn assert_server_page(heading: &Value, report: &Value) {
    assert!(
        heading
            .as_str()
            .is_some_and(|h| h.starts_with("Choose an MCP server")),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_signs_in_at_its_own_host_once_per_ceremony_and_nowhere_else() {
    let gateway = DevGateway::start(&[]).await;
    let (_a, base_a) = passkey_host(&gateway, "passa").await;
    let (_b, base_b) = passkey_host(&gateway, "passb").await;
    let input = json!({
        "outbox": gateway.outbox().display().to_string(),
        "email": EMAIL,
        "a": authorization_url(&gateway, &base_a).await,
        "a2": authorization_url(&gateway, &base_a).await,
        "b": authorization_url(&gateway, &base_b).await,
        "timeoutMs": 90_000,
    });
    let report = PasskeyBrowser::run(&input, Duration::from_secs(90))
        .await
        .expect("passkey browser");
    assert_eq!(report["ok"], true, "{report:#}");

    // Registered at A, for A's relying party id.
    assert_eq!(
        report["registered"], "Passkey added. Next time, sign in with it.",
        "{report:#}"
    );
    let host_a = base_a.trim_start_matches("http://");
    let rp_a = host_a.split(':').next().expect("host name");
    assert_eq!(report["credentials"][0]["rpId"], rp_a, "{report:#}");
    // Signed in with it: the page after sign-in (no servers granted: the server page).
    assert_server_page(&report["signIn"], &report);
    // The same request again, cookie and all (a captured sign-in): the ceremony is spent.
    let captured = &report["captured"];
    let replay = client()
        .post(format!("{}/consent/passkey/sign-in/finish", gateway.base))
        .header(reqwest::header::HOST, host_a)
        .header(reqwest::header::ORIGIN, &base_a)
        .header(
            reqwest::header::COOKIE,
            captured["cookie"].as_str().expect("cookie"),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(captured["body"].as_str().expect("body").to_owned())
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status().as_u16(), 400);
    let replayed: Value = replay.json().await.expect("JSON");
    assert!(
        replayed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{replayed}"
    );
    // An unknown address gets options of the same shape as a real one.
    assert_eq!(report["decoy"]["status"], 200, "{report:#}");
    assert_eq!(report["decoy"]["ok"], true, "{report:#}");
    assert_eq!(
        report["decoy"]["keys"], report["real"]["keys"],
        "{report:#}"
    );
    assert_eq!(
        report["decoy"]["rpId"], report["real"]["rpId"],
        "{report:#}"
    );
    assert!(
        report["decoy"]["allowCredentials"].as_u64().unwrap_or(0) >= 1,
        "{report:#}"
    );
    // A's answer, even with a ceremony B started for the same human, is refused at B.
    assert_eq!(
        report["registeredB"], "Passkey added. Next time, sign in with it.",
        "{report:#}"
    );
    assert_eq!(report["crossSite"]["started"], true, "{report:#}");
    assert_eq!(report["crossSite"]["status"], 401, "{report:#}");
    assert_eq!(report["crossSite"]["body"]["ok"], false, "{report:#}");
    // B's own passkey signs in at B.
    assert_server_page(&report["signInB"], &report);

    // Recorded: two registrations (A and B), then each sign-in that went through (A, B).
    let events = passkey_events(&gateway);
    assert_eq!(
        events,
        [
            "HumanPasskeyRegistered",
            "HumanPasskeyUsed",
            "HumanPasskeyRegistered",
            "HumanPasskeyUsed"
        ],
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_routes_need_the_pages_own_session_and_only_the_hosts_own_script_runs() {
    let gateway = DevGateway::start(&[]).await;
    let (status, _) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": {
                "password": true, "passkeys": true,
                "passkey_domains": { "domains": ["corp.example"] },
            } } })),
        )
        .await;
    assert_eq!(status, 200);
    let http = client();
    // No cookie, no CSRF token: refused before anything else.
    let answer = http
        .post(format!("{}/consent/passkey/sign-in/start", gateway.base))
        .header(reqwest::header::ORIGIN, &gateway.base)
        .json(&json!({ "flow": "x", "csrf": "y", "email": EMAIL }))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 403);
    // The script is served with no-sniff, and the pages' CSP allows only the host's own
    // scripts and fetches.
    let script = http
        .get(format!("{}/consent/passkey.js", gateway.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(script.status().as_u16(), 200);
    assert_eq!(
        script.headers()["x-content-type-options"],
        "nosniff",
        "{:?}",
        script.headers()
    );
    let page = http
        .get(format!("{}/consent?flow=nope", gateway.base))
        .send()
        .await
        .expect("GET");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline'; script") && !csp.contains("script-src 'unsafe"),
        "{csp}"
    );
}
