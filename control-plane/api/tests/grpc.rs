//! The gRPC surface through real gRPC clients: `grpcurl` 1.8.6 (reflection v1alpha) and
//! `buf curl` (reflection v1), against `portcullis_api::router` served on a loopback port with
//! the embedded SQLite store and the projector running, as in `portcullis dev`.
//!
//! The clients come from `scripts/lib/tools.sh` (`ensure_grpc_clients`), which exports
//! `PORTCULLIS_GRPCURL` and `PORTCULLIS_BUF`; the import tests also run the MCP peers
//! `server-everything` and the TS SDK's OAuth example (`ensure_mcp_peers`, started by
//! `test_fixtures::McpPeer`). The upstream OAuth tests take the REST flow's path through
//! gRPC: DiscoverServer → the authorization URL → the "browser"
//! (`test_fixtures::oauth_browser`) → the REST callback on the same port → ImportServer with
//! the `authorization` it answered.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_api::{ApiState, PublicUrls, UpstreamOAuthConfig};
use portcullis_commands::Context;
use portcullis_commands::control::{
    Control, ControlOptions, NoSecretSealer, SealError, SealedSecret, SecretSealer,
};
use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_secrets::{KeyRing, Sealed};
use portcullis_store::{AuditDecision, AuditEntry, AuditLog, EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use portcullis_upstream::DiscoverOptions;
use portcullis_upstream::url_guard::UrlPolicy;
use serde_json::{Value, json};
use test_fixtures::{McpPeer, installed_tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use url::Url;

/// The control services, as reflection must list them.
const SERVICES: [&str; 6] = [
    "portcullis.control.v1.OrganizationService",
    "portcullis.control.v1.HostService",
    "portcullis.control.v1.ServerService",
    "portcullis.control.v1.HumanService",
    "portcullis.control.v1.AgentService",
    "portcullis.control.v1.AuditService",
];

/// Where the upstream's authorization server sends the admin's browser back (REST).
const CALLBACK: &str = "/api/v1/upstream-oauth/callback";

/// Seals with a key ring, as `portcullis` does with the deployment's master key.
struct KeyRingSealer(Arc<KeyRing>);

impl SecretSealer for KeyRingSealer {
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        let sealed = self
            .0
            .seal(plaintext, associated_data)
            .map_err(|e| SealError::Failed(Box::new(e)))?;
        Ok(SealedSecret {
            key_id: sealed.key_id,
            sealed: sealed.bytes,
        })
    }
}

/// A failed call as a client reported it: the gRPC code, normalized to lower case without
/// separators (`notfound`, `invalidargument`), and the message.
#[derive(Debug)]
struct Failure {
    code: String,
    message: String,
}

/// Which real client makes a call.
#[derive(Clone, Copy, Debug)]
enum Client {
    Grpcurl,
    Buf,
}

/// The API served on a loopback port over a fresh store, with its projector.
struct Gateway {
    addr: SocketAddr,
    store: Arc<SqliteStore>,
    control: Arc<Control>,
    shutdown: CancellationToken,
    projector: tokio::task::JoinHandle<Result<(), portcullis_projector::ProjectorError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Without a master key: no upstream OAuth browser flow, no secrets sealed.
    async fn start() -> Gateway {
        Gateway::launch(None).await
    }

    /// With `key_ring` as the master key: secrets are sealed with it, and the upstream OAuth
    /// browser flow comes back to this gateway's callback; its handles live `handle_ttl`.
    async fn with_upstream_oauth(key_ring: Arc<KeyRing>, handle_ttl: Duration) -> Gateway {
        Gateway::launch(Some((key_ring, handle_ttl))).await
    }

    async fn launch(upstream_oauth: Option<(Arc<KeyRing>, Duration)>) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open store"));
        let log: Arc<dyn EventLog> = store.clone();
        let kv: Arc<dyn ReadModelStore> = store.clone();
        let shutdown = CancellationToken::new();
        let projector = Projector::new(log.clone(), kv.clone(), ProjectorOptions::default())
            .expect("projector");
        let projector = tokio::spawn(projector.run(shutdown.clone()));
        let sealer: Arc<dyn SecretSealer> = match &upstream_oauth {
            Some((key_ring, _)) => Arc::new(KeyRingSealer(key_ring.clone())),
            None => Arc::new(NoSecretSealer),
        };
        let control =
            Arc::new(Control::new(log, kv, sealer, ControlOptions::default()).expect("control"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let upstream_oauth = match upstream_oauth {
            Some((key_ring, handle_ttl)) => UpstreamOAuthConfig {
                key_ring: Some(key_ring),
                callback_base: Some(format!("http://{addr}")),
                handle_ttl,
                ..UpstreamOAuthConfig::default()
            },
            None => UpstreamOAuthConfig::default(),
        };
        let audit: Arc<dyn AuditLog> = store.clone();
        let state = ApiState {
            control: control.clone(),
            url_policy: UrlPolicy {
                allow_private: true,
            },
            discover: DiscoverOptions::default(),
            public_urls: PublicUrls::dev(addr),
            audit: Some(audit),
            upstream_oauth,
        };
        let router = portcullis_api::router(state);
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Gateway {
            addr,
            store,
            control,
            shutdown,
            projector,
            server,
            _dir: dir,
        }
    }

    /// A new admin token (no organization yet); returns its secret.
    async fn token(&self, name: &str) -> String {
        let secret = format!("pcat_test_{name}_{}", "0".repeat(32));
        self.control
            .ensure_admin_token(&Context::system("test", "setup"), &secret, &[], name)
            .await
            .expect("admin token");
        secret
    }

    /// A new admin token in a new organization (created over gRPC); returns its secret.
    async fn admin(&self, name: &str) -> String {
        let token = self.token(name).await;
        let org = self
            .call(
                Client::Grpcurl,
                Some(&token),
                "OrganizationService/CreateOrganization",
                json!({ "name": format!("{name} Inc") }),
            )
            .await
            .expect("create organization");
        assert!(
            org["orgId"].as_str().is_some_and(|id| !id.is_empty()),
            "{org}"
        );
        token
    }

    /// A host of the admin holding `token`; returns its id.
    async fn host(&self, token: &str, prefix: &str) -> String {
        let host = self
            .call(
                Client::Buf,
                Some(token),
                "HostService/CreateHost",
                json!({ "prefix": prefix }),
            )
            .await
            .expect("create host");
        host["hostId"].as_str().expect("host id").to_owned()
    }

    /// Calls `portcullis.control.v1.<method>` with `body`, the bearer `token` (if any) and
    /// `headers`.
    async fn call(
        &self,
        client: Client,
        token: Option<&str>,
        method: &str,
        body: Value,
    ) -> Result<Value, Failure> {
        self.call_with(
            client,
            token,
            &[],
            &format!("portcullis.control.v1.{method}"),
            body,
        )
        .await
    }

    async fn call_with(
        &self,
        client: Client,
        token: Option<&str>,
        headers: &[(&str, &str)],
        method: &str,
        body: Value,
    ) -> Result<Value, Failure> {
        let mut all: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        if let Some(token) = token {
            all.push(format!("authorization: Bearer {token}"));
        }
        let mut args: Vec<String> = Vec::new();
        match client {
            Client::Grpcurl => {
                args.extend(["-plaintext".to_owned(), "-d".to_owned(), body.to_string()]);
                for header in all {
                    args.extend(["-H".to_owned(), header]);
                }
                args.extend([self.addr.to_string(), method.to_owned()]);
            }
            Client::Buf => {
                args.extend(
                    [
                        "curl",
                        "--protocol",
                        "grpc",
                        "--http2-prior-knowledge",
                        "-d",
                    ]
                    .map(str::to_owned),
                );
                args.push(body.to_string());
                for header in all {
                    args.extend(["-H".to_owned(), header]);
                }
                args.push(format!("http://{}/{method}", self.addr));
            }
        }
        let (ok, stdout, stderr) = run(client, &args).await;
        if ok {
            let text = stdout.trim();
            return Ok(if text.is_empty() {
                json!({})
            } else {
                serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{client:?} printed non-JSON ({e}): {text}"))
            });
        }
        Err(parse_failure(client, &stderr))
    }

    /// The admin's browser at `authorization_url` (from DiscoverServer): approves, comes back
    /// to this gateway's callback, and returns what the callback answered.
    async fn authorize(&self, authorization_url: &str) -> Value {
        let location = test_fixtures::oauth_browser::approve(authorization_url)
            .await
            .expect("the authorization server redirects");
        let callback = location
            .strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or_else(|| panic!("not a redirect to this gateway: {location}"));
        assert!(callback.starts_with(&format!("{CALLBACK}?")), "{location}");
        let (status, body) = http_get(self.addr, callback).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("callback JSON")
    }

    /// Stops the server and the projector; the projector must have run cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        self.server
            .await
            .expect("server task")
            .expect("server ran cleanly");
        self.projector
            .await
            .expect("projector task")
            .expect("projector ran cleanly");
    }
}

/// Runs a client with `args`; returns whether it succeeded, its stdout and its stderr.
async fn run(client: Client, args: &[String]) -> (bool, String, String) {
    let program = match client {
        Client::Grpcurl => installed_tool("PORTCULLIS_GRPCURL", "ensure_grpc_clients"),
        Client::Buf => installed_tool("PORTCULLIS_BUF", "ensure_grpc_clients"),
    }
    .unwrap_or_else(|err| panic!("{err:#}"));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{client:?} {args:?} did not finish within 60 s"))
    .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The code and message of a failed call, from the client's error output.
fn parse_failure(client: Client, stderr: &str) -> Failure {
    let normalize = |code: &str| code.to_lowercase().replace(['_', ' '], "");
    match client {
        // ERROR:\n  Code: NotFound\n  Message: host "x" not found
        Client::Grpcurl => {
            let field = |name: &str| {
                stderr
                    .lines()
                    .find_map(|line| line.trim().strip_prefix(name))
                    .map(|rest| rest.trim().to_owned())
            };
            Failure {
                code: normalize(&field("Code:").unwrap_or_else(|| panic!("no code in: {stderr}"))),
                message: field("Message:").unwrap_or_default(),
            }
        }
        // {"code": "not_found", "message": "host \"x\" not found"}
        Client::Buf => {
            let start = stderr
                .find('{')
                .unwrap_or_else(|| panic!("no JSON error in: {stderr}"));
            let error: Value = serde_json::from_str(&stderr[start..])
                .unwrap_or_else(|e| panic!("bad JSON error ({e}) in: {stderr}"));
            Failure {
                code: normalize(error["code"].as_str().unwrap_or_default()),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            }
        }
    }
}

/// Asserts a call failed with `code` (normalized) and a message containing `needle`.
#[track_caller]
fn assert_failed(result: Result<Value, Failure>, code: &str, needle: &str) {
    match result {
        Err(failure) => {
            assert_eq!(failure.code, code, "{failure:?}");
            assert!(
                failure.message.contains(needle),
                "message should mention {needle:?}: {failure:?}"
            );
        }
        Ok(value) => panic!("expected {code}, got {value}"),
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status code and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

/// A fresh master key.
fn key_ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::parse(&portcullis_secrets::generate_key_text()).expect("a key ring"))
}

/// The value of the query parameter `key` of `url`.
fn query(url: &str, key: &str) -> Option<String> {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Opens a sealed value the way the gateway does (to find the secrets it must never show).
fn unseal(ring: &KeyRing, text: &str, purpose: &[u8]) -> Value {
    let mut parts = text.split('.');
    assert_eq!(parts.next(), Some("v1"), "{text}");
    let sealed = Sealed {
        key_id: parts.next().expect("a key id").to_owned(),
        bytes: URL_SAFE_NO_PAD
            .decode(parts.next().expect("sealed bytes"))
            .expect("base64url"),
    };
    serde_json::from_slice(&ring.open(&sealed, purpose).expect("opens")).expect("JSON")
}

/// `text` with its last character changed.
fn tampered(text: &str) -> String {
    let mut text = text.to_owned();
    let last = text.pop().expect("not empty");
    text.push(if last == 'A' { 'B' } else { 'A' });
    text
}

/// Discovers the OAuth upstream `url` in `host_id` over gRPC and authorizes it in the
/// "browser": the discovery and what the callback answered.
async fn discover_and_authorize(
    gateway: &Gateway,
    token: &str,
    host_id: &str,
    url: &str,
) -> (Value, Value) {
    let discovered = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/DiscoverServer",
            json!({ "hostId": host_id, "url": url }),
        )
        .await
        .expect("discover");
    assert_eq!(discovered["requiresOauth"], true, "{discovered}");
    let authorization_url = discovered["authorizationUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("an authorization URL: {discovered}"));
    let authorized = gateway.authorize(authorization_url).await;
    assert_eq!(authorized["status"], "authorized", "{authorized}");
    (discovered, authorized)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_to_grpcurl_v1alpha_and_buf_v1() {
    let gateway = Gateway::start().await;

    let (ok, listed, stderr) = run(
        Client::Grpcurl,
        &[
            "-plaintext".to_owned(),
            gateway.addr.to_string(),
            "list".to_owned(),
        ],
    )
    .await;
    assert!(ok, "grpcurl list failed: {stderr}");
    for service in SERVICES.iter().copied().chain([
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]) {
        assert!(
            listed.lines().any(|line| line.trim() == service),
            "{service} not in:\n{listed}"
        );
    }

    let (ok, methods, stderr) = run(
        Client::Buf,
        &[
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-methods",
            &format!("http://{}", gateway.addr),
        ]
        .map(str::to_owned),
    )
    .await;
    assert!(ok, "buf curl --list-methods failed: {stderr}");
    for method in [
        "portcullis.control.v1.OrganizationService/CreateOrganization",
        "portcullis.control.v1.HostService/CreateHost",
        "portcullis.control.v1.ServerService/ImportServer",
        "portcullis.control.v1.HumanService/PutGrant",
        "portcullis.control.v1.AgentService/DeleteAgent",
        "portcullis.control.v1.AuditService/QueryAudit",
        "grpc.health.v1.Health/Check",
    ] {
        assert!(
            methods.lines().any(|line| line.trim() == method),
            "{method} not in:\n{methods}"
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_service_serving() {
    let gateway = Gateway::start().await;
    for service in SERVICES.iter().copied().chain([""]) {
        for client in [Client::Buf, Client::Grpcurl] {
            let health = gateway
                .call_with(
                    client,
                    None,
                    &[],
                    "grpc.health.v1.Health/Check",
                    json!({ "service": service }),
                )
                .await
                .unwrap_or_else(|f| panic!("{client:?} health of {service:?}: {f:?}"));
            assert_eq!(health["status"], "SERVING", "{client:?} {service:?}");
        }
    }
    let unknown = gateway
        .call_with(
            Client::Buf,
            None,
            &[],
            "grpc.health.v1.Health/Check",
            json!({ "service": "no.such.Service" }),
        )
        .await;
    assert_failed(unknown, "notfound", "");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_host_adds_a_human_grants_and_lists_over_grpc() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();

    // Create a host (buf), honouring an idempotency key: the retry yields the same host.
    let create = |client| {
        gateway.call_with(
            client,
            Some(token),
            &[("idempotency-key", "create-acme-1")],
            "portcullis.control.v1.HostService/CreateHost",
            json!({ "prefix": "acme", "settings": { "allowedOrigins": ["https://app.acme.test"] } }),
        )
    };
    let host = create(Client::Buf).await.expect("create host");
    let again = create(Client::Grpcurl).await.expect("create host again");
    let host_id = host["hostId"].as_str().expect("host id").to_owned();
    assert!(host_id.starts_with("acme-"), "{host}");
    assert_eq!(
        again["hostId"], host["hostId"],
        "same idempotency key, same host"
    );
    assert_eq!(
        host["baseUrl"],
        format!("http://{host_id}.localhost:{}", gateway.addr.port())
    );
    assert_eq!(
        host["settings"]["allowedOrigins"],
        json!(["https://app.acme.test"])
    );

    // A server to grant on (imported through the service: no upstream needed here).
    let principal = gateway.control.authenticate(token).await.expect("auth");
    let server = gateway
        .control
        .import_server(
            &principal,
            &Context::admin(&principal, "test-import"),
            None,
            &host_id,
            portcullis_commands::control::ImportServer {
                url: "https://mcp.github.example/mcp".to_owned(),
                key: Some("github".to_owned()),
                name: None,
                description: None,
                tool_overrides: Vec::new(),
                oauth: None,
                timeout_seconds: None,
                discovered: portcullis_commands::control::DiscoveredServer::default(),
            },
        )
        .await
        .expect("import");

    // Add a human (grpcurl), grant (buf), and read it all back.
    let human = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HumanService/AddHuman",
            json!({ "hostId": host_id, "email": "Ada@Example.com" }),
        )
        .await
        .expect("add human");
    let human_id = human["humanId"].as_str().expect("human id").to_owned();
    assert_eq!(human["email"], "ada@example.com");
    assert_eq!(human["preAuthorized"], true);

    let grant = gateway
        .call(
            Client::Buf,
            Some(token),
            "HumanService/PutGrant",
            json!({
                "hostId": host_id, "humanId": human_id, "serverId": server.server_id,
                "maxTrustLevel": "TRUST_LEVEL_MEDIUM",
            }),
        )
        .await
        .expect("put grant");
    assert_eq!(grant["maxTrustLevel"], "TRUST_LEVEL_MEDIUM");

    let hosts = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HostService/ListHosts",
            json!({}),
        )
        .await
        .expect("list hosts");
    assert_eq!(hosts["hosts"][0]["hostId"], host_id.as_str());

    let humans = gateway
        .call(
            Client::Buf,
            Some(token),
            "HumanService/ListHumans",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list humans");
    assert_eq!(humans["humans"][0]["humanId"], human_id.as_str());

    let detail = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HumanService/GetHuman",
            json!({ "hostId": host_id, "humanId": human_id }),
        )
        .await
        .expect("get human");
    assert_eq!(detail["grants"][0]["serverId"], server.server_id.as_str());
    assert_eq!(detail["grants"][0]["maxTrustLevel"], "TRUST_LEVEL_MEDIUM");

    let servers = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/ListServers",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list servers");
    assert_eq!(servers["servers"][0]["key"], "github");
    let mcp_url = format!(
        "http://{host_id}.localhost:{}/mcp/github",
        gateway.addr.port()
    );
    assert_eq!(servers["servers"][0]["mcpUrl"], mcp_url.as_str());

    let config = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HostService/GetClientConfig",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("client config");
    assert_eq!(config["servers"][0]["mcpUrl"], mcp_url.as_str());
    let cursor: Value = serde_json::from_str(
        config["servers"][0]["snippets"]["cursor"]
            .as_str()
            .expect("a cursor snippet"),
    )
    .expect("snippet JSON");
    assert_eq!(
        cursor["config"]["mcpServers"]["github"]["args"][2],
        mcp_url.as_str()
    );
    assert!(
        config["host"]["mcpUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with("/mcp"))
    );

    // UNSPECIFIED is not a trust level.
    let unspecified = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HumanService/PutGrant",
            json!({ "hostId": host_id, "humanId": human_id, "serverId": server.server_id }),
        )
        .await;
    assert_failed(unspecified, "invalidargument", "max_trust_level");

    // Revoke the grant, then the human is gone after deletion.
    gateway
        .call(
            Client::Buf,
            Some(token),
            "HumanService/DeleteGrant",
            json!({ "hostId": host_id, "humanId": human_id, "serverId": server.server_id }),
        )
        .await
        .expect("delete grant");
    gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HumanService/DeleteHuman",
            json!({ "hostId": host_id, "humanId": human_id }),
        )
        .await
        .expect("delete human");
    let gone = gateway
        .call(
            Client::Buf,
            Some(token),
            "HumanService/GetHuman",
            json!({ "hostId": host_id, "humanId": human_id }),
        )
        .await;
    assert_failed(gone, "notfound", "human");
    gateway.stop().await;
}

/// The `x-request-id` values a verbose client printed for the call of `method` (grpcurl `-v`
/// on stdout; buf `-v` on stderr, one `(#n)` tag per stream, reflection's included; in
/// headers or, for a failure, trailers).
fn request_ids(output: &str, method: &str) -> Vec<String> {
    let post = format!("POST /{method}");
    let stream = output
        .lines()
        .find(|line| line.contains(&post))
        .and_then(|line| {
            let start = line.find("(#")?;
            let end = start + line[start..].find(')')?;
            Some(line[start..=end].to_owned())
        });
    output
        .lines()
        .filter(|line| {
            stream
                .as_ref()
                .is_none_or(|tag| line.contains(tag.as_str()))
        })
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(": ")?;
            let name = name.rsplit(' ').next()?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_returns_its_request_id_as_metadata() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let method = "portcullis.control.v1.HostService/ListHosts";
    let mut seen = Vec::new();
    for (client, authorization) in [
        (Client::Grpcurl, format!("authorization: Bearer {token}")),
        (Client::Grpcurl, "authorization: Bearer wrong".to_owned()),
        (Client::Buf, format!("authorization: Bearer {token}")),
        (Client::Buf, "authorization: Bearer wrong".to_owned()),
    ] {
        let args: Vec<String> = match client {
            Client::Grpcurl => vec![
                "-plaintext".into(),
                "-v".into(),
                "-d".into(),
                "{}".into(),
                "-H".into(),
                authorization.clone(),
                gateway.addr.to_string(),
                method.into(),
            ],
            Client::Buf => vec![
                "curl".into(),
                "-v".into(),
                "--protocol".into(),
                "grpc".into(),
                "--http2-prior-knowledge".into(),
                "-d".into(),
                "{}".into(),
                "-H".into(),
                authorization.clone(),
                format!("http://{}/{method}", gateway.addr),
            ],
        };
        let (ok, stdout, stderr) = run(client, &args).await;
        assert_eq!(
            ok,
            !authorization.ends_with("wrong"),
            "{client:?}: {stdout}{stderr}"
        );
        let ids = request_ids(&format!("{stdout}\n{stderr}"), method);
        assert_eq!(ids.len(), 1, "{client:?}: {stdout}{stderr}");
        assert!(
            ulid::Ulid::from_string(&ids[0]).is_ok(),
            "{client:?}: not a ULID: {}",
            ids[0]
        );
        seen.extend(ids);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "each call has its own id: {seen:?}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_unauthenticated() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    for client in [Client::Grpcurl, Client::Buf] {
        let missing = gateway
            .call(client, None, "HostService/ListHosts", json!({}))
            .await;
        assert_failed(missing, "unauthenticated", "admin token");
        let wrong = gateway
            .call(
                client,
                Some("pcat_not-a-real-token-000000000000"),
                "HostService/ListHosts",
                json!({}),
            )
            .await;
        assert_failed(wrong, "unauthenticated", "admin token");
        let not_bearer = gateway
            .call_with(
                client,
                None,
                &[("authorization", &format!("Basic {token}"))],
                "portcullis.control.v1.HostService/ListHosts",
                json!({}),
            )
            .await;
        assert_failed(not_bearer, "unauthenticated", "admin token");
    }
    // Authentication comes before validation: a bad idempotency key without a token is 401.
    let unauthenticated_write = gateway
        .call_with(
            Client::Buf,
            None,
            &[("idempotency-key", "has space")],
            "portcullis.control.v1.HostService/CreateHost",
            json!({ "prefix": "x" }),
        )
        .await;
    assert_failed(unauthenticated_write, "unauthenticated", "");
    let bad_key = gateway
        .call_with(
            Client::Buf,
            Some(&token),
            &[("idempotency-key", "x".repeat(200).as_str())],
            "portcullis.control.v1.HostService/CreateHost",
            json!({ "prefix": "x" }),
        )
        .await;
    assert_failed(bad_key, "invalidargument", "idempotency_key");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_host_is_not_found() {
    let gateway = Gateway::start().await;
    let acme = gateway.admin("acme").await;
    let globex = gateway.admin("globex").await;
    let acme_host = gateway.host(&acme, "acme").await;

    for (client, method, body) in [
        (
            Client::Grpcurl,
            "HostService/GetHost",
            json!({ "hostId": acme_host }),
        ),
        (
            Client::Buf,
            "HostService/DeleteHost",
            json!({ "hostId": acme_host }),
        ),
        (
            Client::Buf,
            "ServerService/ListServers",
            json!({ "hostId": acme_host }),
        ),
        (
            Client::Grpcurl,
            "HumanService/AddHuman",
            json!({ "hostId": acme_host, "email": "spy@globex.test" }),
        ),
        (
            Client::Buf,
            "AgentService/ListAgents",
            json!({ "hostId": acme_host }),
        ),
        (
            Client::Grpcurl,
            "AuditService/QueryAudit",
            json!({ "hostId": acme_host }),
        ),
        (
            Client::Buf,
            "ServerService/DiscoverServer",
            json!({ "hostId": acme_host, "url": "http://127.0.0.1:9/mcp" }),
        ),
    ] {
        let result = gateway.call(client, Some(&globex), method, body).await;
        assert_failed(result, "notfound", &acme_host);
    }
    let own = gateway
        .call(
            Client::Buf,
            Some(&globex),
            "HostService/ListHosts",
            json!({}),
        )
        .await
        .expect("list hosts");
    assert_eq!(own, json!({}), "globex sees no host");
    // Still there for its owner.
    gateway
        .call(
            Client::Grpcurl,
            Some(&acme),
            "HostService/GetHost",
            json!({ "hostId": acme_host }),
        )
        .await
        .expect("owner reads its host");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_are_invalid_argument_naming_the_field() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let host_id = gateway.host(&token, "acme").await;

    for client in [Client::Grpcurl, Client::Buf] {
        let bad_email = gateway
            .call(
                client,
                Some(&token),
                "HumanService/AddHuman",
                json!({ "hostId": host_id, "email": "not-an-email" }),
            )
            .await;
        assert_failed(bad_email, "invalidargument", "email");
    }
    let bad_prefix = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/CreateHost",
            json!({ "prefix": "Not A Prefix!" }),
        )
        .await;
    assert_failed(bad_prefix, "invalidargument", "prefix");
    let bad_origin = gateway
        .call(
            Client::Buf,
            Some(&token),
            "HostService/UpdateHostSettings",
            json!({ "hostId": host_id, "settings": { "allowedOrigins": ["not a url"] } }),
        )
        .await;
    assert_failed(bad_origin, "invalidargument", "allowed_origins");
    let no_settings = gateway
        .call(
            Client::Buf,
            Some(&token),
            "HostService/UpdateHostSettings",
            json!({ "hostId": host_id }),
        )
        .await;
    assert_failed(no_settings, "invalidargument", "settings");
    let no_method = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/UpdateHostSettings",
            json!({ "hostId": host_id, "settings": { "auth": { "password": false } } }),
        )
        .await;
    assert_failed(no_method, "invalidargument", "auth");
    // Sign-in rules set over gRPC come back normalized, with a warning for a method no
    // email can use.
    let host = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/UpdateHostSettings",
            json!({ "hostId": host_id, "settings": { "auth": {
                "emailOtp": true,
                "allowedDomains": { "domains": ["Acme.COM"] },
                "emailOtpDomains": { "domains": ["other.example"] },
            } } }),
        )
        .await
        .expect("update sign-in rules");
    assert_eq!(
        host["settings"]["auth"]["allowedDomains"]["domains"],
        json!(["acme.com"]),
        "{host}"
    );
    assert_eq!(host["settings"]["auth"]["password"], true, "{host}");
    let warnings = host["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{host}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap_or_default()
            .contains("email_otp"),
        "{host}"
    );
    let bad_audit = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "AuditService/QueryAudit",
            json!({ "hostId": host_id, "agentId": "a.b" }),
        )
        .await;
    assert_failed(bad_audit, "invalidargument", "agent_id");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_queried_through_the_audit_log() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let host_id = gateway.host(&token, "acme").await;

    for (i, (tool, decision)) in [
        ("list_issues", AuditDecision::Allowed),
        ("delete_repo", AuditDecision::Denied),
        ("search", AuditDecision::Allowed),
    ]
    .into_iter()
    .enumerate()
    {
        let record_id = format!("01JAUDIT{i:018}");
        let record = portcullis_proto::audit::v1::AuditRecord {
            record_id: record_id.clone(),
            time_ms: 1_700_000_000_000 + i as i64,
            host_id: host_id.clone(),
            tool: tool.to_owned(),
            decision: match decision {
                AuditDecision::Allowed => portcullis_proto::audit::v1::Decision::Allowed,
                AuditDecision::Denied => portcullis_proto::audit::v1::Decision::Denied,
            } as i32,
            reason: format!("test {i}"),
            ..Default::default()
        };
        AuditLog::append(
            gateway.store.as_ref(),
            AuditEntry {
                record_id,
                host_id: host_id.clone(),
                time_ms: record.time_ms,
                human_id: String::new(),
                agent_id: String::new(),
                server_id: String::new(),
                tool: tool.to_owned(),
                decision,
                record: prost::Message::encode_to_vec(&record).into(),
            },
        )
        .await
        .expect("append audit");
    }

    let first = gateway
        .call(
            Client::Buf,
            Some(&token),
            "AuditService/QueryAudit",
            json!({ "hostId": host_id, "limit": 2 }),
        )
        .await
        .expect("query audit");
    let tools: Vec<&str> = first["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["tool"].as_str())
        .collect();
    assert_eq!(tools, ["search", "delete_repo"], "newest first: {first}");
    let cursor = first["nextCursor"].as_str().expect("a next cursor");
    let rest = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "AuditService/QueryAudit",
            json!({ "hostId": host_id, "limit": 2, "cursor": cursor }),
        )
        .await
        .expect("next page");
    assert_eq!(rest["records"][0]["tool"], "list_issues");
    assert!(rest.get("nextCursor").is_none(), "last page: {rest}");

    let denied = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "AuditService/QueryAudit",
            json!({ "hostId": host_id, "decision": "DECISION_DENIED" }),
        )
        .await
        .expect("denied only");
    assert_eq!(denied["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(denied["records"][0]["reason"], "test 1");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_on_the_same_port() {
    let gateway = Gateway::start().await;
    let (status, body) = http_get(gateway.addr, "/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).expect("OpenAPI JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3'))
    );

    // A REST path without a token: REST's 401, not a gRPC answer.
    let (status, body) = http_get(gateway.addr, "/api/v1/hosts").await;
    assert_eq!(status, 401, "{body}");
    let error: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(error["error"]["code"], "unauthenticated");

    // Unknown paths, including gRPC-looking ones, get the JSON 404.
    for path in ["/no/such/thing", "/no.such.Service/Method"] {
        let (status, body) = http_get(gateway.addr, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(error["error"]["code"], "not_found");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_discovered_imported_changed_and_refreshed_over_grpc() {
    let everything = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;

    let discovered = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/DiscoverServer",
            json!({ "hostId": host_id, "url": everything.url() }),
        )
        .await
        .expect("discover");
    let tools = discovered["tools"].as_array().expect("tools");
    assert!(tools.len() > 3, "{discovered}");
    let suggested = discovered["suggestedKey"]
        .as_str()
        .expect("a suggested key");
    assert!(!suggested.is_empty());
    let first_tool = tools[0]["name"].as_str().expect("tool name").to_owned();

    let server = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/ImportServer",
            json!({
                "hostId": host_id, "url": everything.url(), "key": "everything",
                "tools": [{ "name": first_tool, "trustLevel": "TRUST_LEVEL_HIGH", "enabled": false }],
                "timeoutSeconds": 120,
            }),
        )
        .await
        .expect("import");
    let server_id = server["serverId"].as_str().expect("server id").to_owned();
    assert_eq!(server["key"], "everything");
    // uint64 is a JSON string in proto3's JSON mapping.
    assert_eq!(server["timeoutSeconds"], "120", "{server}");
    assert_eq!(
        server["mcpUrl"],
        format!(
            "http://{host_id}.localhost:{}/mcp/everything",
            gateway.addr.port()
        )
        .as_str(),
        "{server}"
    );
    assert!(server["upstreamAuth"]["none"].is_object(), "{server}");
    let overridden = server["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == first_tool.as_str())
        .expect("the overridden tool");
    assert_eq!(overridden["trustLevel"], "TRUST_LEVEL_HIGH");
    assert!(
        overridden.get("enabled").is_none(),
        "disabled: {overridden}"
    );
    assert!(overridden["classification"]["adminOverride"].is_object());

    // An override naming no discovered tool names its index.
    let unknown = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/ImportServer",
            json!({
                "hostId": host_id, "url": everything.url(), "key": "other",
                "tools": [{ "name": "no_such_tool" }],
            }),
        )
        .await;
    assert_failed(unknown, "invalidargument", "tools[0]");

    let renamed = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/UpdateServer",
            json!({ "hostId": host_id, "serverId": server_id, "name": "Everything!" }),
        )
        .await
        .expect("update server");
    assert_eq!(renamed["name"], "Everything!");
    assert_eq!(renamed["mcpUrl"], server["mcpUrl"]);
    assert_eq!(renamed["timeoutSeconds"], "120", "kept by a rename");

    let added = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/AddTool",
            json!({
                "hostId": host_id, "serverId": server_id, "name": "hand_made",
                "description": "by hand", "trustLevel": "TRUST_LEVEL_LOW",
                "inputSchemaJson": "{\"type\":\"object\"}",
            }),
        )
        .await
        .expect("add tool");
    assert!(
        added["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["name"] == "hand_made"),
        "{added}"
    );
    let unspecified = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/AddTool",
            json!({ "hostId": host_id, "serverId": server_id, "name": "no_level" }),
        )
        .await;
    assert_failed(unspecified, "invalidargument", "trust_level");

    let refreshed = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/RefreshServer",
            json!({ "hostId": host_id, "serverId": server_id }),
        )
        .await
        .expect("refresh");
    assert_eq!(
        refreshed["removedTools"],
        json!(["hand_made"]),
        "{refreshed}"
    );
    assert_eq!(refreshed["server"]["serverId"], server_id.as_str());

    gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/DeleteServer",
            json!({ "hostId": host_id, "serverId": server_id }),
        )
        .await
        .expect("delete server");
    let gone = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/GetServer",
            json!({ "hostId": host_id, "serverId": server_id }),
        )
        .await;
    assert_failed(gone, "notfound", "server");

    gateway.stop().await;
    drop(everything);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_timeout_is_set_shown_changed_and_cleared_over_grpc() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;
    // A server to change (imported through the service: no upstream needed here).
    let principal = gateway.control.authenticate(token).await.expect("auth");
    let server = gateway
        .control
        .import_server(
            &principal,
            &Context::admin(&principal, "test-import"),
            None,
            &host_id,
            portcullis_commands::control::ImportServer {
                url: "https://mcp.github.example/mcp".to_owned(),
                key: Some("github".to_owned()),
                name: None,
                description: None,
                tool_overrides: Vec::new(),
                oauth: None,
                timeout_seconds: None,
                discovered: portcullis_commands::control::DiscoveredServer::default(),
            },
        )
        .await
        .expect("import");
    let server_id = server.server_id.as_str();
    // Shared by the helpers below (each call moves copies of these references).
    let (api, host_id) = (&gateway, host_id.as_str());
    let get = |client| async move {
        api.call(
            client,
            Some(token),
            "ServerService/GetServer",
            json!({ "hostId": host_id, "serverId": server_id }),
        )
        .await
        .expect("get server")
    };
    let listed = |client| async move {
        api.call(
            client,
            Some(token),
            "ServerService/ListServers",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list servers")["servers"][0]
            .clone()
    };
    let update = |client, change: Value| async move {
        let mut body = json!({ "hostId": host_id, "serverId": server_id });
        body.as_object_mut()
            .expect("an object")
            .extend(change.as_object().expect("an object").clone());
        api.call(client, Some(token), "ServerService/UpdateServer", body)
            .await
    };

    // Unset (the data plane's global default): absent from the message.
    for client in [Client::Grpcurl, Client::Buf] {
        assert!(get(client).await.get("timeoutSeconds").is_none());
    }
    let set = update(Client::Buf, json!({ "timeoutSeconds": 300 }))
        .await
        .expect("set");
    assert_eq!(set["timeoutSeconds"], "300", "{set}");
    assert_eq!(get(Client::Grpcurl).await["timeoutSeconds"], "300");
    assert_eq!(listed(Client::Buf).await["timeoutSeconds"], "300");
    let renamed = update(Client::Grpcurl, json!({ "name": "GitHub" }))
        .await
        .expect("rename");
    assert_eq!(renamed["timeoutSeconds"], "300", "kept by a rename");
    let changed = update(Client::Grpcurl, json!({ "timeoutSeconds": "3600" }))
        .await
        .expect("change");
    assert_eq!(changed["timeoutSeconds"], "3600", "{changed}");
    let cleared = update(Client::Buf, json!({ "clearTimeout": true }))
        .await
        .expect("clear");
    assert!(cleared.get("timeoutSeconds").is_none(), "{cleared}");
    assert!(get(Client::Buf).await.get("timeoutSeconds").is_none());
    assert!(
        listed(Client::Grpcurl)
            .await
            .get("timeoutSeconds")
            .is_none()
    );

    // Out of bounds (0 included: the field is optional, so 0 is given, not absent), or set
    // and cleared at once: INVALID_ARGUMENT naming the field; nothing changes.
    for client in [Client::Grpcurl, Client::Buf] {
        for bad in [0, 3601] {
            let refused = update(client, json!({ "timeoutSeconds": bad })).await;
            assert_failed(refused, "invalidargument", "timeout_seconds");
        }
        let both = update(
            client,
            json!({ "timeoutSeconds": 30, "clearTimeout": true }),
        )
        .await;
        assert_failed(both, "invalidargument", "clear_timeout");
        // Refused before the upstream is contacted (nothing listens at this URL).
        let import = api
            .call(
                client,
                Some(token),
                "ServerService/ImportServer",
                json!({
                    "hostId": host_id, "url": "http://127.0.0.1:9/mcp", "key": "slow",
                    "timeoutSeconds": 0,
                }),
            )
            .await;
        assert_failed(import, "invalidargument", "timeout_seconds");
    }
    assert!(get(Client::Grpcurl).await.get("timeoutSeconds").is_none());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_upstream_is_authorized_in_the_browser_and_imported_over_grpc() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let ring = key_ring();
    let gateway = Gateway::with_upstream_oauth(ring.clone(), Duration::from_secs(600)).await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;

    let (discovered, authorized) = discover_and_authorize(&gateway, token, &host_id, &url).await;
    assert!(discovered.get("message").is_none(), "{discovered}");
    let authorization_url = discovered["authorizationUrl"].as_str().expect("a URL");
    assert_eq!(
        query(authorization_url, "redirect_uri"),
        Some(format!("http://{}{CALLBACK}", gateway.addr))
    );
    assert_eq!(
        query(authorization_url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query(authorization_url, "resource").as_deref(),
        Some(url.as_str())
    );
    let state = query(authorization_url, "state").expect("a state");
    let pending = unseal(&ring, &state, b"portcullis/upstream-oauth/state/v1");
    assert_eq!(pending["binding"]["host_id"], host_id.as_str());
    assert_eq!(pending["binding"]["url"], url.as_str());

    assert_eq!(authorized["host"], host_id.as_str());
    let handle = authorized["authorization"]
        .as_str()
        .expect("an authorization")
        .to_owned();
    let secrets = unseal(
        &ring,
        &handle,
        b"portcullis/upstream-oauth/authorization/v1",
    );
    let access_token = secrets["tokens"]["access_token"].as_str().expect("a token");
    let client_id = secrets["client"]["client_id"].as_str().expect("a client");
    let client_secret = secrets["client"]["client_secret"]
        .as_str()
        .expect("a confidential client");

    let server = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/ImportServer",
            json!({ "hostId": host_id, "url": url, "key": "demo", "authorization": handle }),
        )
        .await
        .expect("import with the authorization");
    assert_eq!(server["key"], "demo");
    assert_eq!(server["upstreamAuth"]["oauth"]["clientId"], client_id);
    assert_eq!(server["upstreamAuth"]["oauth"]["hasClientSecret"], true);
    let tools: Vec<&str> = server["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"greet"), "{server}");
    let fetched = gateway
        .call(
            Client::Buf,
            Some(token),
            "ServerService/GetServer",
            json!({ "hostId": host_id, "serverId": server["serverId"] }),
        )
        .await
        .expect("get server");
    assert_eq!(fetched, server);

    for answer in [&discovered, &server] {
        let text = answer.to_string();
        assert!(!text.contains(access_token), "token leaked: {text}");
        assert!(!text.contains(client_secret), "secret leaked: {text}");
    }
    gateway.stop().await;
    drop(peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_tampered_misused_or_expired_authorization_is_invalid_argument_and_imports_nothing()
 {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let gateway = Gateway::with_upstream_oauth(key_ring(), Duration::from_secs(600)).await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;
    let other_host = gateway.host(token, "other").await;
    let (discovered, authorized) = discover_and_authorize(&gateway, token, &host_id, &url).await;
    let handle = authorized["authorization"]
        .as_str()
        .expect("an authorization");
    let state = query(
        discovered["authorizationUrl"].as_str().expect("a URL"),
        "state",
    )
    .expect("a state");

    let import = |host: &str, url: &str, authorization: &str| json!({ "hostId": host, "url": url, "authorization": authorization });
    let mut with_client = import(&host_id, &url, handle);
    with_client["oauth"] = json!({ "clientId": "c", "clientSecret": "s" });
    for (client, body, needle) in [
        (
            Client::Grpcurl,
            import(
                &host_id,
                &url,
                "v1.k00000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            "not an authorization this gateway issued",
        ),
        (
            Client::Buf,
            import(&host_id, &url, &tampered(handle)),
            "not an authorization this gateway issued",
        ),
        // A state is sealed for another purpose: it is not a handle.
        (
            Client::Grpcurl,
            import(&host_id, &url, &state),
            "not an authorization this gateway issued",
        ),
        (
            Client::Buf,
            import(&host_id, &format!("{url}?other"), handle),
            "was issued for another host, upstream URL or admin token (field authorization)",
        ),
        (
            Client::Grpcurl,
            import(&other_host, &url, handle),
            "was issued for another host, upstream URL or admin token (field authorization)",
        ),
        (
            Client::Buf,
            with_client,
            "give either oauth or authorization, not both",
        ),
    ] {
        let result = gateway
            .call(client, Some(token), "ServerService/ImportServer", body)
            .await;
        assert_failed(result, "invalidargument", needle);
    }
    for host in [&host_id, &other_host] {
        let servers = gateway
            .call(
                Client::Buf,
                Some(token),
                "ServerService/ListServers",
                json!({ "hostId": host }),
            )
            .await
            .expect("list servers");
        assert_eq!(servers, json!({}), "nothing imported into {host}");
    }
    // The refusals consumed nothing: the genuine handle still imports.
    gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/ImportServer",
            import(&host_id, &url, handle),
        )
        .await
        .expect("import with the authorization");
    gateway.stop().await;

    // A handle that outlived its lifetime is refused too.
    let expiring = Gateway::with_upstream_oauth(key_ring(), Duration::ZERO).await;
    let token = expiring.admin("acme").await;
    let token = token.as_str();
    let host_id = expiring.host(token, "acme").await;
    let (_, authorized) = discover_and_authorize(&expiring, token, &host_id, &url).await;
    let handle = authorized["authorization"]
        .as_str()
        .expect("an authorization");
    let expired = expiring
        .call(
            Client::Buf,
            Some(token),
            "ServerService/ImportServer",
            import(&host_id, &url, handle),
        )
        .await;
    assert_failed(
        expired,
        "invalidargument",
        "expired; connect the upstream again (field authorization)",
    );
    let servers = expiring
        .call(
            Client::Grpcurl,
            Some(token),
            "ServerService/ListServers",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list servers");
    assert_eq!(servers, json!({}), "nothing imported");
    expiring.stop().await;
    drop(peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_discover_says_why_there_is_no_authorization_url() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let host_id = gateway.host(&token, "acme").await;

    let discovered = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "ServerService/DiscoverServer",
            json!({ "hostId": host_id, "url": peer.url() }),
        )
        .await
        .expect("discover");
    assert_eq!(discovered["requiresOauth"], true, "{discovered}");
    assert!(discovered.get("authorizationUrl").is_none(), "{discovered}");
    assert!(
        discovered["message"]
            .as_str()
            .is_some_and(|m| m.contains("master key")),
        "{discovered}"
    );
    let import = gateway
        .call(
            Client::Buf,
            Some(&token),
            "ServerService/ImportServer",
            json!({ "hostId": host_id, "url": peer.url(), "authorization": "v1.k0.AAAA" }),
        )
        .await;
    assert_failed(
        import,
        "invalidargument",
        "no master key is configured to open it (field authorization)",
    );
    gateway.stop().await;
    drop(peer);
}

/// The kids of `ListSigningKeys`, each with whether it is active.
async fn signing_keys(gateway: &Gateway, token: &str, host_id: &str) -> Vec<(String, bool)> {
    let listed = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "HostService/ListSigningKeys",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list signing keys");
    listed["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|key| {
            assert_eq!(key["algorithm"], "ES256", "{key}");
            (
                key["kid"].as_str().expect("kid").to_owned(),
                key["active"] == true,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_listed_rotated_and_retired_over_grpc() {
    let gateway = Gateway::with_upstream_oauth(key_ring(), Duration::from_secs(600)).await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;
    let first = signing_keys(&gateway, token, &host_id).await;
    assert_eq!(first.len(), 1, "a new host has one key: {first:?}");
    let (old_kid, active) = first[0].clone();
    assert!(active);

    // Rotation honours an idempotency key: the retry adds no second key.
    let rotate = |client| {
        gateway.call_with(
            client,
            Some(token),
            &[("idempotency-key", "rotate-1")],
            "portcullis.control.v1.HostService/RotateSigningKey",
            json!({ "hostId": host_id }),
        )
    };
    let rotated = rotate(Client::Buf).await.expect("rotate");
    let again = rotate(Client::Grpcurl).await.expect("rotate again");
    assert_eq!(rotated["kid"], again["kid"], "same key, same answer");
    assert_eq!(rotated["active"], true, "{rotated}");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_eq!(
        signing_keys(&gateway, token, &host_id).await,
        [(old_kid.clone(), false), (new_kid.clone(), true)]
    );

    let retire = |kid: &str, force: bool| {
        gateway.call(
            Client::Grpcurl,
            Some(token),
            "HostService/RetireSigningKey",
            json!({ "hostId": host_id, "kid": kid, "force": force }),
        )
    };
    assert_failed(retire(&new_kid, true).await, "aborted", "rotate");
    assert_failed(retire(&old_kid, false).await, "aborted", "force");
    assert_failed(retire("no-such-key", true).await, "notfound", "no-such-key");
    retire(&old_kid, true).await.expect("forced retirement");
    assert_eq!(
        signing_keys(&gateway, token, &host_id).await,
        [(new_kid.clone(), true)]
    );

    // Another organization's admin sees no such host.
    let other = gateway.admin("globex").await;
    for method in ["ListSigningKeys", "RotateSigningKey"] {
        assert_failed(
            gateway
                .call(
                    Client::Buf,
                    Some(&other),
                    &format!("HostService/{method}"),
                    json!({ "hostId": host_id }),
                )
                .await,
            "notfound",
            "host",
        );
    }
    assert_eq!(signing_keys(&gateway, token, &host_id).await.len(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pre_registers_an_oauth_client_over_grpc() {
    let gateway = Gateway::start().await;
    let token = gateway.admin("acme").await;
    let token = token.as_str();
    let host_id = gateway.host(token, "acme").await;
    let register = |client, redirect_uris: Value| {
        gateway.call_with(
            client,
            Some(token),
            &[("idempotency-key", "register-cli-1")],
            "portcullis.control.v1.AgentService/RegisterAgent",
            json!({
                "hostId": host_id,
                "name": "Acme CLI",
                "redirectUris": redirect_uris,
            }),
        )
    };
    assert_failed(
        gateway
            .call(
                Client::Grpcurl,
                Some(token),
                "AgentService/RegisterAgent",
                json!({ "hostId": host_id, "name": "Bad", "redirectUris": ["data:text/html,hi"] }),
            )
            .await,
        "invalidargument",
        "redirect_uris",
    );
    let uris = json!(["http://127.0.0.1/callback", "https://cli.acme.example/cb"]);
    let agent = register(Client::Buf, uris.clone()).await.expect("register");
    let again = register(Client::Grpcurl, uris.clone())
        .await
        .expect("register again");
    assert_eq!(agent["agentType"], "pre-registered", "{agent}");
    assert_eq!(agent["redirectUris"], uris, "{agent}");
    let client_id = agent["clientId"].as_str().expect("client id");
    assert!(client_id.len() >= 26, "{agent}");
    assert_eq!(
        again["clientId"], agent["clientId"],
        "same key, same client"
    );
    let listed = gateway
        .call(
            Client::Grpcurl,
            Some(token),
            "AgentService/ListAgents",
            json!({ "hostId": host_id }),
        )
        .await
        .expect("list agents");
    let agents = listed["agents"].as_array().cloned().unwrap_or_default();
    assert_eq!(agents.len(), 1, "{listed}");
    assert_eq!(agents[0]["clientId"], client_id);
    // The authorization server knows it.
    let known = gateway
        .control
        .oauth_client(&host_id, client_id)
        .await
        .expect("lookup");
    assert_eq!(
        known.map(|client| client.redirect_uris),
        Some(vec![
            "http://127.0.0.1/callback".to_owned(),
            "https://cli.acme.example/cb".to_owned()
        ])
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_secrets_are_write_only_and_sealed_by_the_gateway_over_grpc() {
    let gateway = Gateway::with_upstream_oauth(key_ring(), Duration::from_secs(600)).await;
    let token = gateway.admin("ops").await;
    let host_id = gateway.host(&token, "sso").await;
    let provider = |secret: Option<&str>| {
        let mut provider = json!({
            "id": "okta",
            "kind": "SIGN_IN_PROVIDER_KIND_OIDC",
            "clientId": "portcullis",
            "issuer": "https://idp.example.com/",
            // Only the gateway seals: a sealed value sent in is dropped, never recorded.
            "sealedClientSecret": "Zm9yZ2Vk",
            "keyId": "forged",
            "forceRedirectDomains": ["Corp.Example"],
        });
        if let Some(secret) = secret {
            provider["clientSecret"] = json!(secret);
        }
        provider
    };
    let update = |provider: Value| json!({ "hostId": host_id, "settings": { "auth": { "providers": [provider] } } });
    let host = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/UpdateHostSettings",
            update(provider(Some("plain-secret-value"))),
        )
        .await
        .expect("set a provider");
    let shown = &host["settings"]["auth"]["providers"][0];
    assert_eq!(shown["clientSecretSet"], true, "{host}");
    assert_eq!(shown["issuer"], "https://idp.example.com", "{host}");
    assert_eq!(
        shown["forceRedirectDomains"],
        json!(["corp.example"]),
        "{host}"
    );
    for field in ["clientSecret", "sealedClientSecret", "keyId"] {
        assert!(shown.get(field).is_none(), "{field} returned: {host}");
    }
    assert!(!host.to_string().contains("plain-secret-value"), "{host}");

    // Without a secret the stored one stays; a new provider without one is refused.
    let kept = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/UpdateHostSettings",
            update(provider(None)),
        )
        .await
        .expect("keep the secret");
    assert_eq!(
        kept["settings"]["auth"]["providers"][0]["clientSecretSet"], true,
        "{kept}"
    );
    let mut other = provider(None);
    other["id"] = json!("other");
    other["forceRedirectDomains"] = json!([]);
    let refused = gateway
        .call(
            Client::Grpcurl,
            Some(&token),
            "HostService/UpdateHostSettings",
            update(other),
        )
        .await;
    assert_failed(refused, "invalidargument", "client_secret");
    gateway.stop().await;
}
