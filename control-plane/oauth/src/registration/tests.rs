//! Registration payloads of real clients, and refusals naming the field.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[track_caller]
fn register(body: Value) -> Result<ClientRegistration, RegistrationError> {
    parse(body.to_string().as_bytes())
}

#[test]
fn cursors_three_redirect_uris_are_accepted_together() {
    let registration = register(json!({
        "client_name": "Cursor",
        "redirect_uris": [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback"
        ],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"]
    }))
    .unwrap();
    assert_eq!(registration.redirect_uris.len(), 3);
    assert_eq!(registration.agent_type, "cursor");
}

#[test]
fn vscodes_registration_is_accepted_without_the_device_code_grant() {
    let registration = register(json!({
        "client_name": "Visual Studio Code",
        "redirect_uris": [
            "https://insiders.vscode.dev/redirect",
            "https://vscode.dev/redirect",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/"
        ],
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    }))
    .unwrap();
    assert_eq!(registration.redirect_uris.len(), 4);
    assert_eq!(
        registration.grant_types,
        ["authorization_code", "refresh_token"]
    );
    assert_eq!(registration.agent_type, "vscode");
}

#[test]
fn claude_code_and_mcp_remote_registrations_are_accepted() {
    let claude_code = register(json!({
        "client_name": "Claude Code (portcullis)",
        "redirect_uris": ["http://localhost:54545/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "mcp"
    }))
    .unwrap();
    assert_eq!(claude_code.agent_type, "claude-code");
    let mcp_remote = register(json!({
        "redirect_uris": ["http://localhost:33419/oauth/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "MCP CLI Proxy",
        "client_uri": "https://github.com/modelcontextprotocol/mcp-cli",
        "software_id": "2e6dc280-f3c3-4e01-99a7-8181dbd1d23d",
        "software_version": "0.15.1",
        "application_type": "native",
        "scope": "mcp:tools",
        "some_future_field": {"ignored": true}
    }))
    .unwrap();
    assert_eq!(mcp_remote.agent_type, "mcp-remote");
    let body = response(&mcp_remote, "01jd8x", 1_760_000_000);
    assert_eq!(body["client_id"], "01jd8x");
    assert_eq!(body["client_id_issued_at"], 1_760_000_000);
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["redirect_uris"],
        json!(["http://localhost:33419/oauth/callback"])
    );
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_name"], "MCP CLI Proxy");
    assert_eq!(body["software_version"], "0.15.1");
    assert_eq!(body["application_type"], "native");
}

#[test]
fn a_minimal_request_gets_defaults() {
    let registration = register(json!({ "redirect_uris": ["http://127.0.0.1:9000/cb"] })).unwrap();
    assert_eq!(registration.client_name, UNNAMED_CLIENT);
    assert!(!registration.named);
    assert_eq!(
        registration.grant_types,
        ["authorization_code", "refresh_token"]
    );
    assert_eq!(registration.agent_type, "dcr");
    // A client asking for a secret gets a public registration instead.
    let body = response(
        &register(json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic"
        }))
        .unwrap(),
        "c",
        0,
    );
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body.get("client_secret").is_none());
}

#[test]
fn dangerous_redirect_uris_refuse_the_whole_registration() {
    for uri in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "http://evil.example/cb",
        "https://a.example/cb#x",
    ] {
        let error =
            register(json!({ "redirect_uris": ["https://ok.example/cb", uri] })).unwrap_err();
        assert_eq!(error.error_code(), "invalid_redirect_uri", "{uri}");
        assert!(error.to_string().contains(uri), "{error}");
    }
}

#[test]
fn bad_metadata_is_refused_naming_the_field() {
    for (body, field) in [
        (json!({}), "redirect_uris"),
        (json!({ "redirect_uris": [] }), "redirect_uris"),
        (
            json!({ "redirect_uris": "https://a.example/cb" }),
            "redirect_uris",
        ),
        (json!({ "redirect_uris": [1] }), "redirect_uris"),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "client_name": 7 }),
            "client_name",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(201) }),
            "client_name",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "client_name": "a\u{0}b" }),
            "client_name",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt" }),
            "token_endpoint_auth_method",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"] }),
            "grant_types",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "grant_types": "authorization_code" }),
            "grant_types",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "grant_types": ["refresh_token"] }),
            "grant_types",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "response_types": ["token"] }),
            "response_types",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "application_type": "service" }),
            "application_type",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "client_uri": "javascript:alert(1)" }),
            "client_uri",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "logo_uri": "http://evil.example/x.png" }),
            "logo_uri",
        ),
        (
            json!({ "redirect_uris": ["https://a.example/cb"], "scope": "a  b" }),
            "scope",
        ),
        (json!([1, 2]), "body"),
    ] {
        match register(body.clone()) {
            Err(RegistrationError::InvalidClientMetadata { field: got, .. }) => {
                assert_eq!(got, field, "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    let too_many: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
    assert!(register(json!({ "redirect_uris": too_many })).is_err());
}

#[test]
fn oversized_and_non_json_bodies_are_refused() {
    let big = vec![b' '; MAX_REQUEST_BYTES + 1];
    assert_eq!(parse(&big), Err(RegistrationError::TooLarge));
    assert_eq!(
        parse(&big).unwrap_err().error_code(),
        "invalid_client_metadata"
    );
    assert!(matches!(
        parse(b"redirect_uris=x"),
        Err(RegistrationError::InvalidClientMetadata { field: "body", .. })
    ));
}
