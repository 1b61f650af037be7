//! The discovery documents, field by field.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[test]
fn the_metadata_names_the_host_endpoints_and_requires_s256() {
    let document = authorization_server_metadata("https://acme-pink-panda-6942.gw.example/");
    assert_eq!(
        document,
        json!({
            "issuer": "https://acme-pink-panda-6942.gw.example",
            "authorization_endpoint": "https://acme-pink-panda-6942.gw.example/oauth/authorize",
            "token_endpoint": "https://acme-pink-panda-6942.gw.example/oauth/token",
            "registration_endpoint": "https://acme-pink-panda-6942.gw.example/oauth/register",
            "jwks_uri": "https://acme-pink-panda-6942.gw.example/oauth/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true,
            "scopes_supported": ["mcp"],
        })
    );
}

#[test]
fn the_openid_variant_adds_only_the_required_oidc_fields() {
    let issuer = "http://127.0.0.1:8080";
    let mut oidc = openid_configuration(issuer);
    let object = oidc.as_object_mut().unwrap();
    assert_eq!(
        object.remove("subject_types_supported"),
        Some(json!(["public"]))
    );
    assert_eq!(
        object.remove("id_token_signing_alg_values_supported"),
        Some(json!(["ES256"]))
    );
    assert_eq!(oidc, authorization_server_metadata(issuer));
}

#[test]
fn the_jwks_holds_each_valid_key_and_skips_malformed_ones() {
    let point: String = std::iter::once("04".to_owned())
        .chain((0..64).map(|i| format!("{:02x}", i + 1)))
        .collect();
    let document = jwks([
        PublicKeyHex {
            kid: "k1",
            public_key: &point,
        },
        PublicKeyHex {
            kid: "bad",
            public_key: "04zz",
        },
    ]);
    let keys = document["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], "k1");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(jwks([]), json!({ "keys": [] }));
}
