//! End-to-end sign-ins against real peers on loopback: npm `oidc-provider` instances shaped as
//! a generic OIDC provider, Google and two Microsoft Entra tenants
//! (`tests/peers/identity/oidc-peers.mjs`), and a GitHub-shaped OAuth App + REST peer
//! (`tests/peers/identity/github.py`). Each test starts its own peers, runs `Idp::start`,
//! follows the authorization redirects like a browser (no automatic redirects, a cookie jar)
//! until the redirect URI is reached, then runs `Idp::finish` on the callback's query.
//!
//! Needs `PORTCULLIS_PEER_OIDC_PROVIDER`, `PORTCULLIS_PEER_OIDC_PEERS` and
//! `PORTCULLIS_PEER_GITHUB` (`ensure_identity_peers` in scripts/lib/tools.sh exports them); a
//! test fails with a clear message when one is unset. Must not reach anything but loopback.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_idp::{
    Callback, ExternalIdentity, Idp, IdpError, PendingSignIn, ProviderConfig, ProviderKind,
};
use portcullis_upstream::UrlPolicy;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;
use zeroize::Zeroizing;

const CLIENT_ID: &str = "portcullis-gateway";
const CLIENT_SECRET: &str = "peer-client-secret";
/// Never contacted: the browser walk stops when a redirect points here.
const REDIRECT_URI: &str = "http://127.0.0.1:9/portcullis/idp/callback";

/// A running peer process; killed on drop. Its stderr is kept and printed if the test fails.
struct Peer {
    _child: Child,
    announced: Value,
    stderr: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let lines = self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default();
            eprintln!("--- {} stderr ---\n{lines}\n---", self.name);
        }
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is unset: the identity peers are not installed. Run the tests through \
             scripts/test, or `source scripts/lib/tools.sh` with repo=<repository root> and \
             call ensure_identity_peers"
        )
    })
}

async fn spawn(name: &'static str, program: &str, args: &[&str]) -> Peer {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {name} ({program}): {error}"));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    if let Some(pipe) = child.stderr.take() {
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut sink) = sink.lock() {
                    sink.push(line);
                }
            }
        });
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    let line = match first {
        Ok(Ok(Some(line))) => line,
        other => {
            let log = stderr.lock().map(|l| l.join("\n")).unwrap_or_default();
            panic!("{name} did not announce itself ({other:?}); stderr:\n{log}");
        }
    };
    let announced: Value = serde_json::from_str(&line)
        .unwrap_or_else(|error| panic!("{name} printed {line:?}: {error}"));
    Peer {
        _child: child,
        announced,
        stderr,
        name,
    }
}

async fn oidc_peers() -> Peer {
    let _ = env("PORTCULLIS_PEER_OIDC_PROVIDER");
    let script = env("PORTCULLIS_PEER_OIDC_PEERS");
    spawn(
        "oidc-peers",
        "node",
        &[
            &script,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--redirect-uri",
            REDIRECT_URI,
        ],
    )
    .await
}

async fn github_peer() -> Peer {
    let script = env("PORTCULLIS_PEER_GITHUB");
    spawn(
        "github-peer",
        "python3",
        &[
            &script,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ],
    )
    .await
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the peer's announcement has no {pointer}: {value}"))
        .to_owned()
}

fn config(kind: ProviderKind) -> ProviderConfig {
    ProviderConfig {
        kind,
        client_id: CLIENT_ID.to_owned(),
        client_secret: Zeroizing::new(CLIENT_SECRET.to_owned()),
        issuer: None,
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base: None,
    }
}

fn microsoft(peers: &Peer, tenant: &str, allowed: &[&str]) -> ProviderConfig {
    ProviderConfig {
        tenant: Some(tenant.to_owned()),
        allowed_tenants: allowed.iter().map(|t| (*t).to_owned()).collect(),
        authority: Some(text(&peers.announced, "/microsoft/authority")),
        ..config(ProviderKind::Microsoft)
    }
}

fn github_config(peer: &Peer) -> ProviderConfig {
    let base = text(&peer.announced, "/base");
    ProviderConfig {
        authorization_endpoint: Some(format!("{base}/login/oauth/authorize")),
        token_endpoint: Some(format!("{base}/login/oauth/access_token")),
        api_base: Some(base),
        ..config(ProviderKind::GitHub)
    }
}

/// Follows redirects from `url` like a browser with a cookie jar, until one points at the
/// redirect URI; returns that redirect's query.
async fn browse_to_callback(url: &str) -> String {
    // The product's guarded client (no redirects of its own: the loop follows them).
    let browser = portcullis_upstream::Egress::new(
        UrlPolicy::DEVELOPMENT,
        &[],
        portcullis_upstream::HttpLimits {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        },
    )
    .expect("browser client");
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut url = Url::parse(url).expect("authorization URL");
    for _ in 0..20 {
        let mut request = browser
            .request(reqwest::Method::GET, &url)
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        if !jar.is_empty() {
            let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(COOKIE, cookies.join("; "));
        }
        let response = browser
            .send(request)
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap_or_default();
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = set
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
                if value.is_empty() || expired {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        let status = response.status();
        if !status.is_redirection() {
            let body = response.text().await.unwrap_or_default();
            panic!("GET {url} answered {status} instead of a redirect: {body}");
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("a {status} from {url} without Location"))
            .to_owned();
        let next = url.join(&location).expect("Location is a URL");
        if next.as_str().starts_with(REDIRECT_URI) {
            return next.query().unwrap_or_default().to_owned();
        }
        assert_ne!(status, StatusCode::NOT_MODIFIED);
        url = next;
    }
    panic!("more than 20 redirects from the authorization URL");
}

/// start → browser → finish, with the pending sign-in sealed and unsealed (serde) in between.
async fn sign_in(config: &ProviderConfig, login_hint: &str) -> Result<ExternalIdentity, IdpError> {
    let idp = Idp::new(UrlPolicy::DEVELOPMENT);
    let start = idp
        .start(config, REDIRECT_URI, Some(login_hint))
        .await
        .unwrap_or_else(|error| panic!("start failed: {error} ({error:?})"));
    let cookie = serde_json::to_string(&start.pending).expect("seals");
    let query = browse_to_callback(&start.authorization_url).await;
    let pending: PendingSignIn = serde_json::from_str(&cookie).expect("unseals");
    idp.finish(config, &pending, &Callback::from_query(&query))
        .await
}

fn verified(identity: &ExternalIdentity) -> Vec<&str> {
    identity
        .verified_emails
        .iter()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn alice_signs_in_with_a_generic_oidc_provider_and_her_email_is_verified() {
    let peers = oidc_peers().await;
    let issuer = text(&peers.announced, "/oidc");
    let config = ProviderConfig {
        issuer: Some(issuer.clone()),
        ..config(ProviderKind::Oidc)
    };
    let identity = sign_in(&config, "alice").await.expect("signs in");
    assert_eq!(identity.issuer, issuer);
    assert_eq!(identity.subject, "alice");
    assert_eq!(verified(&identity), ["alice@corp.example"]);
    assert_eq!(identity.unverified_email, None);
    assert_eq!(identity.display_name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn mallorys_unverified_oidc_email_is_only_reported_as_unverified() {
    let peers = oidc_peers().await;
    let config = ProviderConfig {
        issuer: Some(text(&peers.announced, "/oidc")),
        ..config(ProviderKind::Oidc)
    };
    let identity = sign_in(&config, "mallory").await.expect("signs in");
    assert_eq!(identity.subject, "mallory");
    assert!(identity.verified_emails.is_empty(), "{identity:?}");
    assert_eq!(
        identity.unverified_email.as_deref(),
        Some("alice@corp.example")
    );
}

#[tokio::test]
async fn a_google_shaped_provider_without_email_verified_vouches_for_nothing() {
    let peers = oidc_peers().await;
    let issuer = text(&peers.announced, "/google");
    let config = ProviderConfig {
        issuer: Some(issuer.clone()),
        ..config(ProviderKind::Google)
    };
    let alice = sign_in(&config, "alice").await.expect("alice signs in");
    assert_eq!(alice.issuer, issuer);
    assert_eq!(verified(&alice), ["alice@corp.example"]);
    let carol = sign_in(&config, "carol").await.expect("carol signs in");
    assert!(carol.verified_emails.is_empty(), "{carol:?}");
    assert_eq!(
        carol.unverified_email.as_deref(),
        Some("carol@corp.example")
    );
}

#[tokio::test]
async fn alice_signs_in_with_her_microsoft_tenant_keyed_by_tenant_and_object_id() {
    let peers = oidc_peers().await;
    let tenant_a = text(&peers.announced, "/microsoft/tenant_a");
    let authority = text(&peers.announced, "/microsoft/authority");
    let identity = sign_in(&microsoft(&peers, &tenant_a, &[]), "alice")
        .await
        .expect("signs in");
    assert_eq!(identity.issuer, format!("{authority}/{tenant_a}/v2.0"));
    assert_eq!(identity.subject, "aaaaaaaa-0000-4000-8000-000000000001");
    assert_eq!(verified(&identity), ["alice@corp.example"]);
}

#[tokio::test]
async fn a_microsoft_email_without_xms_edov_is_not_verified() {
    let peers = oidc_peers().await;
    let tenant_a = text(&peers.announced, "/microsoft/tenant_a");
    let identity = sign_in(&microsoft(&peers, &tenant_a, &[]), "eve")
        .await
        .expect("signs in");
    assert!(identity.verified_emails.is_empty(), "{identity:?}");
    assert_eq!(
        identity.unverified_email.as_deref(),
        Some("eve@corp.example")
    );
}

#[tokio::test]
async fn the_common_endpoint_admits_an_allowed_tenant() {
    let peers = oidc_peers().await;
    let tenant_a = text(&peers.announced, "/microsoft/tenant_a");
    let authority = text(&peers.announced, "/microsoft/authority");
    let identity = sign_in(&microsoft(&peers, "common", &[&tenant_a]), "alice")
        .await
        .expect("signs in");
    assert_eq!(identity.issuer, format!("{authority}/{tenant_a}/v2.0"));
    assert_eq!(identity.subject, "aaaaaaaa-0000-4000-8000-000000000001");
    assert_eq!(verified(&identity), ["alice@corp.example"]);
}

#[tokio::test]
async fn the_organizations_endpoint_refuses_a_tenant_that_is_not_allowed() {
    let peers = oidc_peers().await;
    let tenant_a = text(&peers.announced, "/microsoft/tenant_a");
    let tenant_b = text(&peers.announced, "/microsoft/tenant_b");
    // The organizations document leads to tenant B, where mallory claims alice's address.
    match sign_in(&microsoft(&peers, "organizations", &[&tenant_a]), "mallory").await {
        Err(IdpError::TenantNotAllowed { tenant }) => assert_eq!(tenant, tenant_b),
        other => panic!("expected TenantNotAllowed, got {other:?}"),
    }
}

#[tokio::test]
async fn alice_signs_in_with_github_by_numeric_id_and_verified_address() {
    let peer = github_peer().await;
    let identity = sign_in(&github_config(&peer), "alice")
        .await
        .expect("signs in");
    assert_eq!(identity.issuer, text(&peer.announced, "/base"));
    assert_eq!(identity.subject, "1001");
    // The noreply address is verified too, and still never offered.
    assert_eq!(verified(&identity), ["alice@corp.example"]);
    assert_eq!(identity.unverified_email, None);
    assert_eq!(identity.display_name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn mallorys_unverified_github_primary_never_counts_as_alices() {
    let peer = github_peer().await;
    let identity = sign_in(&github_config(&peer), "mallory")
        .await
        .expect("signs in");
    assert_eq!(identity.subject, "1002");
    assert_eq!(verified(&identity), ["mallory@evil.example"]);
    assert_eq!(
        identity.unverified_email.as_deref(),
        Some("alice@corp.example")
    );
}

#[tokio::test]
async fn a_wrong_github_client_secret_is_reported_as_a_refusal() {
    let peer = github_peer().await;
    let config = ProviderConfig {
        client_secret: Zeroizing::new("not-the-secret".to_owned()),
        ..github_config(&peer)
    };
    match sign_in(&config, "alice").await {
        Err(IdpError::Denied { error, .. }) => assert_eq!(error, "incorrect_client_credentials"),
        other => panic!("expected Denied, got {other:?}"),
    }
}
