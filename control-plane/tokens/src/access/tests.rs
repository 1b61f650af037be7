//! Minting and verifying access tokens: every claim that matters is checked.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;
use crate::keys::{self, SigningKey, VerifyingKey};
use portcullis_secrets::KeyRing;

const NOW: u64 = 1_800_000_000;

fn ring() -> KeyRing {
    KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:8080".to_owned(),
        aud: "http://127.0.0.1:8080/mcp".to_owned(),
        sub: "human-1".to_owned(),
        client_id: "client-1".to_owned(),
        sid: "session-1".to_owned(),
        iat: NOW,
        exp: NOW + 600,
        jti: "t1".to_owned(),
    }
}

fn host_key(host: &str) -> (SigningKey, VerifyingKey) {
    let event = keys::generate(&ring(), host).unwrap();
    let signing = SigningKey::open(&ring(), host, &event).unwrap();
    let verifying =
        VerifyingKey::from_sec1(&event.kid, &event.algorithm, &event.public_key).unwrap();
    (signing, verifying)
}

#[test]
fn a_minted_token_verifies_and_round_trips_its_claims() {
    let (signing, verifying) = host_key("h1");
    let token = mint(&signing, &claims()).unwrap();
    let verifier = Verifier::new("http://127.0.0.1:8080".to_owned(), [verifying]);
    assert_eq!(verifier.verify(&token, NOW).unwrap(), claims());
}

#[test]
fn another_hosts_key_is_unknown() {
    let (signing, _) = host_key("h1");
    let (_, other) = host_key("h2");
    let token = mint(&signing, &claims()).unwrap();
    let verifier = Verifier::new("http://127.0.0.1:8080".to_owned(), [other]);
    assert_eq!(verifier.verify(&token, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn a_forged_signature_under_a_known_kid_is_rejected() {
    let (_, verifying) = host_key("h1");
    // Same kid, different private key.
    let event = keys::generate(&ring(), "h1").unwrap();
    let forger = SigningKey::open(&ring(), "h1", &event).unwrap();
    let token = mint(&forger, &claims()).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    // Re-sign under the victim's kid by minting with a key whose kid we control.
    let victim_kid_header = {
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.kid = Some(verifying.kid().to_owned());
        h.typ = Some("at+jwt".to_owned());
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&h).unwrap(),
        )
    };
    let forged = format!("{victim_kid_header}.{rest}");
    let verifier = Verifier::new("http://127.0.0.1:8080".to_owned(), [verifying]);
    assert_eq!(verifier.verify(&forged, NOW), Err(TokenError::BadSignature));
}

#[test]
fn expiry_issuer_and_garbage_are_rejected() {
    let (signing, verifying) = host_key("h1");
    let verifier = Verifier::new("http://127.0.0.1:8080".to_owned(), [verifying]);
    let token = mint(&signing, &claims()).unwrap();
    assert_eq!(
        verifier.verify(&token, NOW + 600 + LEEWAY_SECONDS),
        Err(TokenError::Expired)
    );
    assert!(
        verifier
            .verify(&token, NOW + 600 + LEEWAY_SECONDS - 1)
            .is_ok()
    );
    let foreign = mint(
        &signing,
        &AccessClaims {
            iss: "http://evil.example".to_owned(),
            ..claims()
        },
    )
    .unwrap();
    assert_eq!(verifier.verify(&foreign, NOW), Err(TokenError::WrongIssuer));
    for garbage in ["", "a.b.c", "not a token", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(
            verifier.verify(garbage, NOW),
            Err(TokenError::Malformed),
            "{garbage:?}"
        );
    }
}

#[test]
fn a_sealed_key_does_not_open_for_another_host() {
    let event = keys::generate(&ring(), "h1").unwrap();
    assert!(matches!(
        SigningKey::open(&ring(), "h2", &event),
        Err(keys::KeyError::Open { .. })
    ));
}

#[test]
fn the_hex_form_round_trips_and_the_jwk_has_the_coordinates() {
    let event = keys::generate(&ring(), "h1").unwrap();
    let hex: String = event
        .public_key
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(VerifyingKey::from_hex(&event.kid, "ES256", &hex).is_ok());
    assert!(VerifyingKey::from_hex(&event.kid, "RS256", &hex).is_err());
    assert!(VerifyingKey::from_hex(&event.kid, "ES256", "04ab").is_err());
    let jwk = keys::public_jwk(&event.kid, &event.public_key).unwrap();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
}
