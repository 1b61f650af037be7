//! Tests of `sp_metadata`: the document parses back with the SP's entity id, the signing
//! flags, the NameID format and the HTTP-POST ACS, and escapes what it must.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use samael::metadata::EntityDescriptor;

use super::*;
use crate::test_support::{ACS_URL, SP_ENTITY_ID, sp};

fn parsed(sp: &ServiceProvider) -> (String, EntityDescriptor) {
    let xml = sp_metadata(sp).unwrap();
    let descriptor: EntityDescriptor = xml.parse().unwrap();
    (xml, descriptor)
}

#[test]
fn the_metadata_describes_the_service_provider() {
    let (xml, descriptor) = parsed(&sp());
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(descriptor.entity_id.as_deref(), Some(SP_ENTITY_ID));
    assert!(descriptor.idp_sso_descriptors.is_none());
    let sp_descriptors = descriptor.sp_sso_descriptors.unwrap();
    assert_eq!(sp_descriptors.len(), 1);
    let sso = &sp_descriptors[0];
    assert_eq!(sso.authn_requests_signed, Some(false));
    assert_eq!(sso.want_assertions_signed, Some(true));
    assert_eq!(
        sso.protocol_support_enumeration.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:protocol")
    );
    assert_eq!(
        sso.name_id_formats.as_deref(),
        Some(&[NAME_ID_FORMAT_EMAIL.to_owned()][..])
    );
    assert_eq!(sso.assertion_consumer_services.len(), 1);
    let acs = &sso.assertion_consumer_services[0];
    assert_eq!(acs.binding, HTTP_POST_BINDING);
    assert_eq!(acs.location, ACS_URL);
    assert_eq!(acs.index, 0);
    assert_eq!(acs.is_default, Some(true));
    // The SP neither signs nor decrypts: no keys, no logout, no expiry.
    assert!(!xml.contains("KeyDescriptor"), "{xml}");
    assert!(!xml.contains("SingleLogoutService"), "{xml}");
    assert!(!xml.contains("validUntil"), "{xml}");
}

#[test]
fn the_metadata_is_stable_for_the_same_settings() {
    assert_eq!(sp_metadata(&sp()).unwrap(), sp_metadata(&sp()).unwrap());
}

#[test]
fn urls_with_query_strings_are_escaped_and_read_back_unchanged() {
    let sp = ServiceProvider {
        entity_id: "https://gateway.example/metadata?a=1&b=\"2\"".to_owned(),
        acs_url: "https://gateway.example/acs?tenant=a&x=<y>".to_owned(),
    };
    let (xml, descriptor) = parsed(&sp);
    assert!(xml.contains("a=1&amp;b="), "{xml}");
    assert_eq!(descriptor.entity_id.as_deref(), Some(sp.entity_id.as_str()));
    let sso = &descriptor.sp_sso_descriptors.unwrap()[0];
    assert_eq!(sso.assertion_consumer_services[0].location, sp.acs_url);
}

#[test]
fn metadata_for_a_bad_service_provider_is_refused() {
    let sp = ServiceProvider {
        acs_url: "not a url".to_owned(),
        ..sp()
    };
    assert!(matches!(
        sp_metadata(&sp),
        Err(SamlError::Config {
            field: "service_provider.acs_url",
            ..
        })
    ));
}
