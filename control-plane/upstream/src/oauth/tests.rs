//! Tests of the OAuth client's pure parts: resource matching, metadata URLs, callback and
//! token parsing, client authentication, and that secrets stay out of `Debug`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[test]
fn the_resource_must_be_the_mcp_url_or_a_same_origin_path_prefix() {
    let mcp = Url::parse("https://api.example.com/v1/mcp").unwrap();
    for advertised in [
        "https://api.example.com/v1/mcp",
        "https://api.example.com/v1/mcp/",
        "https://api.example.com/v1",
        "https://api.example.com/",
    ] {
        assert_eq!(matching_resource(&mcp, advertised).unwrap(), advertised);
    }
    for advertised in [
        "https://evil.example.com/v1/mcp",
        "http://api.example.com/v1/mcp",
        "https://api.example.com/v1/mc",
        "https://api.example.com/other",
        "not a url",
    ] {
        let error = matching_resource(&mcp, advertised).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the protected-resource metadata describes {advertised}, not \
                 https://api.example.com/v1/mcp"
            )
        );
    }
}

#[test]
fn well_known_urls_follow_the_spec_order() {
    let issuer = Url::parse("https://as.example.com/tenant1?x=1").unwrap();
    assert_eq!(
        well_known(&issuer, "oauth-authorization-server", "/tenant1").as_str(),
        "https://as.example.com/.well-known/oauth-authorization-server/tenant1"
    );
    let mcp = Url::parse("https://api.example.com/mcp").unwrap();
    assert_eq!(
        well_known(&mcp, "oauth-protected-resource", "").as_str(),
        "https://api.example.com/.well-known/oauth-protected-resource"
    );
}

#[test]
fn issuers_compare_ignoring_one_trailing_slash() {
    assert!(same_identifier(
        "http://localhost:3201/",
        "http://localhost:3201"
    ));
    assert!(same_identifier("https://as/t", "https://as/t"));
    assert!(!same_identifier("https://as/t", "https://as/u"));
    assert!(!same_identifier("https://as.evil/", "https://as/"));
}

#[test]
fn callback_parameters_are_read_from_the_query() {
    let params = CallbackParams::from_query("code=abc&state=s%20t&iss=http%3A%2F%2Fas%2F&x=1");
    assert_eq!(params.code.as_ref().map(Secret::expose), Some("abc"));
    assert_eq!(params.state.as_ref().map(Secret::expose), Some("s t"));
    assert_eq!(params.iss.as_deref(), Some("http://as/"));
    assert_eq!(params.error, None);
}

#[test]
fn token_answers_are_checked() {
    let tokens = parse_tokens(&json!({
        "access_token": "at", "token_type": "bearer", "expires_in": "3600",
        "refresh_token": "rt", "scope": "mcp:tools"
    }))
    .unwrap();
    assert_eq!(tokens.access_token.expose(), "at");
    assert_eq!(
        tokens.refresh_token.as_ref().map(Secret::expose),
        Some("rt")
    );
    assert_eq!(tokens.expires_in_seconds, Some(3600));
    assert!(tokens.expires_at.is_some());
    assert_eq!(
        parse_tokens(&json!({"token_type": "Bearer"})).unwrap_err(),
        "the answer has no access_token"
    );
    assert_eq!(
        parse_tokens(&json!({"access_token": "at", "token_type": "mac"})).unwrap_err(),
        "the token type is \"mac\"; only Bearer tokens are supported"
    );
    assert_eq!(
        oauth_error(&json!({"error": "invalid_grant", "error_description": "code used"})),
        Some("invalid_grant: code used".to_owned())
    );
}

#[test]
fn basic_credentials_form_encode_before_base64() {
    // RFC 6749 2.3.1: "a:b" as id and "c d" as secret become "a%3Ab:c+d".
    assert_eq!(
        basic_credentials("a:b", &Secret::new("c d")),
        format!("Basic {}", STANDARD.encode("a%3Ab:c+d"))
    );
}

#[test]
fn admin_given_clients_use_a_method_the_server_offers() {
    let secret = Some(Secret::new("s"));
    let given = |client_secret: Option<Secret>| PreRegisteredClient {
        client_id: "id".into(),
        client_secret,
    };
    let methods = |list: &[&str]| list.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        given_client(
            &given(secret.clone()),
            &methods(&["client_secret_post", "none"])
        )
        .auth_method,
        TokenAuthMethod::ClientSecretPost
    );
    assert_eq!(
        given_client(&given(secret), &methods(&["client_secret_basic"])).auth_method,
        TokenAuthMethod::ClientSecretBasic
    );
    assert_eq!(
        given_client(&given(None), &methods(&["client_secret_basic"])).auth_method,
        TokenAuthMethod::None
    );
}

#[test]
fn pkce_verifiers_and_states_are_long_random_and_url_safe() {
    let a = random_token();
    let b = random_token();
    assert_ne!(a, b);
    assert_eq!(a.len(), 43);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let pending = PendingAuthorization {
        state: Secret::new("STATE-VALUE"),
        code_verifier: Secret::new("VERIFIER-VALUE"),
        client: ClientCredentials {
            client_id: "client".into(),
            client_secret: Some(Secret::new("CLIENT-SECRET")),
            auth_method: TokenAuthMethod::ClientSecretPost,
        },
        client_registered_dynamically: true,
        issuer: "https://as/".into(),
        authorization_endpoint: "https://as/authorize".into(),
        token_endpoint: "https://as/token".into(),
        redirect_uri: "https://gw/callback".into(),
        resource: "https://api/mcp".into(),
        scope: None,
        issuer_in_response_required: false,
    };
    let tokens = parse_tokens(
        &json!({"access_token": "ACCESS", "token_type": "Bearer", "refresh_token": "REFRESH"}),
    )
    .unwrap();
    let callback = CallbackParams::from_query("code=CODE&state=STATE-VALUE");
    let dump = format!("{pending:?} {tokens:?} {callback:?}");
    for secret in [
        "STATE-VALUE",
        "VERIFIER-VALUE",
        "CLIENT-SECRET",
        "ACCESS",
        "REFRESH",
        "CODE",
    ] {
        assert!(!dump.contains(secret), "{secret} leaked: {dump}");
    }
    // Persisting is the one deliberate way out, and it round-trips.
    let stored = serde_json::to_string(&pending).unwrap();
    let restored: PendingAuthorization = serde_json::from_str(&stored).unwrap();
    assert_eq!(restored.code_verifier.expose(), "VERIFIER-VALUE");
}
