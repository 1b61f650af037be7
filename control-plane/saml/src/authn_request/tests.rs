//! Tests of `authn_request`: the redirect URL carries a raw-DEFLATE, base64 AuthnRequest that
//! inflates back to the expected fields, the RelayState, and a fresh ID every time.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::io::Read as _;
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::DeflateDecoder;

use super::*;
use crate::test_support::{ACS_URL, SP_ENTITY_ID, SSO_URL, idp, sp};

/// 2026-11-30T08:00:00.123Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_796_025_600_123)
}

/// The redirect URL's query pairs and the inflated AuthnRequest XML.
fn decode(redirect_url: &str) -> (Url, Vec<(String, String)>, String) {
    let url = Url::parse(redirect_url).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let encoded = pairs
        .iter()
        .find(|(name, _)| name == "SAMLRequest")
        .map(|(_, value)| value.clone())
        .unwrap();
    let deflated = STANDARD.decode(encoded).unwrap();
    let mut xml = String::new();
    DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    (url, pairs, xml)
}

#[test]
fn the_redirect_carries_an_authn_request_with_every_field() {
    let request = authn_request(&sp(), &idp(), "opaque-key-1", now()).unwrap();
    let (url, pairs, xml) = decode(&request.redirect_url);
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.path()
        ),
        SSO_URL
    );
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["SAMLRequest", "RelayState"]);
    assert_eq!(pairs[1].1, "opaque-key-1");

    let parsed: SamlAuthnRequest = xml.parse().unwrap();
    assert_eq!(parsed.id, request.id);
    assert_eq!(parsed.version, "2.0");
    assert_eq!(parsed.issue_instant, DateTime::<Utc>::from(now()));
    assert_eq!(parsed.destination.as_deref(), Some(SSO_URL));
    assert_eq!(
        parsed.assertion_consumer_service_url.as_deref(),
        Some(ACS_URL)
    );
    assert_eq!(parsed.protocol_binding.as_deref(), Some(HTTP_POST_BINDING));
    assert_eq!(parsed.issuer_value().as_deref(), Some(SP_ENTITY_ID));
    let policy = parsed.name_id_policy.unwrap();
    assert_eq!(policy.format.as_deref(), Some(NAME_ID_FORMAT_EMAIL));
    assert_eq!(policy.allow_create, Some(true));
    assert!(parsed.signature.is_none());
    assert!(
        xml.contains("IssueInstant=\"2026-11-30T08:00:00.123Z\""),
        "{xml}"
    );
    assert!(
        xml.contains("xmlns:saml2p=\"urn:oasis:names:tc:SAML:2.0:protocol\""),
        "{xml}"
    );
}

#[test]
fn every_request_gets_a_fresh_unguessable_id() {
    let first = authn_request(&sp(), &idp(), "", now()).unwrap();
    let second = authn_request(&sp(), &idp(), "", now()).unwrap();
    assert_ne!(first.id, second.id);
    for id in [&first.id, &second.id] {
        assert_eq!(id.len(), 33, "{id}");
        assert!(id.starts_with('_'), "{id}");
        assert!(
            id[1..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
    }
}

#[test]
fn an_empty_relay_state_is_left_out() {
    let request = authn_request(&sp(), &idp(), "", now()).unwrap();
    let (_, pairs, _) = decode(&request.redirect_url);
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["SAMLRequest"]);
}

#[test]
fn the_relay_state_is_url_encoded_and_limited_to_80_bytes() {
    let relay_state = "a b&c=d/é";
    let request = authn_request(&sp(), &idp(), relay_state, now()).unwrap();
    assert!(!request.redirect_url.contains(' '));
    let (_, pairs, _) = decode(&request.redirect_url);
    assert_eq!(pairs[1], ("RelayState".to_owned(), relay_state.to_owned()));

    assert!(authn_request(&sp(), &idp(), &"x".repeat(MAX_RELAY_STATE_BYTES), now()).is_ok());
    assert_eq!(
        authn_request(&sp(), &idp(), &"x".repeat(MAX_RELAY_STATE_BYTES + 1), now()),
        Err(SamlError::RelayStateTooLong)
    );
}

#[test]
fn a_query_already_in_the_sso_url_is_kept() {
    let idp = IdentityProvider {
        sso_url: "https://idp.example/saml2/idp/SSOService.php?spentityid=gw".to_owned(),
        ..idp()
    };
    let request = authn_request(&sp(), &idp, "k", now()).unwrap();
    let (_, pairs, xml) = decode(&request.redirect_url);
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["spentityid", "SAMLRequest", "RelayState"]);
    let parsed: SamlAuthnRequest = xml.parse().unwrap();
    assert_eq!(parsed.destination.as_deref(), Some(idp.sso_url.as_str()));
}

#[test]
fn an_entity_id_with_markup_characters_stays_well_formed() {
    let sp = ServiceProvider {
        entity_id: "https://gateway.example/md?a=1&b=<2>".to_owned(),
        ..sp()
    };
    let request = authn_request(&sp, &idp(), "", now()).unwrap();
    let (_, _, xml) = decode(&request.redirect_url);
    let parsed: SamlAuthnRequest = xml.parse().unwrap();
    assert_eq!(
        parsed.issuer_value().as_deref(),
        Some(sp.entity_id.as_str())
    );
}

#[test]
fn a_request_to_a_misconfigured_idp_is_refused() {
    let mut idp = idp();
    idp.certificates.clear();
    assert!(matches!(
        authn_request(&sp(), &idp, "", now()),
        Err(SamlError::Config {
            field: "certificates",
            ..
        })
    ));
}
