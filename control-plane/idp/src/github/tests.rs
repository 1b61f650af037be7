//! Tests of GitHub's rules: which addresses count as verified (the mallory case), the numeric
//! id, HTTP-200 token errors, and the authorization URL.

use serde_json::json;
use zeroize::Zeroizing;

use super::*;
use crate::config::ProviderKind;

fn email(address: &str, primary: bool, verified: bool) -> GitHubEmail {
    GitHubEmail {
        email: address.to_owned(),
        primary,
        verified,
    }
}

#[test]
fn an_unverified_primary_address_is_never_taken_as_verified() {
    // Mallory set alice's address as her (unverified) primary and verified her own.
    let (verified, unverified) = select_emails(
        Some("alice@corp.example"),
        &[
            email("alice@corp.example", true, false),
            email("mallory@evil.example", false, true),
        ],
    );
    assert_eq!(verified, vec!["mallory@evil.example".to_owned()]);
    assert_eq!(unverified.as_deref(), Some("alice@corp.example"));
}

#[test]
fn verified_addresses_come_primary_first() {
    let (verified, unverified) = select_emails(
        Some("alice@corp.example"),
        &[
            email("old@corp.example", false, true),
            email("alice@corp.example", true, true),
            email("alice@home.example", false, true),
        ],
    );
    assert_eq!(
        verified,
        vec![
            "alice@corp.example".to_owned(),
            "old@corp.example".to_owned(),
            "alice@home.example".to_owned()
        ]
    );
    assert_eq!(unverified, None);
}

#[test]
fn noreply_addresses_are_ignored() {
    let (verified, unverified) = select_emails(
        Some("123+alice@users.noreply.github.com"),
        &[
            email("123+alice@users.noreply.github.com", true, true),
            email("456+ALICE@USERS.NOREPLY.GITHUB.COM", false, true),
        ],
    );
    assert!(verified.is_empty());
    assert_eq!(unverified, None);
}

#[test]
fn the_profile_email_alone_is_not_verified() {
    let (verified, unverified) = select_emails(Some("alice@corp.example"), &[]);
    assert!(verified.is_empty());
    assert_eq!(unverified.as_deref(), Some("alice@corp.example"));
}

fn identity_of(
    user: serde_json::Value,
    emails: serde_json::Value,
) -> Result<ExternalIdentity, IdpError> {
    identity("https://github.com", &user, &emails)
}

#[test]
fn the_identity_is_keyed_by_the_numeric_id() {
    let identity = identity_of(
        json!({"id": 583231, "login": "octocat", "name": "The Octocat", "email": null}),
        json!([
            {"email": "octocat@github.example", "primary": true, "verified": true, "visibility": "public"}
        ]),
    )
    .expect("valid");
    assert_eq!(
        identity,
        ExternalIdentity {
            issuer: "https://github.com".to_owned(),
            subject: "583231".to_owned(),
            verified_emails: vec!["octocat@github.example".to_owned()],
            unverified_email: None,
            display_name: Some("The Octocat".to_owned()),
        }
    );
}

#[test]
fn the_login_is_the_display_name_when_there_is_no_name() {
    let identity = identity_of(
        json!({"id": 1, "login": "octocat", "name": null}),
        json!([]),
    )
    .expect("valid");
    assert_eq!(identity.display_name.as_deref(), Some("octocat"));
}

#[test]
fn a_user_id_that_is_not_a_positive_integer_is_refused() {
    for id in [
        json!(0),
        json!(-5),
        json!("583231"),
        json!(1.5),
        json!(null),
    ] {
        assert!(
            matches!(
                identity_of(json!({"id": id, "login": "x"}), json!([])),
                Err(IdpError::Protocol(_))
            ),
            "{id}"
        );
    }
}

#[test]
fn only_a_json_true_verifies_an_email_entry() {
    let identity = identity_of(
        json!({"id": 7, "login": "x"}),
        json!([
            {"email": "a@corp.example", "primary": true, "verified": "true"},
            {"email": "b@corp.example", "primary": false, "verified": 1},
            {"email": "c@corp.example", "primary": false}
        ]),
    )
    .expect("valid");
    assert!(identity.verified_emails.is_empty());
    assert_eq!(identity.unverified_email.as_deref(), Some("a@corp.example"));
}

#[test]
fn an_emails_answer_that_is_not_a_list_is_refused() {
    assert!(matches!(
        identity_of(json!({"id": 7}), json!({"message": "Bad credentials"})),
        Err(IdpError::Protocol(_))
    ));
}

#[test]
fn a_token_error_in_an_http_200_body_is_a_refusal() {
    let body = br#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com"}"#;
    match parse_token_response(StatusCode::OK, body) {
        Err(IdpError::Denied { error, description }) => {
            assert_eq!(error, "bad_verification_code");
            assert_eq!(
                description.as_deref(),
                Some("The code passed is incorrect or expired.")
            );
        }
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[test]
fn a_token_answer_needs_a_bearer_access_token() {
    let token = parse_token_response(
        StatusCode::OK,
        br#"{"access_token":"gho_abc","token_type":"bearer","scope":"read:user,user:email"}"#,
    )
    .expect("valid");
    assert_eq!(token.as_str(), "gho_abc");
    assert!(matches!(
        parse_token_response(StatusCode::OK, br#"{"token_type":"bearer"}"#),
        Err(IdpError::Protocol(_))
    ));
    assert!(matches!(
        parse_token_response(
            StatusCode::OK,
            br#"{"access_token":"x","token_type":"mac"}"#
        ),
        Err(IdpError::Protocol(_))
    ));
    assert!(matches!(
        parse_token_response(StatusCode::OK, b"access_token=x&token_type=bearer"),
        Err(IdpError::Protocol(_))
    ));
    assert!(matches!(
        parse_token_response(StatusCode::BAD_GATEWAY, b"<html>"),
        Err(IdpError::Unreachable { .. })
    ));
}

fn github_config(authorization_endpoint: Option<&str>) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::GitHub,
        client_id: "Iv1.gateway".to_owned(),
        client_secret: Zeroizing::new("secret".to_owned()),
        issuer: None,
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: authorization_endpoint.map(str::to_owned),
        token_endpoint: None,
        api_base: None,
    }
}

#[test]
fn the_issuer_is_the_authorization_endpoints_origin() {
    assert_eq!(
        issuer(&github_config(None)).ok().as_deref(),
        Some("https://github.com")
    );
    assert_eq!(
        issuer(&github_config(Some(
            "http://127.0.0.1:8123/login/oauth/authorize"
        )))
        .ok()
        .as_deref(),
        Some("http://127.0.0.1:8123")
    );
}

#[test]
fn the_authorization_url_carries_pkce_state_scopes_and_the_login_hint() {
    let (url, pending) = authorization(
        &github_config(None),
        "https://gw.example.com/cb",
        Some("octocat"),
        100,
    )
    .expect("valid");
    let url = Url::parse(&url).expect("url");
    assert_eq!(url.origin().ascii_serialization(), "https://github.com");
    assert_eq!(url.path(), "/login/oauth/authorize");
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(param("client_id").as_deref(), Some("Iv1.gateway"));
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some("https://gw.example.com/cb")
    );
    assert_eq!(param("scope").as_deref(), Some("read:user user:email"));
    assert_eq!(param("state").as_deref(), Some(pending.state.as_str()));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("login").as_deref(), Some("octocat"));
    assert!(param("code_challenge").is_some_and(|c| c.len() == 43));
    assert_eq!(pending.nonce, None);
    assert_eq!(pending.issuer, "https://github.com");
    assert!(pending.pkce_verifier.len() >= 43);
}
