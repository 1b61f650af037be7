//! Token requests: parsing, the code checks, refresh-token shape.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn grant() -> CodeGrant {
    CodeGrant {
        host_id: "h".into(),
        client_id: "c1".into(),
        redirect_uri: "http://localhost:9999/callback".into(),
        code_challenge: CHALLENGE.into(),
        resource: "http://h.localhost/mcp".into(),
        scope: "mcp".into(),
        session_id: "S1".into(),
        human_id: "H1".into(),
        expires_at_ms: 0,
    }
}

#[test]
fn both_grants_parse_from_a_form() {
    assert_eq!(
        parse_request(b"grant_type=authorization_code&code=pc1.k.x&client_id=c1&code_verifier=v&redirect_uri=http%3A%2F%2Flocalhost%3A9999%2Fcallback&resource=http%3A%2F%2Fh.localhost%2Fmcp"),
        Ok(TokenRequest::AuthorizationCode {
            code: "pc1.k.x".into(),
            client_id: "c1".into(),
            code_verifier: Some("v".into()),
            redirect_uri: Some("http://localhost:9999/callback".into()),
            resource: Some("http://h.localhost/mcp".into()),
        })
    );
    assert_eq!(
        parse_request(b"grant_type=refresh_token&refresh_token=prt1.S.x"),
        Ok(TokenRequest::RefreshToken {
            refresh_token: "prt1.S.x".into(),
            client_id: None,
            resource: None,
        })
    );
}

#[test]
fn malformed_requests_get_their_rfc_6749_error_codes() {
    for (body, code) in [
        (&b"code=x&client_id=c"[..], "invalid_request"),
        (b"grant_type=password&username=a", "unsupported_grant_type"),
        (b"grant_type=client_credentials", "unsupported_grant_type"),
        (
            b"grant_type=authorization_code&client_id=c",
            "invalid_request",
        ),
        (b"grant_type=authorization_code&code=x", "invalid_client"),
        (
            b"grant_type=authorization_code&code=x&client_id=c&client_secret=s",
            "invalid_client",
        ),
        (
            b"grant_type=authorization_code&code=x&code=y&client_id=c",
            "invalid_request",
        ),
        (b"grant_type=refresh_token", "invalid_request"),
    ] {
        let error = parse_request(body).unwrap_err();
        assert_eq!(
            error.error_code(),
            code,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(TokenError::InvalidClient(String::new()).status(), 401);
    assert_eq!(TokenError::InvalidGrant(String::new()).status(), 400);
    assert_eq!(
        TokenError::InvalidGrant("x".into()).to_json(),
        json!({ "error": "invalid_grant", "error_description": "x" })
    );
}

#[track_caller]
fn check(
    client_id: &str,
    verifier: Option<&str>,
    redirect_uri: Option<&str>,
    resource: Option<&str>,
    expected: Option<&str>,
) {
    let result = check_code_grant(&grant(), client_id, verifier, redirect_uri, resource);
    assert_eq!(result.err().map(|e| e.error_code()), expected);
}

#[test]
fn a_code_is_checked_for_client_redirect_resource_and_pkce() {
    let uri = Some("http://localhost:9999/callback");
    let resource = Some("http://h.localhost/mcp");
    check("c1", Some(VERIFIER), uri, resource, None);
    check("c1", Some(VERIFIER), None, None, None);
    check("c2", Some(VERIFIER), uri, resource, Some("invalid_grant"));
    // Exact at the token endpoint: another loopback port is a mismatch here.
    check(
        "c1",
        Some(VERIFIER),
        Some("http://localhost:9998/callback"),
        resource,
        Some("invalid_grant"),
    );
    check(
        "c1",
        Some(VERIFIER),
        uri,
        Some("http://other.localhost/mcp"),
        Some("invalid_target"),
    );
    check("c1", None, uri, resource, Some("invalid_request"));
    check("c1", Some("short"), uri, resource, Some("invalid_request"));
    check(
        "c1",
        Some(&"x".repeat(43)),
        uri,
        resource,
        Some("invalid_grant"),
    );
    // A plain-method client sends the challenge as the verifier.
    check("c1", Some(CHALLENGE), uri, resource, Some("invalid_grant"));
}

#[test]
fn refresh_tokens_name_their_session_and_hash_uniquely() {
    let first = new_refresh_token("01JD8X6Y9Z0A1B2C3D4E5F6G7H");
    let second = new_refresh_token("01JD8X6Y9Z0A1B2C3D4E5F6G7H");
    assert_ne!(first.token, second.token);
    assert_ne!(first.sha256, second.sha256);
    assert_eq!(first.sha256, refresh_token_sha256(&first.token));
    assert_eq!(
        refresh_token_session(&first.token),
        Some("01JD8X6Y9Z0A1B2C3D4E5F6G7H")
    );
    assert!(!format!("{first:?}").contains(&first.token));
    for junk in [
        "",
        "prt1",
        "prt1.S",
        "prt1..x",
        "prt2.S.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "prt1.S.short",
        "prt1.a.b.c",
        "prt1.s$.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        assert_eq!(refresh_token_session(junk), None, "{junk}");
    }
}
