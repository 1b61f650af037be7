//! Service tests against the embedded store with the projector running, as in `portcullis
//! dev`: every write waits for the read models, so every read below sees it.
//!
//! `Harness` holds one store, one projector task and one `Control`; builders make the
//! organizations, admins, hosts, servers and humans the tests start from.

use std::sync::Arc;

use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1 as pb;
use portcullis_store::EventLog;
use portcullis_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

use super::*;

mod agents;
mod hosts;
mod humans;
mod idempotency;
mod oauth;
mod servers;
mod tenancy;
mod tokens;
mod validation;

/// A sealer for tests: "seals" by reversing the bytes, under key id `test-key`.
struct ReversingSealer;

impl SecretSealer for ReversingSealer {
    fn seal(&self, plaintext: &[u8], _associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        Ok(SealedSecret {
            key_id: "test-key".to_owned(),
            sealed: plaintext.iter().rev().copied().collect(),
        })
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    control: Arc<Control>,
    shutdown: CancellationToken,
    projector: tokio::task::JoinHandle<Result<(), portcullis_projector::ProjectorError>>,
}

impl Harness {
    async fn start() -> Self {
        Self::with_sealer(Arc::new(ReversingSealer)).await
    }

    async fn with_sealer(sealer: Arc<dyn SecretSealer>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
        let log: Arc<dyn EventLog> = store.clone();
        let kv: Arc<dyn portcullis_store::ReadModelStore> = store.clone();
        let shutdown = CancellationToken::new();
        let projector = Projector::new(log.clone(), kv.clone(), ProjectorOptions::default())
            .expect("projector");
        let projector = tokio::spawn(projector.run(shutdown.clone()));
        let control =
            Control::new(log, kv, sealer, ControlOptions::default()).expect("control options");
        Self {
            _dir: dir,
            store,
            control: Arc::new(control),
            shutdown,
            projector,
        }
    }

    /// The log head: how many events were recorded.
    async fn head(&self) -> u64 {
        self.store.head().await.expect("head")
    }

    /// An admin token with `secret` in a new organization `org_name`; the principal after it
    /// joined.
    async fn admin(&self, secret: &str, org_name: &str) -> Principal {
        let context = Context::system("test", "setup");
        self.control
            .ensure_admin_token(&context, secret, &[], "test")
            .await
            .expect("token");
        let principal = self.control.authenticate(secret).await.expect("auth");
        self.control
            .create_organization(&principal, &ctx(&principal), None, org_name)
            .await
            .expect("organization");
        self.control.authenticate(secret).await.expect("auth")
    }

    async fn host(&self, principal: &Principal, prefix: &str) -> String {
        self.control
            .create_host(
                principal,
                &ctx(principal),
                None,
                CreateHost {
                    prefix: prefix.to_owned(),
                    ..CreateHost::default()
                },
            )
            .await
            .expect("host")
            .host_id
    }

    async fn server(&self, principal: &Principal, host_id: &str, key: &str) -> ServerView {
        self.control
            .import_server(principal, &ctx(principal), None, host_id, import(Some(key)))
            .await
            .expect("import")
    }

    async fn human(&self, principal: &Principal, host_id: &str, email: &str) -> HumanView {
        self.control
            .add_human(principal, &ctx(principal), None, host_id, email)
            .await
            .expect("human")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.projector
            .await
            .expect("projector task")
            .expect("projector ran cleanly");
    }
}

fn ctx(principal: &Principal) -> Context {
    Context::admin(principal, "req-test")
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).expect("valid key")
}

fn auto(keyword: &str) -> pb::Classification {
    pb::Classification {
        kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
            matched_keyword: keyword.to_owned(),
            reason: format!("name contains {keyword:?}"),
        })),
    }
}

/// A discovered, auto-classified, enabled tool.
fn tool(name: &str, level: TrustLevel) -> pb::Tool {
    pb::Tool {
        name: name.to_owned(),
        description: format!("{name} does things"),
        input_schema_sha256: vec![7; 32],
        trust_level: level.into(),
        enabled: true,
        classification: Some(auto("")),
    }
}

/// An import of "GitHub" at a fixed URL with two tools.
fn import(key: Option<&str>) -> ImportServer {
    ImportServer {
        url: "https://mcp.github.example/mcp".to_owned(),
        key: key.map(str::to_owned),
        name: None,
        description: None,
        tool_overrides: Vec::new(),
        oauth: None,
        timeout_seconds: None,
        discovered: DiscoveredServer {
            name: Some("GitHub".to_owned()),
            description: Some("Issues and pull requests".to_owned()),
            tools: vec![
                tool("list_issues", TrustLevel::Low),
                tool("delete_repo", TrustLevel::High),
            ],
        },
    }
}

/// Asserts `result` is `NotFound` of `what`.
#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, ControlError>, what: &str) {
    match result {
        Err(ControlError::NotFound { what: got, .. }) if got == what => {}
        other => panic!("expected {what} not found, got {other:?}"),
    }
}

/// Asserts `result` is `Invalid` naming `field`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, ControlError>, field: &str) {
    match result {
        Err(ControlError::Invalid { field: got, .. }) if got == field => {}
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}
