//! The authorization server and consent pages of `portcullis dev` refusing what they must,
//! over plain HTTP: no browser, no MCP client, just requests and the answers' statuses,
//! headers and error codes.
//!
//! A small in-test browser (`Browser`: one cookie, `303`s followed by hand, the hidden `flow`
//! and `csrf` inputs read off the page) walks sign-up, the mailed code (read from the newest
//! `.eml` in the outbox), the server and the trust level, and ends at the redirect URI with a
//! code. Around it: PKCE (S256 only, a wrong verifier does not spend the code), code reuse and
//! refresh-token reuse revoking the session (and the data plane then refusing its access
//! tokens), redirect-URI matching (an error page, never a redirect, for an unregistered URI;
//! any port for a loopback one), foreign resources, CSRF and `Origin` checks, unverified and
//! claimed accounts, the code attempt limit, real clients' registrations, discovery
//! documents, the JWKS, `no-store`, framing and cookie attributes, a token used at
//! another server's endpoint, signing-key rotation and retirement through the admin API, a
//! client the admin pre-registered, and the host's sign-in methods and email-domain rules
//! (mailed sign-in codes through a real SMTP server, PyPI aiosmtpd).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use portcullis_e2e::consent_client::{
    Answer, Authorization, Client, STATE, authorization, authorize_url, base64url_decode, form,
    http, param, pkce, register, register_raw,
};
use portcullis_e2e::dev_admin::DevGateway;
use reqwest::header::{self};
use serde_json::{Value, json};
use test_fixtures::{Mail, McpPeer, SmtpSink};

const PASSWORD: &str = "correct horse battery";
/// The redirect URI the test clients register. Nothing listens there: the tests read the
/// `Location` that points at it and never follow it.
const REDIRECT: &str = "http://127.0.0.1:43117/callback";
/// How long the replica may take to see a session start or end.
const PROPAGATION: Duration = Duration::from_secs(10);
/// How long a mail may take to land in the outbox.
const MAIL: Duration = Duration::from_secs(10);
const WRONG_LOGIN: &str = "The email or password is wrong.";

// ---------------------------------------------------------------------------------------
// Set-up

/// `dev` alone (no MCP server): enough for the authorization endpoint, registration and
/// the account pages.
async fn bare_gateway() -> DevGateway {
    DevGateway::start(&[]).await
}

/// `dev` with server-everything imported as "everything" and `emails` pre-authorized on it
/// with a High ceiling.
async fn gateway_with_server(emails: &[&str]) -> (DevGateway, McpPeer) {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = DevGateway::start(&[]).await;
    gateway
        .import(upstream.url(), "everything", "Everything")
        .await;
    for email in emails {
        gateway.add_human(email).await;
        gateway.grant(email, "everything", "high").await;
    }
    (gateway, upstream)
}

// ---------------------------------------------------------------------------------------
// The browser

/// A browser with one cookie (`portcullis=…`) that sends its gateway's `Origin` on POSTs.
#[derive(Debug)]
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    /// The last `Set-Cookie` header as sent, for its attributes.
    set_cookie: Option<String>,
}

impl Browser {
    fn new(gateway: &DevGateway) -> Browser {
        Browser {
            http: http(),
            base: gateway.base.clone(),
            cookie: None,
            set_cookie: None,
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    fn keep_cookie(&mut self, answer: &Answer) {
        if let Some(set) = answer.header("set-cookie") {
            self.set_cookie = Some(set.to_owned());
            let pair = set.split(';').next().unwrap_or_default().trim();
            self.cookie = Some(pair.to_owned());
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let mut request = self.http.get(self.absolute(url));
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let answer = Answer::read(request.send().await.expect("GET")).await;
        self.keep_cookie(&answer);
        answer
    }

    /// POSTs `fields` with `Origin: <origin>` (none when `None`) and extra `headers`.
    async fn post_as(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .post(self.absolute(path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(fields));
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = Answer::read(request.send().await.expect("POST")).await;
        self.keep_cookie(&answer);
        answer
    }

    /// POSTs `fields` as the gateway's own page would.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let origin = self.base.clone();
        self.post_as(path, fields, Some(&origin), &[]).await
    }

    /// Follows `303`s within the gateway; stops at any other answer or at a redirect that
    /// leaves it (the client's redirect URI).
    async fn follow(&mut self, mut answer: Answer) -> Answer {
        for _ in 0..10 {
            let next = match (answer.status, answer.location()) {
                (303, Some(location))
                    if location.starts_with('/') || location.starts_with(&self.base) =>
                {
                    location.to_owned()
                }
                _ => return answer,
            };
            answer = self.get(&next).await;
        }
        panic!("too many redirects: {answer:?}");
    }

    /// Opens `url` and follows it to a page.
    async fn open(&mut self, url: &str) -> Answer {
        let answer = self.get(url).await;
        self.follow(answer).await
    }

    /// Submits the form of `page` at `path` (its `flow` and `csrf` plus `fields`) and follows.
    async fn submit(&mut self, page: &Answer, path: &str, fields: &[(&str, &str)]) -> Answer {
        let flow = page.hidden("flow");
        let csrf = page.hidden("csrf");
        let mut all = vec![("flow", flow.as_str()), ("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let answer = self.post(path, &all).await;
        self.follow(answer).await
    }
}

// ---------------------------------------------------------------------------------------
// Mail

/// The outbox, and the messages already read from it.
#[derive(Debug)]
struct Outbox {
    dir: PathBuf,
    seen: HashSet<PathBuf>,
}

impl Outbox {
    /// The outbox of `gateway`; messages already there count as read.
    fn of(gateway: &DevGateway) -> Outbox {
        let dir = gateway.outbox();
        let seen = eml_files(&dir).into_iter().collect();
        Outbox { dir, seen }
    }

    /// The code in the next new message to `to` (waits for it).
    async fn next_code(&mut self, to: &str) -> String {
        let deadline = Instant::now() + MAIL;
        loop {
            for file in eml_files(&self.dir) {
                if self.seen.contains(&file) {
                    continue;
                }
                let Ok(raw) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let (head, body) = raw
                    .split_once("\r\n\r\n")
                    .or_else(|| raw.split_once("\n\n"))
                    .unwrap_or((raw.as_str(), ""));
                let addressed = head
                    .lines()
                    .any(|line| line.starts_with("To:") && line.to_lowercase().contains(to));
                // A message being written has no body yet; look again next round.
                if let (true, Some(code)) = (addressed, six_digits(body)) {
                    self.seen.insert(file);
                    return code;
                }
                if !addressed && !body.is_empty() {
                    self.seen.insert(file);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no new mail to {to} in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn eml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

/// The first standalone 6-digit number of a (plain or quoted-printable) body.
fn six_digits(body: &str) -> Option<String> {
    let text = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find_map(|i| {
        let run = &bytes[i..i + 6];
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + 6).copied();
        let alone = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
        (run.iter().all(u8::is_ascii_digit) && alone(before) && alone(after))
            .then(|| text[i..i + 6].to_owned())
    })
}

// ---------------------------------------------------------------------------------------
// OAuth client side

/// Signs up `email` on the sign-in page `page` and enters the mailed code; the next page.
async fn sign_up(browser: &mut Browser, outbox: &mut Outbox, page: &Answer, email: &str) -> Answer {
    let verify = create_account(browser, page, email, PASSWORD).await;
    let code = outbox.next_code(email).await;
    browser
        .submit(
            &verify,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await
}

/// Creates the account on the sign-in page `page`; asserts the verify page comes next.
async fn create_account(
    browser: &mut Browser,
    page: &Answer,
    email: &str,
    password: &str,
) -> Answer {
    let verify = browser
        .submit(
            page,
            "/consent/account",
            &[
                ("email", email),
                ("password", password),
                ("action", "create"),
            ],
        )
        .await;
    assert_verify_page(&verify);
    verify
}

fn assert_verify_page(page: &Answer) {
    assert!(
        page.body.contains("Verification code") && !page.body.contains("Choose an MCP server"),
        "expected the verify page, got {}:\n{}",
        page.status,
        page.body
    );
}

/// The server page: only a verified, signed-in account gets there.
fn assert_signed_in(page: &Answer, email: &str) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Choose an MCP server"),
        "expected the server page for {email}:\n{}",
        page.body
    );
}

/// From a signed-in page: picks the only server when asked, then `level`, and accepts;
/// returns the redirect to the client.
async fn accept(browser: &mut Browser, page: Answer, level: &str) -> String {
    let mut page = page;
    if page.body.contains("name=\"server\"") {
        let server = page.hidden("server");
        page = browser
            .submit(&page, "/consent/server", &[("server", &server)])
            .await;
    }
    assert_eq!(page.status, 200, "trust page: {}", page.body);
    assert!(page.body.contains("name=\"level\""), "{}", page.body);
    let done = browser
        .submit(
            &page,
            "/consent/decide",
            &[("level", level), ("decision", "accept")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    done.location().expect("redirect").to_owned()
}

/// A new account for `email` consents to `authorization` at Medium; the code.
async fn consent_code(
    gateway: &DevGateway,
    client: &Client,
    authorization: &Authorization,
    email: &str,
) -> String {
    let mut browser = Browser::new(gateway);
    let mut outbox = Outbox::of(gateway);
    let sign_in = browser.open(&authorization.url).await;
    assert_eq!(sign_in.status, 200, "{}", sign_in.body);
    let signed_in = sign_up(&mut browser, &mut outbox, &sign_in, email).await;
    let location = accept(&mut browser, signed_in, "medium").await;
    assert!(location.starts_with(&client.redirect_uri), "{location}");
    assert_eq!(param(&location, "state").as_deref(), Some(STATE));
    assert_eq!(
        param(&location, "iss").as_deref(),
        Some(gateway.base.as_str())
    );
    param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

/// A client registered for `REDIRECT`, its authorization for `<base>/mcp` and a code for it.
async fn authorized(gateway: &DevGateway, email: &str) -> (Client, Authorization, String) {
    let client = register(gateway, &[REDIRECT]).await;
    let authorization = authorization(gateway, &client, &gateway.mcp_url(), &[]);
    let code = consent_code(gateway, &client, &authorization, email).await;
    (client, authorization, code)
}

/// POSTs a token request.
async fn token(gateway: &DevGateway, pairs: &[(&str, &str)]) -> Answer {
    let response = http()
        .post(format!("{}/oauth/token", gateway.base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .expect("token");
    Answer::read(response).await
}

/// Exchanges `code` with `verifier` (and the authorization's redirect URI and resource).
async fn exchange(
    gateway: &DevGateway,
    client: &Client,
    authorization: &Authorization,
    code: &str,
    verifier: &str,
) -> Answer {
    token(
        gateway,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &client.id),
            ("code_verifier", verifier),
            ("redirect_uri", &client.redirect_uri),
            ("resource", &authorization.resource),
        ],
    )
    .await
}

async fn refresh(gateway: &DevGateway, client: &Client, refresh_token: &str) -> Answer {
    token(
        gateway,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.id),
        ],
    )
    .await
}

/// Asserts a token-endpoint error: `status`, the RFC 6749 `error` and `no-store`.
fn assert_token_error(answer: &Answer, status: u16, error: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.json()["error"], error, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

/// The tokens of a successful token answer.
fn tokens(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// The data plane

/// `initialize` at `path` with `token`.
async fn initialize(gateway: &DevGateway, path: &str, token: &str) -> Answer {
    let response = http()
        .post(format!("{}{path}", gateway.base))
        .bearer_auth(token)
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": { "name": "consent-negative", "version": "1" },
                },
            })
            .to_string(),
        )
        .send()
        .await
        .expect("initialize");
    Answer::read(response).await
}

/// Repeats `initialize` until it answers `status` (the replica catches up), or fails.
async fn initialize_until(gateway: &DevGateway, path: &str, token: &str, status: u16) -> Answer {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let answer = initialize(gateway, path, token).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "initialize at {path} never answered {status}; last {} {:?} {}",
            answer.status,
            answer.header("www-authenticate"),
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_revoked(answer: &Answer) {
    let challenge = answer.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("revoked"),
        "{challenge}"
    );
}

// ---------------------------------------------------------------------------------------
// 1. PKCE

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_request_without_s256_pkce_is_sent_back_with_invalid_request() {
    let gateway = bare_gateway().await;
    let client = register(&gateway, &[REDIRECT]).await;
    let resource = gateway.mcp_url();
    let verifier = pkce().0;
    for (case, change) in [
        (
            "no code_challenge",
            vec![("code_challenge", None), ("code_challenge_method", None)],
        ),
        (
            "no code_challenge, S256 method",
            vec![("code_challenge", None)],
        ),
        (
            "plain",
            vec![
                ("code_challenge", Some(verifier.as_str())),
                ("code_challenge_method", Some("plain")),
            ],
        ),
        (
            "no method (means plain)",
            vec![("code_challenge_method", None)],
        ),
    ] {
        let request = authorization(&gateway, &client, &resource, &change);
        let answer = Browser::new(&gateway).get(&request.url).await;
        assert_eq!(answer.status, 303, "{case}: {}", answer.body);
        let location = answer.location().expect("Location");
        assert!(location.starts_with(REDIRECT), "{case}: {location}");
        assert_eq!(
            param(location, "error").as_deref(),
            Some("invalid_request"),
            "{case}: {location}"
        );
        assert_eq!(param(location, "state").as_deref(), Some(STATE), "{case}");
        assert_eq!(
            param(location, "iss").as_deref(),
            Some(gateway.base.as_str()),
            "{case}"
        );
        assert!(param(location, "code").is_none(), "{case}: {location}");
    }
    // The same request with S256 goes on to the consent pages.
    let request = authorization(&gateway, &client, &resource, &[]);
    let answer = Browser::new(&gateway).get(&request.url).await;
    assert_eq!(answer.status, 303);
    assert!(
        answer.location().unwrap().starts_with("/consent?flow="),
        "{:?}",
        answer.location()
    );
}

// 2. A wrong verifier (or client, or redirect URI)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_verifier_is_refused_without_spending_the_code() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let (client, authorization, code) = authorized(&gateway, email).await;

    let wrong = pkce().0;
    let answer = exchange(&gateway, &client, &authorization, &code, &wrong).await;
    assert_token_error(&answer, 400, "invalid_grant");
    // A malformed or missing verifier is a malformed request.
    let answer = exchange(&gateway, &client, &authorization, &code, "short").await;
    assert_token_error(&answer, 400, "invalid_request");
    let answer = token(
        &gateway,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client.id),
        ],
    )
    .await;
    assert_token_error(&answer, 400, "invalid_request");
    // Another client, or another redirect URI (exact at the token endpoint, even loopback).
    let other = register(&gateway, &[REDIRECT]).await;
    let answer = exchange(
        &gateway,
        &other,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    assert_token_error(&answer, 400, "invalid_grant");
    let moved = Client {
        id: client.id.clone(),
        redirect_uri: "http://127.0.0.1:50123/callback".to_owned(),
    };
    let answer = exchange(
        &gateway,
        &moved,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    assert_token_error(&answer, 400, "invalid_grant");
    // The checks come before the code is redeemed: the right verifier still works.
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (access, _) = tokens(&answer);
    initialize_until(&gateway, "/mcp", &access, 200).await;
}

// 3. Code reuse

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_refused_and_revokes_the_session_it_started() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let (client, authorization, code) = authorized(&gateway, email).await;

    let first = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (access, refresh_token) = tokens(&first);
    initialize_until(&gateway, "/mcp", &access, 200).await;

    let again = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    assert_token_error(&again, 400, "invalid_grant");
    // The session is revoked: the first access token dies at the data plane...
    let refused = initialize_until(&gateway, "/mcp", &access, 401).await;
    assert_revoked(&refused);
    // ...and its refresh token is refused.
    let answer = refresh(&gateway, &client, &refresh_token).await;
    assert_token_error(&answer, 400, "invalid_grant");
}

// 4. Refresh-token rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_out_refresh_token_is_refused_and_revokes_the_session() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let (client, authorization, code) = authorized(&gateway, email).await;
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (_, first) = tokens(&answer);

    let answer = refresh(&gateway, &client, &first).await;
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let (access, second) = tokens(&answer);
    assert_ne!(first, second, "the refresh token rotates");
    initialize_until(&gateway, "/mcp", &access, 200).await;

    let reused = refresh(&gateway, &client, &first).await;
    assert_token_error(&reused, 400, "invalid_grant");
    // The whole session is gone: the new refresh token and access token too.
    let answer = refresh(&gateway, &client, &second).await;
    assert_token_error(&answer, 400, "invalid_grant");
    let refused = initialize_until(&gateway, "/mcp", &access, 401).await;
    assert_revoked(&refused);
}

// 5. Redirect URIs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_redirect_uri_gets_an_error_page_and_a_loopback_one_any_port() {
    let gateway = bare_gateway().await;
    let client = register(&gateway, &[REDIRECT]).await;
    let resource = gateway.mcp_url();
    for presented in [
        "http://127.0.0.1:43117/other",
        "https://evil.example/cb",
        "http://localhost:43117/callback",
        "http://127.0.0.1:43117/callback?extra=1",
        "http://127.0.0.1:43117/callback#fragment",
        "javascript:alert(1)",
    ] {
        let request = authorization(
            &gateway,
            &client,
            &resource,
            &[("redirect_uri", Some(presented))],
        );
        let answer = Browser::new(&gateway).get(&request.url).await;
        assert_eq!(answer.status, 400, "{presented}: {:?}", answer.location());
        assert_eq!(
            answer.location(),
            None,
            "{presented}: nothing is redirected"
        );
        assert!(
            answer.body.contains("This sign-in request cannot be used")
                && answer.body.contains("redirect_uri is not acceptable"),
            "{presented}:\n{}",
            answer.body
        );
    }
    // A repeated parameter is an error page too, even with a registered redirect URI.
    let (_, challenge) = pkce();
    let repeated = authorize_url(
        &gateway,
        &[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", REDIRECT),
            ("redirect_uri", "https://evil.example/cb"),
            ("state", STATE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
        ],
    );
    let answer = Browser::new(&gateway).get(&repeated).await;
    assert_eq!(answer.status, 400, "repeated: {:?}", answer.location());
    assert_eq!(answer.location(), None, "repeated");
    // An unknown client and a missing redirect URI (its registration is loopback, so the port
    // must be sent) are error pages too.
    let unknown = Client {
        id: "no-such-client".to_owned(),
        redirect_uri: REDIRECT.to_owned(),
    };
    let missing = [
        authorization(&gateway, &unknown, &resource, &[]),
        authorization(&gateway, &client, &resource, &[("redirect_uri", None)]),
    ];
    for request in missing {
        let answer = Browser::new(&gateway).get(&request.url).await;
        assert_eq!(answer.status, 400, "{}", request.url);
        assert_eq!(answer.location(), None);
    }
    // RFC 8252 §7.3: another port on the registered loopback URI is the same client.
    let request = authorization(
        &gateway,
        &client,
        &resource,
        &[("redirect_uri", Some("http://127.0.0.1:50123/callback"))],
    );
    let answer = Browser::new(&gateway).get(&request.url).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer.location().unwrap().starts_with("/consent?flow="),
        "{:?}",
        answer.location()
    );
}

// 6. Foreign resources

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_of_another_server_is_refused_as_invalid_target() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let client = register(&gateway, &[REDIRECT]).await;
    let unknown_key = format!("{}/mcp/nope", gateway.base);
    for (resource, error) in [
        (Some("https://other.example/mcp"), "invalid_target"),
        (Some(unknown_key.as_str()), "invalid_target"),
        (None, "invalid_request"),
    ] {
        let request = authorization(
            &gateway,
            &client,
            &gateway.mcp_url(),
            &[("resource", resource)],
        );
        let answer = Browser::new(&gateway).get(&request.url).await;
        assert_eq!(answer.status, 303, "{resource:?}: {}", answer.body);
        let location = answer.location().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            param(location, "error").as_deref(),
            Some(error),
            "{location}"
        );
        assert_eq!(param(location, "state").as_deref(), Some(STATE));
        assert_eq!(
            param(location, "iss").as_deref(),
            Some(gateway.base.as_str())
        );
    }

    // The token request must name the resource that was authorized.
    let authorization = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let code = consent_code(&gateway, &client, &authorization, email).await;
    let foreign = Authorization {
        resource: "https://other.example/mcp".to_owned(),
        url: String::new(),
        verifier: String::new(),
    };
    let answer = exchange(&gateway, &client, &foreign, &code, &authorization.verifier).await;
    assert_token_error(&answer, 400, "invalid_target");
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (_, refresh_token) = tokens(&answer);
    // So must a refresh.
    let answer = token(
        &gateway,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &client.id),
            ("resource", "https://other.example/mcp"),
        ],
    )
    .await;
    assert_token_error(&answer, 400, "invalid_target");
}

// 7. CSRF and Origin

/// One defective POST of the account form: its CSRF field, `Origin` and `Referer`.
#[derive(Debug)]
struct Forged<'a> {
    case: &'a str,
    csrf: Option<&'a str>,
    origin: Option<&'a str>,
    referer: Option<String>,
}

impl<'a> Forged<'a> {
    fn new(
        case: &'a str,
        csrf: Option<&'a str>,
        origin: Option<&'a str>,
        referer: Option<&str>,
    ) -> Self {
        Forged {
            case,
            csrf,
            origin,
            referer: referer.map(str::to_owned),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_posts_without_the_csrf_token_or_from_another_origin_are_refused() {
    let gateway = bare_gateway().await;
    let email = "ada@example.com";
    gateway.add_human(email).await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let flow = page.hidden("flow");
    let csrf = page.hidden("csrf");
    let base = gateway.base.as_str();
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let fields = |csrf: Option<&str>| {
        let mut fields = vec![
            ("flow", flow.clone()),
            ("email", email.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("action", "create".to_owned()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf.to_owned()));
        }
        fields
    };
    let cases = [
        Forged::new("no csrf", None, Some(base), None),
        Forged::new("empty csrf", Some(""), Some(base), None),
        Forged::new("wrong csrf", Some(wrong), Some(base), None),
        Forged::new(
            "foreign Origin",
            Some(&csrf),
            Some("https://evil.example"),
            None,
        ),
        Forged::new("Origin null", Some(&csrf), Some("null"), None),
        Forged::new(
            "foreign Referer, no Origin",
            Some(&csrf),
            None,
            Some("https://evil.example/consent"),
        ),
        Forged::new(
            "Referer of a look-alike host, no Origin",
            Some(&csrf),
            None,
            Some(&format!("{base}.evil.example/consent")),
        ),
        Forged::new("neither Origin nor Referer", Some(&csrf), None, None),
    ];
    for forged in &cases {
        let case = forged.case;
        let owned = fields(forged.csrf);
        let fields: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let headers: Vec<(&str, &str)> = forged
            .referer
            .iter()
            .map(|referer| ("referer", referer.as_str()))
            .collect();
        let answer = browser
            .post_as("/consent/account", &fields, forged.origin, &headers)
            .await;
        assert_eq!(answer.status, 403, "{case}: {}", answer.body);
        assert_eq!(answer.location(), None, "{case}");
        assert!(
            answer.body.contains("Request refused"),
            "{case}: {}",
            answer.body
        );
    }
    let owned = fields(Some(&csrf));
    let fields: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Without the cookie the token means nothing either.
    let mut cookieless = Browser::new(&gateway);
    let answer = cookieless.post("/consent/account", &fields).await;
    assert_eq!(answer.status, 403, "no cookie: {}", answer.body);

    // Nothing happened: no account, so no mail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(eml_files(&gateway.outbox()), Vec::<PathBuf>::new());
    // The same form from the page itself works (so the refusals above were the checks).
    let mut outbox = Outbox::of(&gateway);
    let answer = browser.post("/consent/account", &fields).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let verify = browser.follow(answer).await;
    assert_verify_page(&verify);
    outbox.next_code(email).await;
}

// 8. Unverified accounts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_account_signs_in_only_to_the_code_page() {
    let gateway = bare_gateway().await;
    let email = "ada@example.com";
    gateway.add_human(email).await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);

    let mut creator = Browser::new(&gateway);
    let page = creator.open(&request.url).await;
    let verify = create_account(&mut creator, &page, email, PASSWORD).await;
    // Accepting from the code page, without a code, issues nothing.
    let answer = creator
        .post(
            "/consent/decide",
            &[
                ("flow", &verify.hidden("flow")),
                ("csrf", &verify.hidden("csrf")),
                ("level", "low"),
                ("decision", "accept"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer.location().unwrap().starts_with("/consent?flow="),
        "{:?}",
        answer.location()
    );
    assert_verify_page(&creator.follow(answer).await);

    // The right password in a fresh browser: the code page, not the server page.
    let mut other = Browser::new(&gateway);
    let page = other.open(&request.url).await;
    let answer = other
        .submit(
            &page,
            "/consent/account",
            &[
                ("email", email),
                ("password", PASSWORD),
                ("action", "sign-in"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_verify_page(&answer);

    // An unknown email and a wrong password read the same.
    let mut answers = Vec::new();
    for (who, password) in [
        ("nobody@example.com", PASSWORD),
        (email, "a wrong password!"),
    ] {
        let mut browser = Browser::new(&gateway);
        let page = browser.open(&request.url).await;
        let answer = browser
            .submit(
                &page,
                "/consent/account",
                &[
                    ("email", who),
                    ("password", password),
                    ("action", "sign-in"),
                ],
            )
            .await;
        assert_eq!(answer.status, 401, "{who}: {}", answer.body);
        assert!(answer.body.contains(WRONG_LOGIN), "{who}: {}", answer.body);
        answers.push(answer);
    }
    assert_eq!(answers[0].without_secrets(), answers[1].without_secrets());
}

// 9. Claiming a pre-authorized email

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_mailbox_owner_can_claim_a_pre_authorized_email() {
    let bob = "bob@example.com";
    let (gateway, _upstream) = gateway_with_server(&[bob]).await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut outbox = Outbox::of(&gateway);

    // The attacker signs up first with password A but never sees the mail.
    let mut attacker = Browser::new(&gateway);
    let page = attacker.open(&request.url).await;
    let attacker_wait = create_account(&mut attacker, &page, bob, "attacker password A").await;
    let attacker_code = outbox.next_code(bob).await;

    // Bob signs up with password B; the newest mail's code verifies him, the older one no
    // longer does.
    let mut real = Browser::new(&gateway);
    let page = real.open(&request.url).await;
    let verify = create_account(&mut real, &page, bob, PASSWORD).await;
    let code = outbox.next_code(bob).await;
    if attacker_code != code {
        let answer = real
            .submit(
                &verify,
                "/consent/verify",
                &[("code", &attacker_code), ("action", "verify")],
            )
            .await;
        assert_eq!(
            answer.status, 400,
            "the first code is void: {}",
            answer.body
        );
        assert_verify_page(&answer);
    }
    let signed_in = real
        .submit(
            &verify,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await;
    assert_signed_in(&signed_in, bob);

    // The attacker's pending session gains nothing.
    let answer = attacker
        .submit(
            &attacker_wait,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await;
    assert_verify_page(&answer);

    // Password A no longer signs in; password B does.
    let mut fresh = Browser::new(&gateway);
    let page = fresh.open(&request.url).await;
    let answer = fresh
        .submit(
            &page,
            "/consent/account",
            &[
                ("email", bob),
                ("password", "attacker password A"),
                ("action", "sign-in"),
            ],
        )
        .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.body.contains(WRONG_LOGIN), "{}", answer.body);
    let answer = fresh
        .submit(
            &answer,
            "/consent/account",
            &[
                ("email", bob),
                ("password", PASSWORD),
                ("action", "sign-in"),
            ],
        )
        .await;
    assert_signed_in(&answer, bob);
}

// 10. The code attempt limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_void_the_code_until_a_new_one_is_sent() {
    let gateway = bare_gateway().await;
    let email = "ada@example.com";
    gateway.add_human(email).await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut outbox = Outbox::of(&gateway);
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    let mut page = create_account(&mut browser, &page, email, PASSWORD).await;
    let code = outbox.next_code(email).await;
    let number: u32 = code.parse().unwrap();
    let wrong = format!("{:06}", (number + 1) % 1_000_000);

    for attempt in 1..=5 {
        page = browser
            .submit(
                &page,
                "/consent/verify",
                &[("code", &wrong), ("action", "verify")],
            )
            .await;
        assert_eq!(page.status, 400, "attempt {attempt}: {}", page.body);
        assert!(
            page.body.contains("That code is not right."),
            "attempt {attempt}: {}",
            page.body
        );
    }
    let page = browser
        .submit(
            &page,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("can no longer be used"), "{}", page.body);

    let page = browser
        .submit(&page, "/consent/verify", &[("action", "resend")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("We sent a new code."), "{}", page.body);
    let new_code = outbox.next_code(email).await;
    let page = browser
        .submit(
            &page,
            "/consent/verify",
            &[("code", &new_code), ("action", "verify")],
        )
        .await;
    assert_signed_in(&page, email);
}

// 11. Real clients' registrations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_register_and_dangerous_redirect_uris_are_refused() {
    let gateway = bare_gateway().await;
    let clients = [
        (
            "Cursor",
            json!({
                "client_name": "Cursor",
                "redirect_uris": [
                    "cursor://anysphere.cursor-mcp/oauth/callback",
                    "https://www.cursor.com/agents/mcp/oauth/callback",
                    "http://localhost:8787/callback"
                ],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"]
            }),
        ),
        (
            "VS Code",
            json!({
                "client_name": "Visual Studio Code",
                "redirect_uris": [
                    "https://insiders.vscode.dev/redirect",
                    "https://vscode.dev/redirect",
                    "http://127.0.0.1/",
                    "http://127.0.0.1:33418/"
                ],
                "token_endpoint_auth_method": "none",
                "grant_types": [
                    "authorization_code",
                    "refresh_token",
                    "urn:ietf:params:oauth:grant-type:device_code"
                ],
                "response_types": ["code"]
            }),
        ),
        (
            "Claude Code",
            json!({
                "client_name": "Claude Code",
                "redirect_uris": ["http://localhost:54545/callback"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"]
            }),
        ),
        (
            "mcp-remote",
            json!({
                "client_name": "MCP CLI Proxy",
                "redirect_uris": ["http://localhost:19876/oauth/callback"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "application_type": "native",
                "scope": "mcp",
                "software_id": "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
                "software_version": "0.15.1"
            }),
        ),
    ];
    let mut ids = Vec::new();
    for (name, body) in &clients {
        let answer = register_raw(&gateway, body).await;
        assert_eq!(answer.status, 201, "{name}: {}", answer.body);
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{name}");
        let registered = answer.json();
        let id = registered["client_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: {registered}");
        assert_eq!(
            registered["redirect_uris"], body["redirect_uris"],
            "{name}: {registered}"
        );
        assert!(
            registered.get("client_secret").is_none(),
            "{name}: {registered}"
        );
        ids.push(id.to_owned());
    }
    // What they then send works: Cursor's private-use scheme exactly, VS Code's loopback
    // URI on a random port.
    let resource = gateway.mcp_url();
    for (id, redirect_uri) in [
        (&ids[0], "cursor://anysphere.cursor-mcp/oauth/callback"),
        (&ids[1], "http://127.0.0.1:61234/"),
        (&ids[2], "http://localhost:54545/callback"),
    ] {
        let client = Client {
            id: id.clone(),
            redirect_uri: redirect_uri.to_owned(),
        };
        let request = authorization(&gateway, &client, &resource, &[]);
        let answer = Browser::new(&gateway).get(&request.url).await;
        assert_eq!(answer.status, 303, "{redirect_uri}: {}", answer.body);
        assert!(
            answer.location().unwrap().starts_with("/consent?flow="),
            "{redirect_uri}: {:?}",
            answer.location()
        );
    }

    for bad in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "http://evil.example/callback",
        "https://user:pass@app.example/callback",
        "https://app.example/callback#fragment",
    ] {
        // Alone, or among good ones: the whole registration is refused.
        for redirect_uris in [vec![bad], vec!["http://127.0.0.1/callback", bad]] {
            let answer = register_raw(
                &gateway,
                &json!({ "client_name": "Bad", "redirect_uris": redirect_uris }),
            )
            .await;
            assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
            assert_eq!(answer.json()["error"], "invalid_redirect_uri", "{bad}");
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{bad}");
        }
    }
}

// 12. Token answers, discovery and JWKS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_answers_are_no_store_and_discovery_advertises_s256_and_the_signing_key() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let get = |path: &str| {
        let url = format!("{}{path}", gateway.base);
        async move { Answer::read(http().get(url).send().await.expect("GET")).await }
    };
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let answer = get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let document = answer.json();
        assert_eq!(document["issuer"], gateway.base.as_str(), "{path}");
        assert_eq!(
            document["code_challenge_methods_supported"],
            json!(["S256"]),
            "{path}"
        );
        assert_eq!(
            document["authorization_response_iss_parameter_supported"], true,
            "{path}"
        );
        assert_eq!(
            document["registration_endpoint"],
            format!("{}/oauth/register", gateway.base),
            "{path}"
        );
        assert_eq!(
            document["client_id_metadata_document_supported"], true,
            "{path}"
        );
        assert_eq!(
            document["token_endpoint_auth_methods_supported"],
            json!(["none"]),
            "{path}"
        );
    }

    let (client, authorization, code) = authorized(&gateway, email).await;
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
    let (access, _) = tokens(&answer);
    // Errors too.
    let answer = token(&gateway, &[("grant_type", "password")]).await;
    assert_token_error(&answer, 400, "unsupported_grant_type");

    let jwks = get("/oauth/jwks").await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    let keys = jwks.json()["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "{}", jwks.body);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    let head = access.split('.').next().expect("JWT header");
    let head: Value = serde_json::from_slice(&base64url_decode(head)).expect("JWT header JSON");
    assert_eq!(head["alg"], "ES256", "{head}");
    assert_eq!(head["kid"], keys[0]["kid"], "{head} vs {}", jwks.body);
}

// 13. Page headers and the cookie

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_pages_cannot_be_framed_and_the_cookie_is_http_only_and_lax() {
    let gateway = bare_gateway().await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut browser = Browser::new(&gateway);
    let redirect = browser.get(&request.url).await;
    assert_eq!(redirect.status, 303);
    assert_eq!(redirect.header("cache-control"), Some("no-store"));
    let sign_in = browser.follow(redirect).await;
    let bad_redirect = Browser::new(&gateway)
        .get(
            &authorization(
                &gateway,
                &client,
                &gateway.mcp_url(),
                &[("redirect_uri", Some("https://evil.example/cb"))],
            )
            .url,
        )
        .await;
    let bad_flow = Browser::new(&gateway).get("/consent?flow=garbage").await;
    assert_eq!(bad_flow.status, 400);
    for (page, answer) in [
        ("sign-in", &sign_in),
        ("error page", &bad_redirect),
        ("expired flow", &bad_flow),
    ] {
        let csp = answer.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp:?}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{page}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{page}");
    }
    let cookie = browser
        .set_cookie
        .clone()
        .expect("Set-Cookie on the sign-in page");
    assert!(cookie.starts_with("portcullis="), "{cookie}");
    let attributes: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["httponly", "samesite=lax", "path=/"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} in {cookie}"
        );
    }
}

// 14. A token for one server at another

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_consented_for_one_server_is_refused_at_another() {
    let email = "ada@example.com";
    let (gateway, upstream) = gateway_with_server(&[email]).await;
    gateway.import(upstream.url(), "second", "Second").await;
    gateway.grant(email, "second", "high").await;

    let client = register(&gateway, &[REDIRECT]).await;
    let resource = format!("{}/mcp/everything", gateway.base);
    let authorization = authorization(&gateway, &client, &resource, &[]);
    let code = consent_code(&gateway, &client, &authorization, email).await;
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (access, _) = tokens(&answer);

    initialize_until(&gateway, "/mcp/everything", &access, 200).await;
    let answer = initialize(&gateway, "/mcp/second", &access).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("another server"), "{}", answer.body);
    let answer = initialize(&gateway, "/mcp/nope", &access).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
}

/// A URL client id is a Client ID Metadata Document the authorization server would fetch:
/// one naming a private, loopback, link-local (cloud metadata) or plain-HTTP address is
/// refused before anything is fetched, on an error page that redirects nowhere, and no agent
/// is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_metadata_url_aimed_at_internal_addresses_is_refused_without_a_fetch() {
    let gateway = bare_gateway().await;
    let resource = gateway.mcp_url();
    let (_, challenge) = pkce();
    for client_id in [
        "https://127.0.0.1/client.json",
        "https://localhost/client.json",
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.0.0.7/client.json",
        "https://[::1]/client.json",
        "http://client.example/client.json",
        "https://client.example/",
    ] {
        let url = authorize_url(
            &gateway,
            &[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", "http://127.0.0.1:4444/callback"),
                ("state", STATE),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("resource", &resource),
            ],
        );
        let answer = Answer::read(http().get(&url).send().await.unwrap()).await;
        assert_eq!(answer.status, 400, "{client_id}: {}", answer.body);
        assert_eq!(answer.location(), None, "{client_id}: never redirected");
        assert!(
            answer.body.contains("metadata document") || answer.body.contains("not registered"),
            "{client_id}: {}",
            answer.body
        );
    }
    assert!(
        gateway
            .agents()
            .await
            .iter()
            .all(|agent| !agent["client_id"]
                .as_str()
                .unwrap_or_default()
                .contains("://")),
        "no agent was recorded for a refused document"
    );
}

// 15. Signing-key rotation

/// The `kid` in an access token's header.
fn kid_of(token: &str) -> String {
    let head = token.split('.').next().expect("JWT header");
    let head: Value = serde_json::from_slice(&base64url_decode(head)).expect("JWT header JSON");
    head["kid"].as_str().expect("kid").to_owned()
}

/// The kids the host publishes.
async fn published_kids(gateway: &DevGateway) -> Vec<String> {
    let url = format!("{}/oauth/jwks", gateway.base);
    let jwks = Answer::read(http().get(url).send().await.expect("JWKS")).await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    jwks.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_keeps_verifying_until_retired_and_then_its_tokens_are_refused() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let keys_path = format!("/api/v1/hosts/{}/signing-keys", gateway.host);
    let (client, authorization, code) = authorized(&gateway, email).await;
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (old_access, refresh_token) = tokens(&answer);
    let old_kid = kid_of(&old_access);
    assert_eq!(
        published_kids(&gateway).await,
        std::slice::from_ref(&old_kid)
    );
    initialize_until(&gateway, "/mcp", &old_access, 200).await;

    // Rotate: a new active key; the old one stays published and keeps verifying.
    let (status, rotated) = gateway.api("POST", &keys_path, None).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["active"], true, "{rotated}");
    assert_eq!(rotated["algorithm"], "ES256", "{rotated}");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    let (status, listed) = gateway.api("GET", &keys_path, None).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<(String, bool)> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| {
            (
                key["kid"].as_str().expect("kid").to_owned(),
                key["active"] == true,
            )
        })
        .collect();
    assert_eq!(listed, [(old_kid.clone(), false), (new_kid.clone(), true)]);
    assert_eq!(
        published_kids(&gateway).await,
        [old_kid.clone(), new_kid.clone()]
    );
    initialize_until(&gateway, "/mcp", &old_access, 200).await;

    // New tokens carry the new key's id and verify.
    let (new_access, _) = tokens(&refresh(&gateway, &client, &refresh_token).await);
    assert_eq!(kid_of(&new_access), new_kid);
    initialize_until(&gateway, "/mcp", &new_access, 200).await;

    // The active key cannot be retired, nor an unknown one; an old one not while its
    // tokens may be live, unless forced.
    let (status, body) = gateway
        .api("DELETE", &format!("{keys_path}/{new_kid}"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("rotate"), "{body}");
    let (status, body) = gateway
        .api("DELETE", &format!("{keys_path}/no-such-key"), None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = gateway
        .api("DELETE", &format!("{keys_path}/{old_kid}"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("force"), "{body}");
    assert_eq!(published_kids(&gateway).await.len(), 2, "nothing changed");
    let (status, body) = gateway
        .api("DELETE", &format!("{keys_path}/{old_kid}?force=true"), None)
        .await;
    assert_eq!(status, 204, "{body}");

    // Gone from the JWKS; its token refused as invalid; the new key's token still good.
    assert_eq!(
        published_kids(&gateway).await,
        std::slice::from_ref(&new_kid)
    );
    let refused = initialize_until(&gateway, "/mcp", &old_access, 401).await;
    let challenge = refused.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    initialize_until(&gateway, "/mcp", &new_access, 200).await;
    // Retiring it again changes nothing.
    let (status, body) = gateway
        .api("DELETE", &format!("{keys_path}/{old_kid}?force=true"), None)
        .await;
    assert_eq!(status, 204, "{body}");
}

// 16. Pre-registered clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_registered_client_authorizes_only_at_the_admins_redirect_uris() {
    let email = "ada@example.com";
    let (gateway, _upstream) = gateway_with_server(&[email]).await;
    let agents_path = format!("/api/v1/hosts/{}/agents", gateway.host);

    // Unsafe or malformed registrations are refused, naming the field.
    for (body, field) in [
        (
            json!({ "name": "Acme CLI", "redirect_uris": ["javascript:alert(1)"] }),
            "redirect_uris",
        ),
        (
            json!({ "name": "Acme CLI", "redirect_uris": ["http://evil.example/cb"] }),
            "redirect_uris",
        ),
        (
            json!({ "name": "Acme CLI", "redirect_uris": [] }),
            "redirect_uris",
        ),
        (json!({ "name": " ", "redirect_uris": [REDIRECT] }), "name"),
        (
            json!({ "name": "Acme CLI", "uri": "ftp://x.example", "redirect_uris": [REDIRECT] }),
            "uri",
        ),
    ] {
        let (status, answer) = gateway.api("POST", &agents_path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            answer["error"]["details"]["field"], field,
            "{body}: {answer}"
        );
    }
    assert!(gateway.agents().await.is_empty(), "nothing was registered");

    let (status, agent) = gateway
        .api(
            "POST",
            &agents_path,
            Some(json!({
                "name": "Acme CLI",
                "uri": "https://cli.acme.example",
                "redirect_uris": [REDIRECT, "cursor://anysphere.cursor-mcp/oauth/callback"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["type"], "pre-registered", "{agent}");
    assert_eq!(agent["name"], "Acme CLI", "{agent}");
    let client = Client {
        id: agent["client_id"].as_str().expect("client_id").to_owned(),
        redirect_uri: REDIRECT.to_owned(),
    };
    let listed = gateway.agents().await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["client_id"], client.id.as_str());
    assert_eq!(
        listed[0]["redirect_uris"],
        json!([REDIRECT, "cursor://anysphere.cursor-mcp/oauth/callback"])
    );

    // A redirect URI the admin did not register gets the error page, never a redirect.
    let stranger = Client {
        id: client.id.clone(),
        redirect_uri: "https://attacker.example/cb".to_owned(),
    };
    let wrong = authorization(&gateway, &stranger, &gateway.mcp_url(), &[]);
    let answer = Answer::read(http().get(&wrong.url).send().await.expect("GET")).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.header("location").is_none());

    // Its own redirect URI (any loopback port) goes through consent to working tokens.
    let authorization = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let code = consent_code(&gateway, &client, &authorization, email).await;
    let answer = exchange(
        &gateway,
        &client,
        &authorization,
        &code,
        &authorization.verifier,
    )
    .await;
    let (access, _) = tokens(&answer);
    initialize_until(&gateway, "/mcp", &access, 200).await;
    let listed = gateway.agents().await;
    assert_eq!(listed.len(), 1, "consent reused the agent: {listed:?}");
    assert_eq!(listed[0]["human_email"], email);
}

// ---------------------------------------------------------------------------------------
// Sign-in methods and email-domain rules, with mail through a real SMTP server

/// `dev` mailing through `smtp` (aiosmtpd), server-everything imported as "everything",
/// `emails` pre-authorized with a High ceiling, and `auth` as the host's sign-in settings.
async fn gateway_with_smtp(smtp: &SmtpSink, auth: Value, emails: &[&str]) -> (DevGateway, McpPeer) {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let url = smtp.url();
    let gateway = DevGateway::start(&["--smtp-url", &url]).await;
    gateway
        .import(upstream.url(), "everything", "Everything")
        .await;
    for email in emails {
        gateway.add_human(email).await;
        gateway.grant(email, "everything", "high").await;
    }
    let (status, host) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": auth } })),
        )
        .await;
    assert_eq!(status, 200, "{host}");
    (gateway, upstream)
}

/// The 6-digit code of the next new mail to `to`, and that mail.
async fn mailed_code(smtp: &SmtpSink, to: &str, seen: &[Mail]) -> (String, Mail) {
    let mail = smtp.next_to(to, seen, MAIL).await.expect("mail");
    let code = six_digits(&mail.body).unwrap_or_else(|| panic!("no code in {mail:?}"));
    (code, mail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_sign_in_code_signs_in_once_and_is_stored_only_as_a_keyed_hash() {
    let smtp = SmtpSink::start().await.expect("aiosmtpd");
    let ada = "ada@example.com";
    let (mut gateway, _upstream) = gateway_with_smtp(
        &smtp,
        json!({ "password": false, "email_otp": true }),
        &[ada],
    )
    .await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    assert!(
        page.body.contains("Email me a sign-in code") && !page.body.contains("name=\"password\""),
        "{}",
        page.body
    );
    // Password sign-in is off, even posted by hand; nothing is mailed for it.
    let refused = browser
        .submit(
            &page,
            "/consent/account",
            &[
                ("email", ada),
                ("password", PASSWORD),
                ("action", "sign-in"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("password is off"), "{}", refused.body);

    let code_page = browser
        .submit(
            &page,
            "/consent/account",
            &[("email", ada), ("action", "email-code")],
        )
        .await;
    assert_eq!(code_page.status, 200, "{}", code_page.body);
    assert!(
        code_page.body.contains("Sign-in code") && code_page.body.contains("5 minutes"),
        "{}",
        code_page.body
    );
    let (first_code, first) = mailed_code(&smtp, ada, &[]).await;
    assert_eq!(first.subject, "Your Portcullis sign-in code");
    // A new code voids the old one.
    let resent = browser
        .submit(&code_page, "/consent/verify", &[("action", "resend")])
        .await;
    assert!(
        resent.body.contains("We sent a new code"),
        "{}",
        resent.body
    );
    let (second_code, _) = mailed_code(&smtp, ada, std::slice::from_ref(&first)).await;
    if first_code != second_code {
        let old = browser
            .submit(
                &resent,
                "/consent/verify",
                &[("code", &first_code), ("action", "verify")],
            )
            .await;
        assert_eq!(old.status, 400, "{}", old.body);
        assert!(old.body.contains("not right"), "{}", old.body);
    }
    let signed_in = browser
        .submit(
            &resent,
            "/consent/verify",
            &[("code", &second_code), ("action", "verify")],
        )
        .await;
    assert_signed_in(&signed_in, ada);
    let location = accept(&mut browser, signed_in, "medium").await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(param(&location, "code").is_some(), "{location}");

    // The log holds each code only as a key id and an HMAC: never the digits.
    let status = gateway.process.terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", gateway.process.log_text());
    let store =
        portcullis_store_sqlite::SqliteStore::open(&gateway.data.path().join("data/portcullis.db"))
            .expect("store");
    let filter = portcullis_store::SubjectFilter::host(&gateway.host).expect("filter");
    let head = portcullis_store::EventLog::head(&store)
        .await
        .expect("head");
    let mut events = portcullis_store::EventLog::subscribe(&store, &filter, 1)
        .await
        .expect("subscribe");
    let mut hashes = Vec::new();
    let mut redeemed = 0;
    while let Some(Ok(record)) = futures::StreamExt::next(&mut events).await {
        let event = portcullis_proto::decode_event(&record).expect("event");
        match event.body {
            Some(portcullis_proto::events::v1::event::Body::HumanSignInCodeIssued(e)) => {
                hashes.push(e.code_hash)
            }
            Some(portcullis_proto::events::v1::event::Body::HumanSignInCodeRedeemed(_)) => {
                redeemed += 1
            }
            _ => {}
        }
        if record.sequence >= head {
            break;
        }
    }
    assert_eq!(hashes.len(), 2, "two codes issued");
    assert_eq!(redeemed, 1, "one redeemed");
    for hash in &hashes {
        for code in [&first_code, &second_code] {
            assert!(
                !hash.windows(6).any(|w| w == code.as_bytes()),
                "a code in the log"
            );
        }
        assert!(hash.len() > 32, "key id and tag: {}", hash.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_rules_decide_which_email_may_use_which_method() {
    let smtp = SmtpSink::start().await.expect("aiosmtpd");
    let (ada, bob, eve) = ("ada@acme.com", "bob@partner.example", "eve@evil.example");
    // Everyone from acme.com or partner.example; passwords only for acme.com.
    let (gateway, _upstream) = gateway_with_smtp(
        &smtp,
        json!({
            "password": true,
            "email_otp": true,
            "allowed_domains": { "domains": ["ACME.com", "partner.example"] },
            "password_domains": { "domains": ["acme.com"] },
        }),
        &[ada, bob],
    )
    .await;
    let client = register(&gateway, &[REDIRECT]).await;
    let request = authorization(&gateway, &client, &gateway.mcp_url(), &[]);
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    assert!(
        page.body.contains("Email me a sign-in code") && page.body.contains("name=\"password\""),
        "{}",
        page.body
    );
    // partner.example may not use a password: refused before anything is checked or mailed.
    for action in ["sign-in", "create"] {
        let refused = browser
            .submit(
                &page,
                "/consent/account",
                &[("email", bob), ("password", PASSWORD), ("action", action)],
            )
            .await;
        assert_eq!(refused.status, 403, "{action}: {}", refused.body);
        assert!(
            refused.body.contains("cannot sign in here with a password"),
            "{action}: {}",
            refused.body
        );
    }
    // evil.example may use nothing; a code is not even sent. Case and spaces change nothing.
    for who in [eve, " Eve@EVIL.example "] {
        let refused = browser
            .submit(
                &page,
                "/consent/account",
                &[("email", who), ("action", "email-code")],
            )
            .await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused.body.contains("cannot sign in here with a code"),
            "{}",
            refused.body
        );
    }
    // bob signs in with a code.
    let code_page = browser
        .submit(
            &page,
            "/consent/account",
            &[("email", bob), ("action", "email-code")],
        )
        .await;
    let (code, _) = mailed_code(&smtp, bob, &[]).await;
    let signed_in = browser
        .submit(
            &code_page,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await;
    assert_signed_in(&signed_in, bob);

    // ada creates a password account (its code goes through SMTP too) and signs in.
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    let verify = create_account(&mut browser, &page, ada, PASSWORD).await;
    let (code, mail) = mailed_code(&smtp, ada, &[]).await;
    assert_eq!(mail.subject, "Your Portcullis verification code");
    let signed_in = browser
        .submit(
            &verify,
            "/consent/verify",
            &[("code", &code), ("action", "verify")],
        )
        .await;
    assert_signed_in(&signed_in, ada);

    // Nothing was mailed to eve, and bob got only his code.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.messages().expect("mails");
    assert!(
        !mails.iter().any(|m| m.to.contains("evil.example")),
        "{mails:?}"
    );
    assert_eq!(
        mails.iter().filter(|m| m.to.contains(bob)).count(),
        1,
        "{mails:?}"
    );

    // The admin turns codes off: the page offers passwords only and a posted code request
    // is refused.
    let (status, host) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": { "password": true, "email_otp": false } } })),
        )
        .await;
    assert_eq!(status, 200, "{host}");
    let mut browser = Browser::new(&gateway);
    let page = browser.open(&request.url).await;
    assert!(
        !page.body.contains("Email me a sign-in code"),
        "{}",
        page.body
    );
    let refused = browser
        .submit(
            &page,
            "/consent/account",
            &[("email", ada), ("action", "email-code")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("code by email is off"),
        "{}",
        refused.body
    );
}
