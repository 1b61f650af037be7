//! Authorization requests: what is shown as a page, what goes back to the client.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

const ISSUER: &str = "http://acme-pink-panda-6942.localhost:8080";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn host() -> HostResources {
    HostResources {
        host_id: "acme-pink-panda-6942".into(),
        issuer: ISSUER.into(),
        server_keys: vec!["github".into()],
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        agent_id: "A1".into(),
        client_id: "c1".into(),
        name: "Cursor".into(),
        redirect_uris: vec![
            "cursor://anysphere.cursor-mcp/oauth/callback".into(),
            "http://localhost:8787/callback".into(),
        ],
    }
}

/// A valid query with `changes` applied (`None` removes a parameter).
fn query(changes: &[(&str, Option<&str>)]) -> Params {
    let mut pairs: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "c1"),
        ("redirect_uri", "http://localhost:9999/callback"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
        ("resource", "http://acme-pink-panda-6942.localhost:8080/mcp"),
        ("scope", "mcp"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (name, value) in changes {
        pairs.retain(|(k, _)| k != name);
        if let Some(value) = value {
            pairs.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(text.as_bytes()).unwrap()
}

#[track_caller]
fn check(changes: &[(&str, Option<&str>)], expected: Result<(), AuthorizeError>) {
    let result = validate(&query(changes), &host(), Some(&client())).map(|_| ());
    assert_eq!(result, expected);
}

#[track_caller]
fn redirected(changes: &[(&str, Option<&str>)], error: &str) -> ErrorRedirect {
    match validate(&query(changes), &host(), Some(&client())) {
        Err(AuthorizeError::Redirect(redirect)) => {
            assert_eq!(redirect.error, error);
            redirect
        }
        other => panic!("expected a redirect with {error}, got {other:?}"),
    }
}

#[test]
fn a_valid_request_carries_everything_the_consent_pages_need() {
    let request = validate(&query(&[]), &host(), Some(&client())).unwrap();
    assert_eq!(
        request,
        AuthorizationRequest {
            host_id: "acme-pink-panda-6942".into(),
            issuer: ISSUER.into(),
            agent_id: "A1".into(),
            client_id: "c1".into(),
            client_name: "Cursor".into(),
            redirect_uri: "http://localhost:9999/callback".into(),
            state: Some("xyz".into()),
            code_challenge: CHALLENGE.into(),
            resource: format!("{ISSUER}/mcp"),
            scope: "mcp".into(),
        }
    );
    assert_eq!(
        request.success_location("pc1.k.abc"),
        "http://localhost:9999/callback?code=pc1.k.abc&state=xyz&iss=http%3A%2F%2Facme-pink-panda-6942.localhost%3A8080"
    );
    // A server's own resource URL is fine too; unknown scopes are ignored, not refused.
    let request = validate(
        &query(&[
            ("resource", Some(&format!("{ISSUER}/mcp/github"))),
            ("scope", Some("mcp:tools offline_access")),
            (
                "redirect_uri",
                Some("cursor://anysphere.cursor-mcp/oauth/callback"),
            ),
        ]),
        &host(),
        Some(&client()),
    )
    .unwrap();
    assert_eq!(request.scope, "mcp");
    assert_eq!(
        request.success_location("c"),
        "cursor://anysphere.cursor-mcp/oauth/callback?code=c&state=xyz&iss=http%3A%2F%2Facme-pink-panda-6942.localhost%3A8080"
    );
}

#[test]
fn an_unverified_client_or_redirect_uri_is_a_page_never_a_redirect() {
    check(
        &[("client_id", None)],
        Err(AuthorizeError::Page(PageError::MissingClientId)),
    );
    assert_eq!(
        validate(&query(&[]), &host(), None),
        Err(AuthorizeError::Page(PageError::UnknownClient))
    );
    check(
        &[("redirect_uri", Some("https://evil.example/callback"))],
        Err(AuthorizeError::Page(PageError::BadRedirectUri(
            RedirectUriError::NotRegistered,
        ))),
    );
    check(
        &[("redirect_uri", Some("javascript:alert(1)"))],
        Err(AuthorizeError::Page(PageError::BadRedirectUri(
            RedirectUriError::ForbiddenScheme("javascript".into()),
        ))),
    );
    check(
        &[("redirect_uri", Some("http://localhost:9999/callback#x"))],
        Err(AuthorizeError::Page(PageError::BadRedirectUri(
            RedirectUriError::Fragment,
        ))),
    );
    // Two registered URIs: the request must say which.
    check(
        &[("redirect_uri", None)],
        Err(AuthorizeError::Page(PageError::MissingRedirectUri)),
    );
    // Even a response_type error is a page when the redirect URI is bad.
    check(
        &[
            ("redirect_uri", Some("https://evil.example/")),
            ("response_type", Some("token")),
        ],
        Err(AuthorizeError::Page(PageError::BadRedirectUri(
            RedirectUriError::NotRegistered,
        ))),
    );
}

#[test]
fn a_single_https_registration_may_be_omitted() {
    let mut only = client();
    only.redirect_uris = vec!["https://app.example/cb".into()];
    let request = validate(&query(&[("redirect_uri", None)]), &host(), Some(&only)).unwrap();
    assert_eq!(request.redirect_uri, "https://app.example/cb");
}

#[test]
fn pkce_must_be_s256() {
    let missing = redirected(&[("code_challenge", None)], "invalid_request");
    assert!(
        missing.description.contains("code_challenge"),
        "{missing:?}"
    );
    redirected(
        &[("code_challenge_method", Some("plain"))],
        "invalid_request",
    );
    redirected(&[("code_challenge_method", None)], "invalid_request");
}

#[test]
fn the_resource_must_be_one_of_this_hosts_mcp_urls() {
    redirected(&[("resource", None)], "invalid_request");
    for foreign in [
        "https://other.example/mcp",
        "http://acme-pink-panda-6942.localhost:8080/mcp/unknown",
        "http://acme-pink-panda-6942.localhost:8080/mcp/",
        "http://acme-pink-panda-6942.localhost:8080/",
        "http://acme-pink-panda-6942.localhost:8080/mcp?x=1",
        "http://acme-pink-panda-6942.localhost:80800/mcp",
        "http://other-host.localhost:8080/mcp",
    ] {
        redirected(&[("resource", Some(foreign))], "invalid_target");
    }
}

#[test]
fn errors_after_verification_go_back_with_state_and_iss() {
    let redirect = redirected(
        &[("response_type", Some("token"))],
        "unsupported_response_type",
    );
    let location = Url::parse(&redirect.location()).unwrap();
    assert_eq!(location.path(), "/callback");
    assert_eq!(location.port(), Some(9999));
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("error"), Some("unsupported_response_type"));
    assert_eq!(get("state"), Some("xyz"));
    assert_eq!(get("iss"), Some(ISSUER));
    redirected(&[("response_type", None)], "invalid_request");
    redirected(&[("scope", Some("a  b"))], "invalid_scope");
    // No state sent, none returned.
    let redirect = redirected(
        &[("state", None), ("response_type", Some("x"))],
        "unsupported_response_type",
    );
    assert!(!redirect.location().contains("state="));
}

#[test]
fn a_denial_goes_back_as_access_denied_and_keeps_the_registered_query() {
    let mut with_query = client();
    with_query.redirect_uris = vec!["https://app.example/cb?tenant=1".into()];
    let request = validate(
        &query(&[("redirect_uri", Some("https://app.example/cb?tenant=1"))]),
        &host(),
        Some(&with_query),
    )
    .unwrap();
    let location = request.denied();
    assert!(
        location.starts_with("https://app.example/cb?tenant=1&error=access_denied&"),
        "{location}"
    );
    assert!(location.contains("state=xyz"), "{location}");
}

#[test]
fn an_upstream_hint_is_a_resource_of_the_mcp_endpoint_and_nothing_else() {
    let issuer = "https://h1.gw.example";
    let hinted = "https://h1.gw.example/mcp?upstream_mcp=https%3A%2F%2Fmcp.example%2Fmcp";
    assert_eq!(
        upstream_hint(hinted, issuer).as_deref(),
        Some("https://mcp.example/mcp")
    );
    assert_eq!(audience_of(hinted), "https://h1.gw.example/mcp");
    for other in [
        "https://h1.gw.example/mcp",
        "https://h1.gw.example/mcp?other=1",
        "https://h1.gw.example/mcp?upstream_mcp=a&extra=1",
        "https://h1.gw.example/mcp?upstream_mcp=",
        "https://h1.gw.example/mcp/key?upstream_mcp=a",
        "https://evil.example/mcp?upstream_mcp=a",
    ] {
        assert_eq!(upstream_hint(other, issuer), None, "{other}");
    }
    let host = HostResources {
        host_id: "h1".into(),
        issuer: issuer.into(),
        server_keys: vec![],
    };
    assert!(host.is_resource(hinted));
    assert!(!host.is_resource("https://h1.gw.example/mcp?other=1"));
}
