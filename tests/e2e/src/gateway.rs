//! An in-process gateway for end-to-end tests of the MCP path: the embedded store, the
//! projector, the control service and one or more data-plane replicas on loopback ports, all
//! sharing one store, plus what the consent flow will do (register an agent, start a session,
//! mint its access token) done directly through the control service's test support.
//!
//! The data planes are the real `portcullis_data_plane::DataPlane` behind real sockets; only
//! the browser consent (issue 5) is replaced by direct writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_api::flows::recorded_tools;
use portcullis_commands::Context;
use portcullis_commands::bootstrap::{DEFAULT_ORG_ID, ensure_default_host};
use portcullis_commands::control::{
    Control, ControlOptions, DiscoveredServer, ImportServer, Principal, SealError, SealedSecret,
    SecretSealer, ServerView,
};
use portcullis_data_plane::replica::{Replica, ReplicaConfig};
use portcullis_data_plane::{Config, DataPlane};
use portcullis_projector::{Buckets, Projector, ProjectorOptions};
use portcullis_proto::TrustLevel;
use portcullis_secrets::KeyRing;
use portcullis_store::{AuditLog, EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use portcullis_tokens::PublicUrls;
use portcullis_upstream::{DiscoverOptions, UrlPolicy};
use tokio_util::sync::CancellationToken;

/// A master key for tests.
pub const TEST_MASTER_KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// An agent connected with a consent session, as the consent flow leaves it.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The agent.
    pub agent_id: String,
    /// The consent session.
    pub session_id: String,
    /// A fresh access token for it (audience: the host's `/mcp`).
    pub token: String,
}

/// One data-plane replica serving on a loopback port.
#[derive(Debug)]
pub struct ReplicaServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The proxy (for metrics).
    pub proxy: DataPlane,
}

impl ReplicaServer {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Seals with the test key ring (the binary's sealer does the same with its own).
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

/// What every replica shares.
#[derive(Clone)]
struct Shared {
    store: Arc<SqliteStore>,
    ring: KeyRing,
    public_urls: PublicUrls,
    max_staleness: Duration,
    shutdown: CancellationToken,
}

/// The gateway.
pub struct Gateway {
    /// The embedded store.
    pub store: Arc<SqliteStore>,
    /// The control service.
    pub control: Arc<Control>,
    /// The master key ring.
    pub ring: KeyRing,
    /// The default host.
    pub host_id: String,
    /// An admin of the default organization.
    pub admin: Principal,
    /// The first replica (its address is the default host's public URL).
    pub primary: ReplicaServer,
    shared: Shared,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("host_id", &self.host_id)
            .field("primary", &self.primary.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn context() -> Context {
    Context::system("e2e", &ulid_like())
}

fn ulid_like() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// Seconds since the epoch.
pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Gateway {
    /// Starts everything with a 2 s freshness bound.
    pub async fn start() -> Gateway {
        Gateway::start_with(Duration::from_secs(2)).await
    }

    /// Starts everything; replicas refuse requests after `max_staleness` without the store.
    pub async fn start_with(max_staleness: Duration) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let ControlSide {
            store,
            control,
            ring,
            host_id,
            admin,
            projector: _,
        } = control_side(&dir.path().join("p.db"), &shutdown).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            store: store.clone(),
            ring: ring.clone(),
            public_urls: PublicUrls::dev(addr),
            max_staleness,
            shutdown: shutdown.clone(),
        };
        let primary = serve_replica(&shared, listener).await;
        Gateway {
            store,
            control,
            ring,
            host_id,
            admin,
            primary,
            shared,
            shutdown,
            _dir: dir,
        }
    }

    /// Another data-plane replica over the same store, on its own port.
    pub async fn start_replica(&self) -> ReplicaServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        serve_replica(&self.shared, listener).await
    }

    /// The default host's MCP URL (the primary replica).
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.primary.url())
    }

    /// Discovers and imports the upstream at `url` under `key`; every tool auto-classified.
    pub async fn import(&self, url: &str, key: &str) -> ServerView {
        import_upstream(&self.control, &self.admin, &self.host_id, url, key).await
    }

    /// Sets a tool's level and whether it is enabled.
    pub async fn set_tool(
        &self,
        server_id: &str,
        tool: &str,
        level: Option<TrustLevel>,
        enabled: Option<bool>,
    ) {
        self.control
            .update_tool(
                &self.admin,
                &context(),
                None,
                &self.host_id,
                server_id,
                tool,
                level,
                enabled,
            )
            .await
            .expect("update tool");
    }

    /// Pre-authorizes a human; returns the id.
    pub async fn add_human(&self, email: &str) -> String {
        self.control
            .add_human(&self.admin, &context(), None, &self.host_id, email)
            .await
            .expect("add human")
            .human_id
    }

    /// Grants `human_id` access to `server_id` up to `level`.
    pub async fn grant(&self, human_id: &str, server_id: &str, level: TrustLevel) {
        self.control
            .put_grant(
                &self.admin,
                &context(),
                None,
                &self.host_id,
                human_id,
                server_id,
                level,
            )
            .await
            .expect("grant");
    }

    /// Revokes a grant.
    pub async fn revoke_grant(&self, human_id: &str, server_id: &str) {
        self.control
            .delete_grant(
                &self.admin,
                &context(),
                None,
                &self.host_id,
                human_id,
                server_id,
            )
            .await
            .expect("revoke grant");
    }

    /// Connects an agent of `human_id` to `server_id` at `level`, as consent would.
    pub async fn connect(&self, human_id: &str, server_id: &str, level: TrustLevel) -> Connection {
        let agent_id = self
            .control
            .test_register_agent(&context(), &self.host_id, "agent", Some(human_id))
            .await
            .expect("agent");
        let session_id = self
            .control
            .test_start_session(
                &context(),
                &self.host_id,
                human_id,
                &agent_id,
                server_id,
                level,
            )
            .await
            .expect("session");
        let token = self.token(&session_id, &self.mcp_url(), 600).await;
        Connection {
            agent_id,
            session_id,
            token,
        }
    }

    /// A token for `session_id` with audience `audience`, valid `ttl_seconds` from now.
    pub async fn token(&self, session_id: &str, audience: &str, ttl_seconds: u64) -> String {
        self.control
            .test_access_token(
                &self.ring,
                &self.host_id,
                session_id,
                &self.shared.public_urls.host_base(&self.host_id, true),
                audience,
                now_seconds(),
                ttl_seconds,
            )
            .await
            .expect("token")
    }

    /// The audit log.
    pub fn audit(&self) -> Arc<dyn AuditLog> {
        self.store.clone()
    }
}

async fn serve_replica(shared: &Shared, listener: tokio::net::TcpListener) -> ReplicaServer {
    let addr = listener.local_addr().expect("addr");
    let buckets = Buckets::new(None).expect("buckets");
    let replica = Replica::start(
        ReplicaConfig::new(
            buckets.read_models().cloned().collect(),
            shared.max_staleness,
        )
        .with_projection(
            buckets.projector().clone(),
            portcullis_store::Key::new("checkpoint.read_models").expect("key"),
        )
        .with_pending_changes(buckets.clone()),
        shared.store.clone(),
        shared.store.clone(),
        shared.shutdown.clone(),
    );
    let audit: Arc<dyn AuditLog> = shared.store.clone();
    let mut config = Config::new(
        shared.public_urls.clone(),
        DEFAULT_ORG_ID,
        UrlPolicy {
            allow_private: true,
        },
    );
    config.upstream_timeout = Duration::from_secs(20);
    let proxy = DataPlane::new(config, replica.clone(), buckets, shared.ring.clone(), audit)
        .expect("data plane");
    let router = proxy.router();
    let stop = shared.shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    // Ready once caught up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while replica.freshness().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ReplicaServer { addr, proxy }
}

/// What `seed_dev_data_dir` leaves for the test.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// The default host.
    pub host_id: String,
    /// The imported server.
    pub server_id: String,
    /// An access token of a session at `level` (valid for a day), for `http://<listen>/mcp`.
    pub token: String,
}

/// Prepares `data_dir` for `portcullis dev --listen <listen>`, as an admin and a consenting
/// human would: the test master key, the default host and its signing key, the upstream at
/// `upstream_url` imported as `key`, a human granted High, and an agent's session at `level`.
/// The store is closed again before this returns, so `dev` can open it.
pub async fn seed_dev_data_dir(
    data_dir: &std::path::Path,
    listen: SocketAddr,
    upstream_url: &str,
    key: &str,
    level: TrustLevel,
) -> Seeded {
    std::fs::create_dir_all(data_dir).expect("data dir");
    std::fs::write(data_dir.join("master-key"), TEST_MASTER_KEY).expect("master key file");
    let shutdown = CancellationToken::new();
    let ControlSide {
        store,
        control,
        ring,
        host_id,
        admin,
        projector,
    } = control_side(&data_dir.join("portcullis.db"), &shutdown).await;
    let server = import_upstream(&control, &admin, &host_id, upstream_url, key).await;
    let human = control
        .add_human(&admin, &context(), None, &host_id, "seed@example.com")
        .await
        .expect("human")
        .human_id;
    control
        .put_grant(
            &admin,
            &context(),
            None,
            &host_id,
            &human,
            &server.server_id,
            TrustLevel::High,
        )
        .await
        .expect("grant");
    let agent = control
        .test_register_agent(&context(), &host_id, "seeded", Some(&human))
        .await
        .expect("agent");
    let session = control
        .test_start_session(
            &context(),
            &host_id,
            &human,
            &agent,
            &server.server_id,
            level,
        )
        .await
        .expect("session");
    let urls = PublicUrls::dev(listen);
    let token = control
        .test_access_token(
            &ring,
            &host_id,
            &session,
            &urls.host_base(&host_id, true),
            &urls.mcp_url(&host_id, true),
            now_seconds(),
            86_400,
        )
        .await
        .expect("token");
    shutdown.cancel();
    let _ = projector.await;
    drop(control);
    drop(store);
    Seeded {
        host_id,
        server_id: server.server_id,
        token,
    }
}

/// The write side of a gateway over one SQLite file: the store with its projector running,
/// the control service (sealing with the test key ring), and the default host with its
/// token-signing key.
struct ControlSide {
    store: Arc<SqliteStore>,
    control: Arc<Control>,
    ring: KeyRing,
    host_id: String,
    admin: Principal,
    projector: tokio::task::JoinHandle<Result<(), portcullis_projector::ProjectorError>>,
}

async fn control_side(db: &std::path::Path, shutdown: &CancellationToken) -> ControlSide {
    let store = Arc::new(SqliteStore::open(db).expect("open store"));
    let log: Arc<dyn EventLog> = store.clone();
    let kv: Arc<dyn ReadModelStore> = store.clone();
    for bucket in Buckets::new(None).expect("buckets").read_models() {
        kv.ensure_bucket(bucket).await.expect("bucket");
    }
    let projector =
        Projector::new(log.clone(), kv.clone(), ProjectorOptions::default()).expect("projector");
    let projector = tokio::spawn(projector.run(shutdown.clone()));
    let TestControl {
        control,
        ring,
        host_id,
        admin,
    } = control_over(log, kv).await;
    ControlSide {
        store,
        control,
        ring,
        host_id,
        admin,
        projector,
    }
}

/// The control service of a test over a store whose projector runs elsewhere (e.g. the
/// `portcullis projector` process on JetStream): sealing with `TEST_MASTER_KEY`, the default
/// host bootstrapped with its token-signing key, and an admin of the default organization.
pub struct TestControl {
    /// The control service.
    pub control: Arc<Control>,
    /// The key ring it seals with.
    pub ring: KeyRing,
    /// The default host.
    pub host_id: String,
    /// An admin of the default organization.
    pub admin: Principal,
}

impl std::fmt::Debug for TestControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestControl")
            .field("host_id", &self.host_id)
            .finish_non_exhaustive()
    }
}

/// See `TestControl`.
pub async fn control_over(log: Arc<dyn EventLog>, kv: Arc<dyn ReadModelStore>) -> TestControl {
    let ring = KeyRing::parse(TEST_MASTER_KEY).expect("key ring");
    let control = Arc::new(
        Control::new(
            log.clone(),
            kv,
            Arc::new(RingSealer(ring.clone())),
            ControlOptions::default(),
        )
        .expect("control"),
    );
    let host = ensure_default_host(log.as_ref(), &context())
        .await
        .expect("default host");
    control
        .ensure_signing_key(&context(), &host.host_id)
        .await
        .expect("signing key");
    TestControl {
        control,
        ring,
        host_id: host.host_id,
        admin: Principal::for_tests("e2e-admin", &[DEFAULT_ORG_ID]),
    }
}

/// Discovers the upstream at `url` and imports it under `key`, every tool auto-classified.
pub async fn import_upstream(
    control: &Control,
    admin: &Principal,
    host_id: &str,
    url: &str,
    key: &str,
) -> ServerView {
    let discovery = portcullis_upstream::discover(
        url,
        UrlPolicy {
            allow_private: true,
        },
        &DiscoverOptions::default(),
    )
    .await
    .expect("discover upstream");
    control
        .import_server(
            admin,
            &context(),
            None,
            host_id,
            ImportServer {
                url: url.to_owned(),
                key: Some(key.to_owned()),
                name: None,
                description: None,
                tool_overrides: Vec::new(),
                oauth: None,
                timeout_seconds: None,
                discovered: DiscoveredServer {
                    name: Some(discovery.server.name.clone()),
                    description: None,
                    tools: recorded_tools(&discovery).expect("tools"),
                },
            },
        )
        .await
        .expect("import")
}
