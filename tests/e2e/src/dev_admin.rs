//! A running `portcullis dev` with its admin API at hand: the generated admin token, the
//! default host, and the admin steps the consent tests need (import a server, set a tool's
//! level, pre-authorize a human, grant, revoke an agent), each asserted to succeed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Process;

/// `portcullis dev` on a fresh data directory.
#[derive(Debug)]
pub struct DevGateway {
    /// The process.
    pub process: Process,
    /// Its data directory (outbox under it).
    pub data: tempfile::TempDir,
    /// The bootstrap admin token.
    pub token: String,
    /// The default host's id.
    pub host: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
}

impl DevGateway {
    /// Starts `dev` with `extra` flags and waits until it is ready.
    pub async fn start(extra: &[&str]) -> DevGateway {
        let data = tempfile::tempdir().expect("data dir");
        let dir = data.path().join("data");
        let dir_text = dir.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["dev", "--data-dir", dir_text.as_str()];
        args.extend_from_slice(extra);
        let mut process = Process::start(&args, data.path());
        process.wait_ready(Duration::from_secs(60));
        let token = std::fs::read_to_string(dir.join("admin-token"))
            .expect("admin token")
            .trim()
            .to_owned();
        let base = format!("http://{}", process.addr);
        // reqwest is built without a default crypto provider; plain HTTP still needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut gateway = DevGateway {
            process,
            data,
            token,
            host: String::new(),
            base,
            http,
        };
        let (_, hosts) = gateway.api("GET", "/api/v1/hosts", None).await;
        gateway.host = hosts["hosts"][0]["id"]
            .as_str()
            .expect("default host")
            .to_owned();
        gateway
    }

    /// The MCP URL of the default host.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// Where `dev` writes mail.
    pub fn outbox(&self) -> PathBuf {
        self.data.path().join("data").join("outbox")
    }

    /// An admin API call; the status and JSON body (`Null` when empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin API");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.api(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// Imports the MCP server at `url` as `key`, named `name`.
    pub async fn import(&self, url: &str, key: &str, name: &str) -> Value {
        self.ok(
            "POST",
            &format!("/api/v1/hosts/{}/servers", self.host),
            Some(json!({ "url": url, "key": key, "name": name })),
        )
        .await
    }

    /// Imports the OAuth-protected MCP server at `url` as the admin does: discover answers
    /// an authorization URL, the admin's browser approves (`oauth_browser::approve`: the
    /// test upstream approves at once), the callback answers a handle, the import uses it.
    pub async fn import_oauth(&self, url: &str, key: &str, name: &str) -> Value {
        let discovered = self
            .ok(
                "POST",
                &format!("/api/v1/hosts/{}/servers/discover", self.host),
                Some(json!({ "url": url })),
            )
            .await;
        let authorization_url = discovered["authorization_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no authorization URL: {discovered}"));
        let callback = test_fixtures::oauth_browser::approve(authorization_url)
            .await
            .expect("approve");
        let callback = callback
            .strip_prefix(&self.base)
            .map(str::to_owned)
            .unwrap_or(callback);
        let (status, authorized) = self.api("GET", &callback, None).await;
        assert_eq!(status, 200, "callback: {authorized}");
        let handle = authorized["authorization"].as_str().expect("handle");
        self.ok(
            "POST",
            &format!("/api/v1/hosts/{}/servers", self.host),
            Some(json!({ "url": url, "key": key, "name": name, "authorization": handle })),
        )
        .await
    }

    /// Sets a tool's trust level (`low`, `medium`, `high`).
    pub async fn set_tool(&self, key: &str, tool: &str, level: &str) {
        self.ok(
            "PATCH",
            &format!("/api/v1/hosts/{}/servers/{key}/tools/{tool}", self.host),
            Some(json!({ "trust_level": level })),
        )
        .await;
    }

    /// Pre-authorizes a human.
    pub async fn add_human(&self, email: &str) {
        self.ok(
            "POST",
            &format!("/api/v1/hosts/{}/humans", self.host),
            Some(json!({ "email": email })),
        )
        .await;
    }

    /// Grants (or changes) `email`'s ceiling on server `key`.
    pub async fn grant(&self, email: &str, key: &str, level: &str) {
        self.ok(
            "PUT",
            &format!("/api/v1/hosts/{}/humans/{email}/grants/{key}", self.host),
            Some(json!({ "max_trust_level": level })),
        )
        .await;
    }

    /// The host's agents.
    pub async fn agents(&self) -> Vec<Value> {
        self.ok("GET", &format!("/api/v1/hosts/{}/agents", self.host), None)
            .await["agents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Ends every session of agent `agent_id` on server `key`.
    pub async fn revoke_agent(&self, agent_id: &str, key: &str) {
        self.ok(
            "DELETE",
            &format!(
                "/api/v1/hosts/{}/agents/{agent_id}/servers/{key}",
                self.host
            ),
            None,
        )
        .await;
    }
}
