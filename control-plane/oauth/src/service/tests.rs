//! The whole protocol against the embedded store with the projector running: register,
//! authorize, code, token, refresh, and the revocations on reuse.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::time::Duration;

use portcullis_commands::control::{ControlOptions, SealError, SealedSecret, SecretSealer};
use portcullis_commands::{execute, load_state};
use portcullis_domain::session::{Session, SessionCommand};
use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_proto::events::v1::SessionStarted;
use portcullis_store::{Bucket, CommandId, EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use portcullis_tokens::{Verifier, VerifyingKey};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::*;
use crate::code::{KvCodeLedger, OAUTH_BUCKET};

const MASTER_KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const ISSUER: &str = "http://127.0.0.1:8080";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const HUMAN: &str = "01JD8X3T7Q9B2M4N6P8R0S2T4V";

/// Seals with the test key ring, as the binary's sealer does with its own.
struct RingSealer(KeyRing);

impl SecretSealer for RingSealer {
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        self.0
            .seal(plaintext, associated_data)
            .map(|sealed| SealedSecret {
                key_id: sealed.key_id,
                sealed: sealed.bytes,
            })
            .map_err(|e| SealError::Failed(Box::new(e)))
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    control: Arc<Control>,
    service: OAuthService,
    host_id: String,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn ctx() -> Context {
    Context::system("oauth-test", "req")
}

fn ctx_at(now_ms: i64) -> Context {
    Context { now_ms, ..ctx() }
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
        let log: Arc<dyn EventLog> = store.clone();
        let kv: Arc<dyn ReadModelStore> = store.clone();
        let shutdown = CancellationToken::new();
        let projector =
            Projector::new(log.clone(), kv.clone(), ProjectorOptions::default()).unwrap();
        tokio::spawn(projector.run(shutdown.clone()));
        let ring = KeyRing::parse(MASTER_KEY).unwrap();
        let control = Arc::new(
            Control::new(
                log.clone(),
                kv.clone(),
                Arc::new(RingSealer(ring.clone())),
                ControlOptions::default(),
            )
            .unwrap(),
        );
        let host_id = portcullis_commands::bootstrap::ensure_default_host(log.as_ref(), &ctx())
            .await
            .unwrap()
            .host_id;
        // The bootstrap writes straight to the log: wait for the read models.
        for _ in 0..100 {
            if control.oauth_host(&host_id).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ledger = KvCodeLedger::new(kv, Bucket::new(OAUTH_BUCKET).unwrap())
            .await
            .unwrap();
        let urls = PublicUrls::dev("127.0.0.1:8080".parse().unwrap());
        let service = OAuthService::new(control.clone(), ring, urls, Arc::new(ledger));
        Self {
            _dir: dir,
            store,
            control,
            service,
            host_id,
            shutdown,
        }
    }

    /// Registers mcp-remote's payload; its client id.
    async fn register(&self) -> String {
        let body = json!({
            "client_name": "MCP CLI Proxy",
            "redirect_uris": ["http://localhost:33419/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "software_id": "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
            "software_version": "0.15.1"
        });
        let response = self
            .service
            .register(&ctx(), &self.host_id, None, body.to_string().as_bytes())
            .await
            .unwrap();
        response["client_id"].as_str().unwrap().to_owned()
    }

    /// Starts a consent session for the client, as the consent flow will.
    async fn session(&self, client_id: &str) -> String {
        let client = self
            .control
            .oauth_client(&self.host_id, client_id)
            .await
            .unwrap()
            .unwrap();
        let session_id = ulid_like();
        let started = SessionStarted {
            session_id: session_id.clone(),
            human_id: HUMAN.into(),
            agent_id: client.agent_id,
            client_id: client_id.into(),
            server_id: "01JD8X4A1B2C3D4E5F6G7H8J9K".into(),
            trust_level: 1,
            started_at_ms: ctx().now_ms,
            idle_timeout_seconds: 3600,
            absolute_timeout_seconds: 7200,
        };
        let subject = portcullis_proto::subjects::session(&self.host_id, &session_id).unwrap();
        execute::<Session>(
            self.store.as_ref(),
            &ctx(),
            &subject,
            &CommandId::parse(&format!("test-{session_id}")).unwrap(),
            &SessionCommand::Start(started),
        )
        .await
        .unwrap();
        session_id
    }

    async fn session_state(&self, session_id: &str) -> Session {
        let subject = portcullis_proto::subjects::session(&self.host_id, session_id).unwrap();
        load_state::<Session>(self.store.as_ref(), &subject)
            .await
            .unwrap()
            .0
    }

    /// Authorizes with the given query changes, approves, and returns the code.
    async fn code(&self, client_id: &str, session_id: &str, now_ms: i64) -> String {
        let query = format!(
            "response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A40000%2Foauth%2Fcallback\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&state=s1&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fmcp&scope=mcp"
        );
        let request = self.service.authorize(&self.host_id, &query).await.unwrap();
        let location = self
            .service
            .issue_code(&ctx_at(now_ms), &request, session_id, HUMAN)
            .unwrap();
        let location = Url::parse(&location).unwrap();
        assert_eq!(location.port(), Some(40000));
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("state").as_deref(), Some("s1"));
        assert_eq!(get("iss").as_deref(), Some(ISSUER));
        get("code").unwrap()
    }

    async fn exchange(
        &self,
        client_id: &str,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, TokenError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", client_id),
                ("code_verifier", verifier),
                ("redirect_uri", "http://localhost:40000/oauth/callback"),
                ("resource", "http://127.0.0.1:8080/mcp"),
            ])
            .finish();
        self.service
            .token(&ctx(), &self.host_id, body.as_bytes())
            .await
    }

    async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<TokenResponse, TokenError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client_id),
            ])
            .finish();
        self.service
            .token(&ctx(), &self.host_id, body.as_bytes())
            .await
    }

    async fn verifier(&self) -> Verifier {
        let host = self.control.oauth_host(&self.host_id).await.unwrap();
        let keys = host
            .signing_keys
            .iter()
            .map(|k| VerifyingKey::from_hex(&k.kid, &k.algorithm, &k.public_key).unwrap());
        Verifier::new(ISSUER.into(), keys)
    }
}

fn ulid_like() -> String {
    format!(
        "S{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn a_registered_client_gets_tokens_for_its_consent_session() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let session_id = h.session(&client_id).await;
    let code = h.code(&client_id, &session_id, ctx().now_ms).await;
    let tokens = h.exchange(&client_id, &code, VERIFIER).await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 3600);
    assert_eq!(tokens.scope, "mcp");
    let claims = h
        .verifier()
        .await
        .verify(
            &tokens.access_token,
            u64::try_from(ctx().now_ms / 1000).unwrap(),
        )
        .unwrap();
    assert_eq!(claims.aud, "http://127.0.0.1:8080/mcp");
    assert_eq!(claims.sub, HUMAN);
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.sid, session_id);
    // The JWKS serves the key the token was signed with.
    let jwks = h.service.jwks(&h.host_id).await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let metadata = h.service.metadata(&h.host_id).await.unwrap();
    assert_eq!(metadata["issuer"], ISSUER);
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_its_session() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let session_id = h.session(&client_id).await;
    let code = h.code(&client_id, &session_id, ctx().now_ms).await;
    // A wrong verifier does not spend the code.
    let wrong = h
        .exchange(&client_id, &code, &"x".repeat(43))
        .await
        .unwrap_err();
    assert_eq!(wrong.error_code(), "invalid_grant");
    h.exchange(&client_id, &code, VERIFIER).await.unwrap();
    let again = h.exchange(&client_id, &code, VERIFIER).await.unwrap_err();
    assert_eq!(again.error_code(), "invalid_grant");
    assert_eq!(h.session_state(&session_id).await, Session::Revoked);
}

#[tokio::test]
async fn an_expired_code_or_another_clients_code_is_refused() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let other_client = h.register().await;
    let session_id = h.session(&client_id).await;
    let old = h
        .code(
            &client_id,
            &session_id,
            ctx().now_ms - code::CODE_TTL_MS - 1,
        )
        .await;
    let error = h.exchange(&client_id, &old, VERIFIER).await.unwrap_err();
    assert_eq!(error.error_code(), "invalid_grant");
    assert!(error.to_string().contains("expired"), "{error}");
    let code = h.code(&client_id, &session_id, ctx().now_ms).await;
    let error = h
        .exchange(&other_client, &code, VERIFIER)
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), "invalid_grant");
    // Nothing was spent: the right client still redeems it.
    h.exchange(&client_id, &code, VERIFIER).await.unwrap();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let session_id = h.session(&client_id).await;
    let code = h.code(&client_id, &session_id, ctx().now_ms).await;
    let first = h.exchange(&client_id, &code, VERIFIER).await.unwrap();
    let second = h.refresh(&client_id, &first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let claims = h
        .verifier()
        .await
        .verify(
            &second.access_token,
            u64::try_from(ctx().now_ms / 1000).unwrap(),
        )
        .unwrap();
    assert_eq!(claims.aud, "http://127.0.0.1:8080/mcp");
    let third = h.refresh(&client_id, &second.refresh_token).await.unwrap();
    // The first token comes back: theft assumed, the session ends.
    let reused = h
        .refresh(&client_id, &first.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(reused.error_code(), "invalid_grant");
    assert_eq!(h.session_state(&session_id).await, Session::Revoked);
    let after = h
        .refresh(&client_id, &third.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(after.error_code(), "invalid_grant");
}

#[tokio::test]
async fn a_forged_refresh_token_or_a_foreign_resource_changes_nothing() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let session_id = h.session(&client_id).await;
    let code = h.code(&client_id, &session_id, ctx().now_ms).await;
    let tokens = h.exchange(&client_id, &code, VERIFIER).await.unwrap();
    let forged = format!("prt1.{session_id}.{}", "A".repeat(43));
    assert_eq!(
        h.refresh(&client_id, &forged)
            .await
            .unwrap_err()
            .error_code(),
        "invalid_grant"
    );
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&resource=http%3A%2F%2F127.0.0.1%3A8080%2Fmcp%2Fother",
        tokens.refresh_token
    );
    let foreign = h
        .service
        .token(&ctx(), &h.host_id, body.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(foreign.error_code(), "invalid_target");
    // The session is intact and the token still current.
    assert!(matches!(
        h.session_state(&session_id).await,
        Session::Open(_)
    ));
    h.refresh(&client_id, &tokens.refresh_token).await.unwrap();
}

#[tokio::test]
async fn authorization_refuses_foreign_resources_and_unknown_clients() {
    let h = Harness::start().await;
    let client_id = h.register().await;
    let base = format!(
        "response_type=code&client_id={client_id}&redirect_uri=http%3A%2F%2Flocalhost%3A1%2Foauth%2Fcallback\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=s"
    );
    let foreign = h
        .service
        .authorize(
            &h.host_id,
            &format!("{base}&resource=https%3A%2F%2Fevil.example%2Fmcp"),
        )
        .await;
    assert!(
        matches!(foreign, Err(AuthorizeError::Redirect(ref r)) if r.error == "invalid_target"),
        "{foreign:?}"
    );
    let unknown = h
        .service
        .authorize(&h.host_id, &base.replace(&client_id, "nobody"))
        .await;
    assert_eq!(unknown, Err(AuthorizeError::Page(PageError::UnknownClient)));
    let no_host = h.service.authorize("no-such-host-0000", &base).await;
    assert_eq!(no_host, Err(AuthorizeError::Page(PageError::UnknownHost)));
}

#[tokio::test]
async fn registration_refuses_dangerous_uris_and_unknown_hosts() {
    let h = Harness::start().await;
    let body = json!({ "redirect_uris": ["javascript:alert(1)"] }).to_string();
    let error = h
        .service
        .register(&ctx(), &h.host_id, None, body.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), "invalid_redirect_uri");
    let body = json!({ "redirect_uris": ["http://127.0.0.1/"] }).to_string();
    let error = h
        .service
        .register(&ctx(), "no-such-host-0000", None, body.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(error, RegistrationError::HostNotFound);
}
