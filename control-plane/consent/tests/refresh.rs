//! The upstream-credential refresher against a real token endpoint on loopback (an axum
//! test double of an upstream authorization server that rotates refresh tokens and refuses a
//! spent one): two replicas racing refresh each credential exactly once, and an upstream
//! that refuses the refresh gets the credential revoked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use portcullis_commands::Context;
use portcullis_commands::control::{Control, ControlOptions, NoSecretSealer};
use portcullis_consent::refresh::{RefreshSettings, refresh_pass};
use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_secrets::KeyRing;
use portcullis_store::{EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use portcullis_upstream::UrlPolicy;
use portcullis_upstream::oauth::{
    ClientCredentials, StoredCredential, TokenAuthMethod, Tokens, credential_aad,
};
use portcullis_upstream::secret::Secret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const MASTER_KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The upstream's token endpoint: valid refresh tokens and how many refreshes it served.
#[derive(Clone, Default)]
struct Upstream {
    valid: Arc<Mutex<HashMap<String, u32>>>,
    served: Arc<Mutex<u32>>,
}

async fn token(State(upstream): State<Upstream>, body: String) -> (StatusCode, String) {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let generation = upstream.valid.lock().unwrap().remove(&presented);
    match (form.get("grant_type").map(String::as_str), generation) {
        (Some("refresh_token"), Some(generation)) => {
            *upstream.served.lock().unwrap() += 1;
            let next = format!("{presented}-r{}", generation + 1);
            upstream
                .valid
                .lock()
                .unwrap()
                .insert(next.clone(), generation + 1);
            (
                StatusCode::OK,
                json!({
                    "access_token": format!("access-{}", generation + 1),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": next,
                })
                .to_string(),
            )
        }
        _ => (
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_grant", "error_description": "refresh token spent" })
                .to_string(),
        ),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    control: Arc<Control>,
    ring: KeyRing,
    host_id: String,
    token_endpoint: String,
    upstream: Upstream,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let log: Arc<dyn EventLog> = store.clone();
    let kv: Arc<dyn ReadModelStore> = store.clone();
    let shutdown = CancellationToken::new();
    let projector = Projector::new(log.clone(), kv.clone(), ProjectorOptions::default()).unwrap();
    tokio::spawn(projector.run(shutdown.clone()));
    let control = Arc::new(
        Control::new(
            log.clone(),
            kv,
            Arc::new(NoSecretSealer),
            ControlOptions::default(),
        )
        .unwrap(),
    );
    let context = Context::system("test", "req");
    let host_id = portcullis_commands::bootstrap::ensure_default_host(log.as_ref(), &context)
        .await
        .unwrap()
        .host_id;
    let upstream = Upstream::default();
    let app = Router::new()
        .route("/token", post(token))
        .with_state(upstream.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        _dir: dir,
        control,
        ring: KeyRing::parse(MASTER_KEY).unwrap(),
        host_id,
        token_endpoint: format!("http://{addr}/token"),
        upstream,
        shutdown,
    }
}

impl Harness {
    /// Stores a credential for (human, server) that expires in 10 s, with `refresh_token`.
    async fn store(&self, human: &str, server: &str, refresh_token: &str) {
        let stored = StoredCredential {
            tokens: Tokens {
                access_token: Secret::new("access-0"),
                token_type: "Bearer".into(),
                refresh_token: Some(Secret::new(refresh_token)),
                expires_in_seconds: Some(10),
                expires_at: Some(SystemTime::now() + Duration::from_secs(10)),
                scope: None,
            },
            client: ClientCredentials {
                client_id: "gateway".into(),
                client_secret: None,
                auth_method: TokenAuthMethod::None,
            },
            issuer: "http://upstream.test".into(),
            token_endpoint: self.token_endpoint.clone(),
            resource: "http://upstream.test/mcp".into(),
        };
        let sealed = self
            .ring
            .seal_to_bytes(
                &serde_json::to_vec(&stored).unwrap(),
                credential_aad(&self.host_id, human, server).as_bytes(),
            )
            .unwrap();
        let now = Context::system("test", "req").now_ms;
        self.control
            .store_upstream_credential(
                &Context::system("test", "req"),
                &self.host_id,
                human,
                server,
                sealed,
                now + 10_000,
            )
            .await
            .unwrap();
    }

    /// The access token stored now for (human, server), opened.
    async fn access_token(&self, human: &str, server: &str) -> Option<String> {
        let held = self
            .control
            .upstream_credential(&self.host_id, human, server)
            .await
            .unwrap()?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(held.credential_sealed)
            .unwrap();
        let json = self
            .ring
            .open_from_bytes(
                &sealed,
                credential_aad(&self.host_id, human, server).as_bytes(),
            )
            .unwrap();
        let stored: StoredCredential = serde_json::from_slice(&json).unwrap();
        Some(stored.tokens.access_token.expose().to_owned())
    }
}

fn settings(replica: &str) -> RefreshSettings {
    RefreshSettings::new(UrlPolicy::DEVELOPMENT, replica)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_refresh_each_rotating_token_exactly_once() {
    let h = harness().await;
    let pairs: Vec<(String, String)> = (0..6)
        .map(|i| (format!("HUMAN{i}"), format!("SERVER{i}")))
        .collect();
    for (i, (human, server)) in pairs.iter().enumerate() {
        let refresh = format!("rt{i}");
        h.upstream.valid.lock().unwrap().insert(refresh.clone(), 0);
        h.store(human, server, &refresh).await;
    }

    let (first, second) = (settings("cp-1"), settings("cp-2"));
    let (one, two) = tokio::join!(
        refresh_pass(&h.control, &h.ring, &first),
        refresh_pass(&h.control, &h.ring, &second),
    );
    assert_eq!(
        one.refreshed + two.refreshed,
        pairs.len(),
        "{one:?} {two:?}"
    );
    assert_eq!(one.failed + two.failed, 0, "{one:?} {two:?}");
    assert_eq!(one.revoked + two.revoked, 0, "{one:?} {two:?}");
    assert_eq!(
        *h.upstream.served.lock().unwrap(),
        u32::try_from(pairs.len()).unwrap(),
        "each rotating refresh token was spent exactly once"
    );
    for (human, server) in &pairs {
        assert_eq!(
            h.access_token(human, server).await.as_deref(),
            Some("access-1")
        );
    }
    // Refreshed for an hour: nothing is due now.
    let again = refresh_pass(&h.control, &h.ring, &settings("cp-1")).await;
    assert_eq!(again.refreshed, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_revokes_the_credential() {
    let h = harness().await;
    // The upstream does not know this refresh token (spent elsewhere, or revoked there).
    h.store("HUMAN", "SERVER", "unknown").await;
    let pass = refresh_pass(&h.control, &h.ring, &settings("cp-1")).await;
    assert_eq!(pass.revoked, 1, "{pass:?}");
    assert_eq!(h.access_token("HUMAN", "SERVER").await, None, "revoked");
}
