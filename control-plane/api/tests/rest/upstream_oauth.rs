//! Connecting an OAuth-protected upstream through the REST API, against the TS SDK's OAuth
//! example (`simpleStreamableHttp.js --oauth --oauth-strict`): discover → authorization URL →
//! the "browser" (a plain HTTP client; the demo server approves at once) → the callback →
//! import with the `authorization` it answered. And the refusals: forged, tampered and
//! expired states, misused handles; and no token or client secret in any response.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_api::UpstreamOAuthConfig;
use portcullis_secrets::{KeyRing, Sealed};
use serde_json::{Value, json};
use test_fixtures::McpPeer;
use url::Url;

use crate::support::App;

const CONTROL_BASE: &str = "http://127.0.0.1:8080";
const CALLBACK: &str = "/api/v1/upstream-oauth/callback";

async fn oauth_app(state_ttl: Duration) -> (App, Arc<KeyRing>) {
    let ring = Arc::new(KeyRing::parse(&portcullis_secrets::generate_key_text()).unwrap());
    let key_ring = ring.clone();
    let app = App::start_with(move |state| {
        state.upstream_oauth = UpstreamOAuthConfig {
            key_ring: Some(key_ring),
            callback_base: Some(CONTROL_BASE.to_owned()),
            state_ttl,
            ..UpstreamOAuthConfig::default()
        };
    })
    .await;
    (app, ring)
}

/// Discovers `url` in `host`: the authorization URL it answers with.
async fn start_authorization(app: &App, host: &str, url: &str) -> (Url, Value) {
    let discovered = app
        .post(
            &format!("/api/v1/hosts/{host}/servers/discover"),
            json!({ "url": url }),
        )
        .send()
        .await;
    discovered.expect_status(StatusCode::OK);
    assert_eq!(
        discovered.body["status"], "authorization_required",
        "{}",
        discovered.body
    );
    let authorization_url =
        Url::parse(discovered.body["authorization_url"].as_str().unwrap()).unwrap();
    (authorization_url, discovered.body.clone())
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The admin's browser: approves at the authorization URL; the callback path and query of
/// the redirect.
async fn follow(url: &Url) -> String {
    let location = test_fixtures::oauth_browser::approve(url.as_str())
        .await
        .unwrap();
    let location = Url::parse(&location).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{CONTROL_BASE}{CALLBACK}?")),
        "{location}"
    );
    format!("{CALLBACK}?{}", location.query().unwrap())
}

/// Opens a sealed value the way the gateway does (to find the secrets it must never show).
fn unseal(ring: &KeyRing, text: &str, purpose: &[u8]) -> Value {
    let mut parts = text.split('.');
    assert_eq!(parts.next(), Some("v1"));
    let sealed = Sealed {
        key_id: parts.next().unwrap().to_owned(),
        bytes: URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap(),
    };
    serde_json::from_slice(&ring.open(&sealed, purpose).unwrap()).unwrap()
}

fn with_query_param(path_and_query: &str, key: &str, value: &str) -> String {
    let url = Url::parse(&format!("{CONTROL_BASE}{path_and_query}")).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut url = url;
    url.query_pairs_mut().clear().extend_pairs(pairs);
    format!("{}?{}", url.path(), url.query().unwrap())
}

#[tokio::test]
async fn an_oauth_upstream_is_authorized_in_the_browser_and_imported() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let (app, ring) = oauth_app(Duration::from_secs(600)).await;
    let host = app.host("acme").await;
    let mut bodies = Vec::new();

    let (authorization_url, discovered) = start_authorization(&app, &host, &url).await;
    bodies.push(discovered);
    assert_eq!(
        query(&authorization_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query(&authorization_url, "resource").as_deref(),
        Some(url.as_str())
    );
    assert_eq!(
        query(&authorization_url, "redirect_uri").unwrap(),
        format!("{CONTROL_BASE}{CALLBACK}")
    );
    let state = query(&authorization_url, "state").unwrap();
    let pending = unseal(&ring, &state, b"portcullis/upstream-oauth/state/v1");
    assert_eq!(pending["binding"]["host_id"], host.as_str());
    assert_eq!(pending["binding"]["url"], url.as_str());

    let callback = follow(&authorization_url).await;
    let authorized = app.get(&callback).token(None).send().await;
    authorized.expect_status(StatusCode::OK);
    assert_eq!(authorized.headers["cache-control"], "no-store");
    let body = authorized.body.clone();
    bodies.push(body.clone());
    assert_eq!(body["status"], "authorized");
    assert_eq!(body["host"], host.as_str());
    assert_eq!(body["url"], url.as_str());
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"greet"), "{names:?}");
    let handle = body["authorization"].as_str().unwrap().to_owned();
    let secrets = unseal(
        &ring,
        &handle,
        b"portcullis/upstream-oauth/authorization/v1",
    );
    let access_token = secrets["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_id = secrets["client"]["client_id"].as_str().unwrap().to_owned();
    let client_secret = secrets["client"]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // A handle is for its own URL only.
    app.post(
        &format!("/api/v1/hosts/{host}/servers"),
        json!({ "url": format!("{url}?other"), "authorization": handle }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("authorization"),
    );
    // And it cannot be tampered with.
    let mut tampered = handle.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    app.post(
        &format!("/api/v1/hosts/{host}/servers"),
        json!({ "url": url, "authorization": tampered }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("authorization"),
    );

    let imported = app
        .post(
            &format!("/api/v1/hosts/{host}/servers"),
            json!({ "url": url, "key": "demo", "authorization": handle }),
        )
        .send()
        .await;
    imported.expect_status(StatusCode::CREATED);
    bodies.push(imported.body.clone());
    let server = &imported.body;
    assert_eq!(server["upstream_auth"]["kind"], "oauth");
    assert_eq!(server["upstream_auth"]["client_id"], client_id.as_str());
    assert!(
        server["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "greet"),
        "{server}"
    );
    let fetched = app
        .get(&format!("/api/v1/hosts/{host}/servers/demo"))
        .send()
        .await;
    fetched.expect_status(StatusCode::OK);
    bodies.push(fetched.body.clone());

    for body in &bodies {
        let text = body.to_string();
        assert!(!text.contains(&access_token), "token leaked: {text}");
        assert!(!text.contains(&client_secret), "secret leaked: {text}");
    }
}

#[tokio::test]
async fn forged_tampered_missing_and_expired_states_are_400s() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();

    let (app, _) = oauth_app(Duration::from_secs(600)).await;
    let host = app.host("acme").await;
    let (authorization_url, _) = start_authorization(&app, &host, &url).await;
    let callback = follow(&authorization_url).await;
    let state = query(&authorization_url, "state").unwrap();

    let forged = with_query_param(
        &callback,
        "state",
        "v1.k00000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let mut tampered_state = state.clone();
    let last = tampered_state.pop().unwrap();
    tampered_state.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = with_query_param(&callback, "state", &tampered_state);
    for path in [
        forged,
        tampered,
        format!("{CALLBACK}?code=abc"),
        CALLBACK.to_owned(),
    ] {
        app.get(&path).token(None).send().await.expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_oauth_state",
            Some("state"),
        );
    }
    // Another gateway's key ring cannot open it either.
    let (other, _) = oauth_app(Duration::from_secs(600)).await;
    other.get(&callback).token(None).send().await.expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_oauth_state",
        Some("state"),
    );
    // The genuine one still works: the refusals consumed nothing.
    app.get(&callback)
        .token(None)
        .send()
        .await
        .expect_status(StatusCode::OK);

    let (expiring, _) = oauth_app(Duration::ZERO).await;
    let host = expiring.host("acme").await;
    let (authorization_url, _) = start_authorization(&expiring, &host, &url).await;
    let callback = follow(&authorization_url).await;
    let expired = expiring.get(&callback).token(None).send().await;
    expired.expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_oauth_state",
        Some("state"),
    );
    assert_eq!(expired.body["error"]["details"]["reason"], "expired");
}
