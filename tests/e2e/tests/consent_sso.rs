//! Sign-in through external identity providers on the consent pages of `portcullis dev`,
//! against real peers: npm `oidc-provider` shaped as a generic OIDC provider, as Google and
//! as two Microsoft Entra tenants (with Entra's `common` and `organizations` discovery whose
//! issuer is the `{tenantid}` template), and a GitHub-shaped OAuth App + REST API.
//!
//! The browser here keeps every site's cookies (the gateway's and the providers') and
//! follows redirects across sites by hand, so each test walks the real protocol: the
//! gateway's redirect to the provider (PKCE S256, state, nonce), the provider's sign-in, the
//! callback, the code exchange and the ID-token or API checks, and the consent page that
//! follows. Around it: who may sign in (verified addresses only, the Microsoft tenant check,
//! GitHub's unverified primary address), the host's domain rules per provider, force-
//! redirect domains that take an address away from every other method, write-only client
//! secrets sealed at rest, and a callback carried to another browser.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use portcullis_e2e::consent_client::{
    Answer, Client, CookieBrowser as Browser, authorization, form, param, register,
};
use portcullis_e2e::dev_admin::DevGateway;
use serde_json::{Value, json};
use test_fixtures::{GitHubPeer, McpPeer, OidcPeers};

const CLIENT_ID: &str = "portcullis-gateway";
/// The client secret every peer knows the gateway by; the test checks it is never stored in
/// plain text.
const CLIENT_SECRET: &str = "peer-secret-7f3a9c41d2e8b6";
/// The MCP client's redirect URI. Nothing listens there: the tests stop at it.
const REDIRECT: &str = "http://127.0.0.1:43118/callback";
const ALICE: &str = "alice@corp.example";

/// Provider ids in the host's settings, each with its callback registered at the peers.
const PROVIDERS: [&str; 6] = [
    "oidc",
    "google",
    "entra",
    "entra-common",
    "entra-orgs",
    "github",
];

// ---------------------------------------------------------------------------------------
// Set-up

/// The gateway (server-everything imported as "everything", alice pre-authorized on it) and
/// the identity peers, before any provider is configured.
struct Setup {
    gateway: DevGateway,
    _upstream: McpPeer,
    peers: OidcPeers,
    github: GitHubPeer,
}

async fn setup() -> Setup {
    let upstream = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let gateway = DevGateway::start(&[]).await;
    gateway
        .import(upstream.url(), "everything", "Everything")
        .await;
    gateway.add_human(ALICE).await;
    gateway.grant(ALICE, "everything", "high").await;
    let callbacks: Vec<String> = PROVIDERS
        .iter()
        .map(|id| format!("{}/consent/sso/{id}/callback", gateway.base))
        .collect();
    let peers = OidcPeers::start(CLIENT_ID, CLIENT_SECRET, &callbacks)
        .await
        .expect("oidc-provider peers");
    let github = GitHubPeer::start(CLIENT_ID, CLIENT_SECRET)
        .await
        .expect("GitHub-shaped peer");
    Setup {
        gateway,
        _upstream: upstream,
        peers,
        github,
    }
}

impl Setup {
    /// Every provider, as the admin API takes them, with `change` applied to each by id.
    fn providers(&self, change: impl Fn(&str, &mut Value)) -> Value {
        let mut providers = vec![
            json!({ "id": "oidc", "kind": "oidc", "display_name": "Corp SSO",
                    "issuer": self.peers.oidc }),
            json!({ "id": "google", "kind": "google", "issuer": self.peers.google }),
            json!({ "id": "entra", "kind": "microsoft", "tenant": self.peers.tenant_a,
                    "authority": self.peers.microsoft_authority }),
            json!({ "id": "entra-common", "kind": "microsoft", "tenant": "common",
                    "allowed_tenants": [self.peers.tenant_a],
                    "authority": self.peers.microsoft_authority,
                    "display_name": "Microsoft (any tenant)" }),
            json!({ "id": "entra-orgs", "kind": "microsoft", "tenant": "organizations",
                    "allowed_tenants": [self.peers.tenant_a],
                    "authority": self.peers.microsoft_authority,
                    "display_name": "Microsoft (organizations)" }),
            json!({ "id": "github", "kind": "github",
                    "authorization_endpoint": format!("{}/login/oauth/authorize", self.github.base),
                    "token_endpoint": format!("{}/login/oauth/access_token", self.github.base),
                    "api_base": self.github.base }),
        ];
        for provider in &mut providers {
            provider["client_id"] = json!(CLIENT_ID);
            provider["client_secret"] = json!(CLIENT_SECRET);
            let id = provider["id"].as_str().expect("id").to_owned();
            change(&id, provider);
        }
        Value::Array(providers)
    }

    /// Sets the host's sign-in settings; the host as answered.
    async fn configure(&self, auth: Value) -> Value {
        let (status, host) = self
            .gateway
            .api(
                "PATCH",
                &format!("/api/v1/hosts/{}", self.gateway.host),
                Some(json!({ "settings": { "auth": auth } })),
            )
            .await;
        assert_eq!(status, 200, "{host}");
        host
    }

    /// A browser at the sign-in page of a new authorization request.
    async fn sign_in_page(&self) -> (Browser, Answer) {
        let client: Client = register(&self.gateway, &[REDIRECT]).await;
        let request = authorization(&self.gateway, &client, &self.gateway.mcp_url(), &[]);
        let browser = Browser::new(&self.gateway.base, REDIRECT);
        let page = browser.open(&request.url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        (browser, page)
    }

    /// Signs in with `provider` from a new sign-in page; the page that follows.
    async fn sign_in_with(&self, provider: &str) -> (Browser, Answer) {
        let (browser, page) = self.sign_in_page().await;
        assert!(
            page.body
                .contains(&format!("name=\"provider\" value=\"{provider}\"")),
            "no button for {provider}:\n{}",
            page.body
        );
        let answer = browser
            .submit(&page, "/consent/sso", &[("provider", provider)])
            .await;
        (browser, answer)
    }

    /// The admin API's humans of the host with `email`.
    async fn humans_with(&self, email: &str) -> usize {
        let (status, humans) = self
            .gateway
            .api(
                "GET",
                &format!("/api/v1/hosts/{}/humans", self.gateway.host),
                None,
            )
            .await;
        assert_eq!(status, 200, "{humans}");
        humans["humans"]
            .as_array()
            .expect("humans")
            .iter()
            .filter(|human| human["email"] == email)
            .count()
    }
}

#[track_caller]
fn assert_on_server_page(page: &Answer) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Choose an MCP server"),
        "expected the server page:\n{}",
        page.body
    );
}

/// A signed-in human without grants sees the server page naming their address.
#[track_caller]
fn assert_signed_in_as_new(page: &Answer, email: &str) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("You have no MCP servers yet") && page.body.contains(email),
        "expected {email} signed in without servers:\n{}",
        page.body
    );
}

#[track_caller]
fn assert_refused(page: &Answer, status: u16, fragment: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    let text = page.body.replace("&#39;", "'").replace("&quot;", "\"");
    assert!(
        text.contains(fragment),
        "expected {fragment:?} in:\n{}",
        page.body
    );
    assert!(
        !page.body.contains("Choose an MCP server"),
        "signed in anyway:\n{}",
        page.body
    );
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_signs_in_the_human_whose_address_it_verified() {
    let setup = setup().await;
    let host = setup
        .configure(json!({ "password": true, "providers": setup.providers(|_, _| {}) }))
        .await;
    let listed = &host["settings"]["auth"]["providers"];
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(PROVIDERS.len()),
        "{host}"
    );

    // The page offers every provider under its label.
    let (_, page) = setup.sign_in_page().await;
    for label in [
        "Corp SSO",
        "Google",
        "Microsoft",
        "Microsoft (any tenant)",
        "GitHub",
    ] {
        assert!(
            page.body.contains(&format!("Continue with {label}<")),
            "no {label} button:\n{}",
            page.body
        );
    }

    // alice@corp.example, pre-authorized with a grant, through each provider: every one
    // lands on her server page (a new human would have no servers).
    for provider in ["oidc", "google", "entra", "entra-common", "github"] {
        let (_, page) = setup.sign_in_with(provider).await;
        assert_on_server_page(&page);
    }
    // One human, however many identities link to her.
    assert_eq!(setup.humans_with(ALICE).await, 1);

    // An address is normalized before it names a human.
    setup
        .peers
        .login_as("oidc", "dora")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_signed_in_as_new(&page, "dora@corp.example");

    // GitHub: the verified address, never the unverified primary one. Bob's primary is
    // verified and in other.example; he becomes his own human.
    setup.github.login_as("bob").await.expect("login-as");
    let (_, page) = setup.sign_in_with("github").await;
    assert_signed_in_as_new(&page, "bob@other.example");
    setup.github.login_as("mallory").await.expect("login-as");
    let (_, page) = setup.sign_in_with("github").await;
    assert_signed_in_as_new(&page, "mallory@evil.example");
    assert_eq!(setup.humans_with(ALICE).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_addresses_and_foreign_tenants_sign_nobody_in() {
    let setup = setup().await;
    setup
        .configure(json!({
            "providers": setup.providers(|id, provider| {
                if id == "entra-orgs" {
                    // Both tenants allowed: tenant B's nOAuth user must fail on the address.
                    provider["allowed_tenants"] = json!([setup.peers.tenant_a, setup.peers.tenant_b]);
                }
            }),
        }))
        .await;

    // The provider says email_verified: false for alice's address.
    setup
        .peers
        .login_as("oidc", "mallory")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_refused(
        &page,
        403,
        "did not confirm that your email address is verified",
    );
    // No email_verified claim at all counts as not verified.
    setup
        .peers
        .login_as("oidc", "carol")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_refused(
        &page,
        403,
        "did not confirm that your email address is verified",
    );
    // Entra without xms_edov: the address is whatever the tenant's admin typed (nOAuth).
    setup
        .peers
        .login_as("tenant_b", "mallory")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("entra-orgs").await;
    assert_refused(
        &page,
        403,
        "did not confirm that your email address is verified",
    );
    // GitHub without any verified address but the no-reply one.
    setup.github.login_as("nomail").await.expect("login-as");
    let (_, page) = setup.sign_in_with("github").await;
    assert_refused(&page, 403, "did not share a verified email address");
    assert_eq!(setup.humans_with(ALICE).await, 1);

    // The tenant check: with only tenant A allowed, tenant B's verified user is refused.
    setup
        .configure(json!({ "providers": setup.providers(|_, _| {}) }))
        .await;
    setup
        .peers
        .login_as("tenant_b", "bob")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("entra-orgs").await;
    assert_refused(&page, 403, "tenant");
    assert_eq!(setup.humans_with("bob@other.example").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_rules_and_force_redirect_domains_decide_who_uses_which_method() {
    let setup = setup().await;
    setup
        .configure(json!({
            "password": true,
            "email_otp": false,
            "allowed_domains": { "domains": ["corp.example", "other.example"] },
            "providers": setup.providers(|id, provider| match id {
                "oidc" => provider["force_redirect_domains"] = json!(["corp.example"]),
                "google" => provider["domains"] = json!({ "domains": ["corp.example"] }),
                "github" => provider["domains"] = json!({ "domains": ["corp.example"] }),
                _ => {}
            }),
        }))
        .await;

    // alice@corp.example on the password form, with a password she never set: no password
    // is checked, she is sent to the provider that claims corp.example, with her address as
    // the login hint, and signs in there.
    let (browser, page) = setup.sign_in_page().await;
    let flow = page.hidden("flow");
    let csrf = page.hidden("csrf");
    let sent = browser
        .post(
            "/consent/account",
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("email", ALICE),
                ("password", "not her password at all"),
                ("action", "sign-in"),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let location = sent.location().expect("location").to_owned();
    assert!(location.starts_with(&setup.peers.oidc), "{location}");
    assert!(
        location.contains("login_hint=alice%40corp.example"),
        "{location}"
    );
    let page = browser
        .follow(sent, format!("{}/consent/account", setup.gateway.base))
        .await;
    assert_on_server_page(&page);

    // The email-first single sign-on form finds the provider for a claimed domain only.
    let (browser, page) = setup.sign_in_page().await;
    assert!(
        page.body.contains("Continue with single sign-on"),
        "{}",
        page.body
    );
    let other = browser
        .submit(&page, "/consent/sso", &[("email", "bob@other.example")])
        .await;
    assert_refused(&other, 404, "No single sign-on is set up");

    // Google may not sign in a corp.example address: oidc claims it.
    let (_, page) = setup.sign_in_with("google").await;
    assert_refused(&page, 403, "may not sign in with Google");
    // Google's own rule (corp.example only) keeps bob@other.example out...
    setup
        .peers
        .login_as("google", "bob")
        .await
        .expect("login-as");
    let (_, page) = setup.sign_in_with("google").await;
    assert_refused(&page, 403, "may not sign in with Google");
    // ...while oidc, with no rule of its own, lets him in under the global rule.
    setup.peers.login_as("oidc", "bob").await.expect("login-as");
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_signed_in_as_new(&page, "bob@other.example");
    // GitHub: mallory's only verified address is in evil.example, allowed by neither list;
    // her unverified alice@corp.example is never considered.
    setup.github.login_as("mallory").await.expect("login-as");
    let (_, page) = setup.sign_in_with("github").await;
    assert_refused(&page, 403, "may not sign in with GitHub");
    // An address outside the global rule, through a provider without a rule of its own.
    setup
        .configure(json!({
            "allowed_domains": { "domains": ["corp.example"] },
            "providers": setup.providers(|_, _| {}),
        }))
        .await;
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_refused(&page, 403, "may not sign in with Corp SSO");
    assert_eq!(setup.humans_with("mallory@evil.example").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secrets_are_write_only_and_sealed_at_rest() {
    let setup = setup().await;
    let host = setup
        .configure(json!({ "providers": setup.providers(|_, _| {}) }))
        .await;
    for provider in host["settings"]["auth"]["providers"]
        .as_array()
        .expect("providers")
    {
        assert_eq!(provider["client_secret_set"], true, "{provider}");
        assert!(provider.get("client_secret").is_none(), "{provider}");
    }
    assert!(!host.to_string().contains(CLIENT_SECRET), "{host}");

    // Changing a provider without its secret keeps the stored one: sign-in still works.
    let without_secrets = setup.providers(|_, provider| {
        provider
            .as_object_mut()
            .expect("object")
            .remove("client_secret");
    });
    setup
        .configure(json!({ "providers": without_secrets }))
        .await;
    let (_, page) = setup.sign_in_with("oidc").await;
    assert_on_server_page(&page);

    // A new provider needs one; the error names the field.
    let mut providers = setup.providers(|_, provider| {
        provider
            .as_object_mut()
            .expect("object")
            .remove("client_secret");
    });
    providers.as_array_mut().expect("array").push(json!({
        "id": "okta", "kind": "oidc", "issuer": setup.peers.oidc, "client_id": CLIENT_ID,
    }));
    let (status, error) = setup
        .gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", setup.gateway.host),
            Some(json!({ "settings": { "auth": { "providers": providers } } })),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"]["details"]["field"], "settings.auth.providers[6].client_secret",
        "{error}"
    );
    // Bad settings change nothing: the six providers are still there.
    let (_, host) = setup
        .gateway
        .api(
            "GET",
            &format!("/api/v1/hosts/{}", setup.gateway.host),
            None,
        )
        .await;
    assert_eq!(
        host["settings"]["auth"]["providers"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );

    // Nothing under the data directory holds the secret in plain text (the event log, the
    // read models, their write-ahead logs).
    let mut files = vec![setup.gateway.data.path().to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("dir") {
                files.push(entry.expect("entry").path());
            }
            continue;
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        checked += bytes.len();
        assert!(
            !bytes
                .windows(CLIENT_SECRET.len())
                .any(|w| w == CLIENT_SECRET.as_bytes()),
            "{} holds the client secret in plain text",
            path.display()
        );
    }
    assert!(checked > 0, "no files were checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_carried_to_another_browser_or_with_a_forged_state_signs_nobody_in() {
    let setup = setup().await;
    setup
        .configure(json!({ "providers": setup.providers(|_, _| {}) }))
        .await;
    let (browser, page) = setup.sign_in_page().await;
    let flow = page.hidden("flow");
    let csrf = page.hidden("csrf");
    let started = browser
        .post(
            "/consent/sso",
            &[("flow", &flow), ("csrf", &csrf), ("provider", "oidc")],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let authorize = started.location().expect("location").to_owned();
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce="), "{authorize}");
    // Walk the provider's side by hand, up to the gateway's callback.
    let mut answer = browser.get(&authorize).await;
    let mut at = authorize.clone();
    let callback = loop {
        let location = answer.location().expect("redirect").to_owned();
        let next = reqwest::Url::parse(&at)
            .and_then(|base| base.join(&location))
            .expect("url")
            .to_string();
        if next.starts_with(&format!("{}/consent/sso/oidc/callback", setup.gateway.base)) {
            break next;
        }
        answer = browser.get(&next).await;
        at = next;
    };

    // Another browser (an attacker's victim) opening the callback: nobody is signed in.
    let other = Browser::new(&setup.gateway.base, REDIRECT);
    let elsewhere = other.get(&callback).await;
    assert_refused(&elsewhere, 400, "started in another browser");

    // The right browser with the state changed: refused, and the code is not used.
    let forged = callback.replace("state=", "state=x");
    let answer = browser.get(&forged).await;
    assert_refused(&answer, 403, "does not belong to this sign-in");

    // A provider's error (with the right state) is shown escaped, and signs nobody in.
    let (browser, page) = setup.sign_in_page().await;
    let started = browser
        .post(
            "/consent/sso",
            &[
                ("flow", &page.hidden("flow")),
                ("csrf", &page.hidden("csrf")),
                ("provider", "oidc"),
            ],
        )
        .await;
    let state = param(started.location().expect("location"), "state").expect("state");
    let denied = format!(
        "{}/consent/sso/oidc/callback?{}",
        setup.gateway.base,
        form(&[
            ("error", "access_denied"),
            ("error_description", "<script>x</script>"),
            ("state", &state),
            // The provider names itself (RFC 9207); without it the answer is refused.
            ("iss", &setup.peers.oidc),
        ])
    );
    let answer = browser.get(&denied).await;
    assert_refused(&answer, 403, "access_denied");
    assert!(!answer.body.contains("<script>"), "{}", answer.body);
}
