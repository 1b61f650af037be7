//! The OAuth client side of the consent tests, over plain HTTP: answers read whole, form
//! fields, client registration, PKCE and authorization requests against `portcullis dev`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::dev_admin::DevGateway;

/// The `state` the test clients send.
pub const STATE: &str = "state-Zm9v.bar~1";

/// A plain-HTTP client that follows no redirects.
pub fn http() -> reqwest::Client {
    // reqwest is built without a default crypto provider; plain HTTP still needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

// ---------------------------------------------------------------------------------------
// Answers

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The value of the hidden input `name` on this page.
    pub fn hidden(&self, name: &str) -> String {
        input_value(&self.body, name).unwrap_or_else(|| {
            panic!(
                "no input {name:?} on the page ({}):\n{}",
                self.status, self.body
            )
        })
    }

    /// The page with the values of its `flow` and `csrf` inputs blanked, to compare two pages.
    pub fn without_secrets(&self) -> String {
        let mut text = self.body.clone();
        for name in ["flow", "csrf"] {
            if let Some(value) = input_value(&self.body, name) {
                text = text.replace(&value, "…");
            }
        }
        text
    }
}

/// The `value` of the first `<input … name="<name>" value="…">`, HTML entities undone.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#x2f;", "/")
            .replace("&#x2b;", "+")
            .replace("&#x3d;", "=")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Query parameter `name` of an absolute URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `pairs` form-encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("url");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

/// A registered client.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    pub redirect_uri: String,
}

/// POSTs a registration; the answer.
pub async fn register_raw(gateway: &DevGateway, body: &Value) -> Answer {
    let response = http()
        .post(format!("{}/oauth/register", gateway.base))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("register");
    Answer::read(response).await
}

/// Registers a client with `redirect_uris` (the first one is the one it uses).
pub async fn register(gateway: &DevGateway, redirect_uris: &[&str]) -> Client {
    let answer = register_raw(
        gateway,
        &json!({
            "client_name": "Negative tests",
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    Client {
        id: answer.json()["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned(),
        redirect_uri: redirect_uris[0].to_owned(),
    }
}

/// A fresh PKCE verifier (43 base64url characters) and its S256 challenge.
pub fn pkce() -> (String, String) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let verifier = base64url(&Sha256::digest(seed.as_bytes()));
    let challenge = base64url(&Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub const BASE64URL: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

pub fn base64url_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let value = BASE64URL
            .iter()
            .position(|&b| b == c)
            .unwrap_or_else(|| panic!("not base64url: {text}"));
        bits = (bits << 6) | u32::try_from(value).expect("6 bits");
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("8 bits"));
        }
    }
    out
}

/// An authorization request: its URL and the verifier that goes with it.
#[derive(Debug)]
pub struct Authorization {
    pub url: String,
    pub verifier: String,
    pub resource: String,
}

/// `/oauth/authorize` with exactly `pairs` as its query.
pub fn authorize_url(gateway: &DevGateway, pairs: &[(&str, &str)]) -> String {
    format!("{}/oauth/authorize?{}", gateway.base, form(pairs))
}

/// A valid authorization request of `client` for `resource`, with `change` applied to its
/// parameters (a value of `None` removes the parameter).
pub fn authorization(
    gateway: &DevGateway,
    client: &Client,
    resource: &str,
    change: &[(&str, Option<&str>)],
) -> Authorization {
    let (verifier, challenge) = pkce();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &client.id),
        ("redirect_uri", &client.redirect_uri),
        ("state", STATE),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("resource", resource),
        ("scope", "mcp"),
    ];
    for (name, value) in change {
        pairs.retain(|(key, _)| key != name);
        if let Some(value) = value {
            pairs.push((name, value));
        }
    }
    Authorization {
        url: authorize_url(gateway, &pairs),
        verifier,
        resource: resource.to_owned(),
    }
}

/// A browser that keeps every site's cookies and follows redirects across sites, stopping at
/// the redirect URI it is given. POSTs carry the gateway's `Origin`, as its pages would.
#[derive(Debug)]
pub struct CookieBrowser {
    http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    base: String,
    /// Where the flow ends: the MCP client's redirect URI.
    stop_at: String,
}

impl CookieBrowser {
    /// The `Cookie` header this browser sends to the gateway now (to replay a request as a
    /// thief of it would).
    pub fn cookie_header(&self) -> Option<String> {
        use reqwest::cookie::CookieStore as _;
        let url = reqwest::Url::parse(&self.base).ok()?;
        self.jar
            .cookies(&url)
            .and_then(|value| value.to_str().ok().map(str::to_owned))
    }

    /// A browser at the gateway `base`, stopping at `stop_at`.
    pub fn new(base: &str, stop_at: &str) -> CookieBrowser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        CookieBrowser {
            stop_at: stop_at.to_owned(),
            jar: jar.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_provider(jar)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_owned(),
        }
    }

    /// GETs `url` (relative ones at the gateway).
    pub async fn get(&self, url: &str) -> Answer {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        Answer::read(self.http.get(&url).send().await.expect("GET")).await
    }

    /// Follows redirects (relative ones against the URL that answered) until a page, or the
    /// MCP client's redirect URI.
    pub async fn follow(&self, mut answer: Answer, mut at: String) -> Answer {
        for _ in 0..20 {
            if !matches!(answer.status, 301 | 302 | 303 | 307) {
                return answer;
            }
            let Some(location) = answer.location() else {
                return answer;
            };
            let next = reqwest::Url::parse(&at)
                .and_then(|base| base.join(location))
                .expect("redirect target")
                .to_string();
            if next.starts_with(&self.stop_at) {
                return answer;
            }
            answer = self.get(&next).await;
            at = next;
        }
        panic!("too many redirects: {answer:?}");
    }

    /// Opens `url` and follows it to a page.
    pub async fn open(&self, url: &str) -> Answer {
        let answer = self.get(url).await;
        self.follow(answer, url.to_owned()).await
    }

    /// POSTs `fields` to `path` at the gateway, answered but not followed.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .header(header::ORIGIN, &self.base)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .expect("POST");
        Answer::read(response).await
    }

    /// Submits the form of `page` (its `flow` and `csrf` plus `fields`) and follows.
    pub async fn submit(&self, page: &Answer, path: &str, fields: &[(&str, &str)]) -> Answer {
        let flow = page.hidden("flow");
        let csrf = page.hidden("csrf");
        let mut all = vec![("flow", flow.as_str()), ("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let answer = self.post(path, &all).await;
        self.follow(answer, format!("{}{path}", self.base)).await
    }
}
