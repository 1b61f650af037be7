//! Test harness: the real router (`portcullis_api::router`) over a real SQLite store with the
//! projector running, admin tokens, requests through `tower::ServiceExt::oneshot`, builders
//! for state the REST API cannot make (agents and sessions, which the consent flow makes),
//! and canned upstreams; the real MCP peers for discovery and import are
//! `test_fixtures::McpPeer`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use portcullis_api::{ApiState, PublicUrls};
use portcullis_commands::Context;
use portcullis_commands::control::{
    Control, ControlOptions, CreateHost, DiscoveredServer, ImportServer, Principal, SealError,
    SealedSecret, SecretSealer, ServerView,
};
use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_proto::TrustLevel;
use portcullis_proto::events::v1 as pb;
use portcullis_store::{AuditLog, EventLog, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;
use portcullis_upstream::DiscoverOptions;
use portcullis_upstream::url_guard::UrlPolicy;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// "Seals" by reversing the bytes, under key id `test-key`.
struct ReversingSealer;

impl SecretSealer for ReversingSealer {
    fn seal(&self, plaintext: &[u8], _associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        Ok(SealedSecret {
            key_id: "test-key".to_owned(),
            sealed: plaintext.iter().rev().copied().collect(),
        })
    }
}

/// The admin token every `App` starts with (acts for organization "Acme").
pub const TOKEN: &str = "pcat_test_admin_token_acme_0000000000000000";
/// A second admin, of another organization ("Globex").
pub const OTHER_TOKEN: &str = "pcat_test_admin_token_globex_00000000000000";

/// The API over a fresh store.
pub struct App {
    pub router: axum::Router,
    pub state: ApiState,
    pub control: Arc<Control>,
    pub store: Arc<SqliteStore>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl App {
    /// A store, a projector, the router; admins `TOKEN` (org "Acme") and `OTHER_TOKEN`
    /// (org "Globex").
    pub async fn start() -> App {
        App::start_with(|_| {}).await
    }

    /// `start`, with `change` made to the API state first.
    pub async fn start_with(change: impl FnOnce(&mut ApiState)) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open store"));
        let log: Arc<dyn EventLog> = store.clone();
        let kv: Arc<dyn ReadModelStore> = store.clone();
        let shutdown = CancellationToken::new();
        let projector = Projector::new(log.clone(), kv.clone(), ProjectorOptions::default())
            .expect("projector");
        tokio::spawn(projector.run(shutdown.clone()));
        let control = Arc::new(
            Control::new(
                log,
                kv,
                Arc::new(ReversingSealer),
                ControlOptions::default(),
            )
            .expect("control"),
        );
        let audit: Arc<dyn AuditLog> = store.clone();
        let mut state = ApiState {
            control: control.clone(),
            url_policy: UrlPolicy::DEVELOPMENT,
            discover: DiscoverOptions {
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(10),
                total_timeout: Duration::from_secs(20),
                ..DiscoverOptions::default()
            },
            public_urls: PublicUrls::dev("127.0.0.1:8080".parse().expect("addr")),
            audit: Some(audit),
            upstream_oauth: portcullis_api::UpstreamOAuthConfig::default(),
        };
        change(&mut state);
        let app = App {
            router: portcullis_api::router(state.clone()),
            state,
            control,
            store,
            shutdown,
            _dir: dir,
        };
        app.admin(TOKEN, "Acme").await;
        app.admin(OTHER_TOKEN, "Globex").await;
        app
    }

    /// Issues admin token `secret` and gives it a new organization `org_name`.
    pub async fn admin(&self, secret: &str, org_name: &str) -> Principal {
        let context = Context::system("test", "setup");
        self.control
            .ensure_admin_token(&context, secret, &[], "test")
            .await
            .expect("token");
        let principal = self.control.authenticate(secret).await.expect("auth");
        self.control
            .create_organization(&principal, &context, None, org_name)
            .await
            .expect("organization");
        self.control.authenticate(secret).await.expect("auth")
    }

    /// A router over the same service with `change` made to its state.
    pub fn router_with(&self, change: impl FnOnce(&mut ApiState)) -> axum::Router {
        let mut state = self.state.clone();
        change(&mut state);
        portcullis_api::router(state)
    }

    /// The principal of `secret`.
    pub async fn principal(&self, secret: &str) -> Principal {
        self.control.authenticate(secret).await.expect("auth")
    }

    /// A request with `TOKEN`.
    pub fn request(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            app: self,
            method,
            path: path.to_owned(),
            token: Some(TOKEN.to_owned()),
            headers: Vec::new(),
            body: Body::empty(),
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str, body: Value) -> Req<'_> {
        self.request(Method::POST, path).json(body)
    }

    pub fn put(&self, path: &str, body: Value) -> Req<'_> {
        self.request(Method::PUT, path).json(body)
    }

    pub fn patch(&self, path: &str, body: Value) -> Req<'_> {
        self.request(Method::PATCH, path).json(body)
    }

    pub fn delete(&self, path: &str) -> Req<'_> {
        self.request(Method::DELETE, path)
    }

    /// Creates a host with `prefix` through the API; its id.
    pub async fn host(&self, prefix: &str) -> String {
        let response = self
            .post("/api/v1/hosts", json!({ "prefix": prefix }))
            .send()
            .await;
        response.expect_status(StatusCode::CREATED);
        response.body["id"].as_str().expect("id").to_owned()
    }

    /// Imports a server without contacting an upstream (through the service, with a
    /// discovery result made up here): tools `read_file` (low), `write_file` (medium),
    /// `delete_file` (high).
    pub async fn seed_server(&self, host_id: &str, key: &str) -> ServerView {
        self.seed_server_at(host_id, key, &format!("https://{key}.example.com/mcp"))
            .await
    }

    /// `seed_server` with upstream `url`.
    pub async fn seed_server_at(&self, host_id: &str, key: &str, url: &str) -> ServerView {
        let principal = self.principal(TOKEN).await;
        let tool = |name: &str, level: TrustLevel| pb::Tool {
            name: name.to_owned(),
            description: format!("{name} tool"),
            input_schema_sha256: vec![7; 32],
            trust_level: level.into(),
            enabled: true,
            classification: Some(pb::Classification {
                kind: Some(pb::classification::Kind::Auto(pb::AutoClassification {
                    matched_keyword: String::new(),
                    reason: "seeded".to_owned(),
                })),
            }),
        };
        let import = ImportServer {
            url: url.to_owned(),
            key: Some(key.to_owned()),
            name: None,
            description: None,
            tool_overrides: Vec::new(),
            oauth: None,
            timeout_seconds: None,
            discovered: DiscoveredServer {
                name: Some(format!("{key} server")),
                description: None,
                tools: vec![
                    tool("read_file", TrustLevel::Low),
                    tool("write_file", TrustLevel::Medium),
                    tool("delete_file", TrustLevel::High),
                ],
            },
        };
        self.control
            .import_server(
                &principal,
                &Context::admin(&principal, "seed"),
                None,
                host_id,
                import,
            )
            .await
            .expect("seed server")
    }

    /// Registers an agent connected by `human_id` and starts its session on `server_id` at
    /// `level` (what the consent flow does); the agent's id.
    pub async fn connect_agent(
        &self,
        host_id: &str,
        name: &str,
        human_id: &str,
        server_id: &str,
        level: TrustLevel,
    ) -> String {
        let context = Context::system("test", "consent");
        let agent_id = self
            .control
            .test_register_agent(&context, host_id, name, Some(human_id))
            .await
            .expect("agent");
        self.control
            .test_start_session(&context, host_id, human_id, &agent_id, server_id, level)
            .await
            .expect("session");
        agent_id
    }

    /// Creates a host of the `OTHER_TOKEN` admin; its id.
    pub async fn other_host(&self) -> String {
        let principal = self.principal(OTHER_TOKEN).await;
        self.control
            .create_host(
                &principal,
                &Context::admin(&principal, "other"),
                None,
                CreateHost {
                    prefix: "globex".to_owned(),
                    ..CreateHost::default()
                },
            )
            .await
            .expect("other host")
            .host_id
    }
}

/// A request being built.
pub struct Req<'a> {
    app: &'a App,
    method: Method,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Req<'_> {
    /// Another token, or none.
    pub fn token(mut self, token: Option<&str>) -> Self {
        self.token = token.map(str::to_owned);
        self
    }

    /// A raw `Authorization` header instead of `Bearer <token>`.
    pub fn authorization(mut self, value: &str) -> Self {
        self.token = None;
        self.headers
            .push((header::AUTHORIZATION.to_string(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::from(serde_json::to_vec(&body).expect("json"));
        self.headers
            .push(("content-type".to_owned(), "application/json".to_owned()));
        self
    }

    /// A body of any type (replaces a JSON body and its content type).
    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self.headers.retain(|(name, _)| name != "content-type");
        if let Some(content_type) = content_type {
            self.headers
                .push(("content-type".to_owned(), content_type.to_owned()));
        }
        self
    }

    pub async fn send(self) -> Resp {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(&self.path);
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder.body(self.body).expect("request");
        let response = self
            .app
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{} {}: not JSON: {}",
                    self.method,
                    self.path,
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            method: self.method,
            path: self.path,
            status,
            headers,
            body,
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, showing the body otherwise.
    #[track_caller]
    pub fn expect_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status, status,
            "{} {} answered {}: {}",
            self.method, self.path, self.status, self.body
        );
        self
    }

    /// Asserts an error response: status, code, and (if given) `details.field`.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str, field: Option<&str>) -> &Self {
        self.expect_status(status);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        if let Some(field) = field {
            assert_eq!(
                self.body["error"]["details"]["field"], field,
                "{}",
                self.body
            );
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams that are not MCP peers (those come from `test_fixtures::McpPeer`)
// ---------------------------------------------------------------------------------------------

/// An HTTP server answering every request with `response`; its URL.
pub async fn canned_server(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/mcp")
}

/// A URL where nothing listens.
pub fn closed_port_url() -> String {
    let port = test_fixtures::free_loopback_port().expect("a free loopback port");
    format!("http://127.0.0.1:{port}/mcp")
}
