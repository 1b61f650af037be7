//! Tests of the shape checks: DTDs, encodings, the root, how many assertions and where,
//! encrypted assertions, status, the envelope's addressing, algorithms, and "signed at all".
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;
use crate::test_support::{
    REQUEST_ID, RSA_SHA1, RSA_SHA256, ResponseXml, SHA1, SHA256, fake_signature, sp,
};

/// `inspect` then `check`, as `verify_response` runs them.
fn shape_check(xml: &str) -> Result<(), SamlError> {
    let shape = inspect(xml)?;
    check(&shape, &sp(), REQUEST_ID)
}

fn signed() -> ResponseXml {
    ResponseXml {
        assertion_signature: fake_signature("_a1", RSA_SHA256, SHA256),
        ..ResponseXml::default()
    }
}

/// An unsigned copy of the fixture assertion for someone else, with another ID.
fn evil_assertion() -> String {
    ResponseXml::default()
        .assertion()
        .replace("alice@corp.example", "mallory@evil.example")
        .replace(r#"ID="_a1""#, r#"ID="_evil""#)
}

#[test]
fn a_well_formed_signed_response_passes() {
    assert_eq!(shape_check(&signed().response()), Ok(()));
}

#[test]
fn a_response_without_any_signature_is_refused_as_unsigned() {
    assert_eq!(
        shape_check(&ResponseXml::default().response()),
        Err(SamlError::Unsigned)
    );
}

#[test]
fn a_document_type_declaration_is_refused() {
    let laughs =
        r#"<!DOCTYPE samlp:Response [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>"#;
    let xml =
        signed()
            .response()
            .replacen("<samlp:Response", &format!("{laughs}<samlp:Response"), 1);
    assert_eq!(shape_check(&xml), Err(SamlError::DocumentType));
    let external = r#"<!DOCTYPE r SYSTEM "http://attacker.example/x.dtd">"#;
    let xml =
        signed()
            .response()
            .replacen("<samlp:Response", &format!("{external}<samlp:Response"), 1);
    assert_eq!(shape_check(&xml), Err(SamlError::DocumentType));
}

#[test]
fn only_a_utf8_encoding_declaration_is_accepted() {
    for declaration in [
        r#"<?xml version="1.0"?>"#,
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        "",
    ] {
        let xml = ResponseXml {
            declaration: declaration.to_owned(),
            ..signed()
        };
        assert_eq!(shape_check(&xml.response()), Ok(()), "{declaration}");
    }
    for encoding in ["ISO-8859-1", "UTF-16", "UTF-7"] {
        let xml = ResponseXml {
            declaration: format!(r#"<?xml version="1.0" encoding="{encoding}"?>"#),
            ..signed()
        };
        assert!(
            matches!(shape_check(&xml.response()), Err(SamlError::Malformed(_))),
            "{encoding}"
        );
    }
}

#[test]
fn the_root_must_be_a_saml2_response() {
    let assertion = signed().assertion();
    assert!(matches!(
        shape_check(&assertion),
        Err(SamlError::Malformed(_))
    ));
    let wrong_namespace = signed().response().replace(
        "urn:oasis:names:tc:SAML:2.0:protocol",
        "urn:example:not-saml",
    );
    assert!(matches!(
        shape_check(&wrong_namespace),
        Err(SamlError::Malformed(_))
    ));
}

#[test]
fn broken_xml_is_malformed() {
    let response = signed().response();
    for broken in [
        response[..response.len() - 10].to_owned(),
        format!("{response}<samlp:Response/>"),
        response.replace("</saml:Issuer>", ""),
        response.replacen(r#"Version="2.0""#, r#"Version="2.0" Version="2.0""#, 1),
        String::new(),
    ] {
        assert!(
            matches!(shape_check(&broken), Err(SamlError::Malformed(_))),
            "{broken}"
        );
    }
}

#[test]
fn a_second_assertion_anywhere_is_refused() {
    let before = signed().response().replacen(
        "<saml:Assertion ",
        &format!("{}<saml:Assertion ", evil_assertion()),
        1,
    );
    let after = ResponseXml {
        after_assertion: evil_assertion(),
        ..signed()
    }
    .response();
    let in_extensions = ResponseXml {
        after_issuer: format!("<samlp:Extensions>{}</samlp:Extensions>", evil_assertion()),
        ..signed()
    }
    .response();
    let in_object = ResponseXml {
        assertion_signature: fake_signature("_a1", RSA_SHA256, SHA256).replace(
            "</ds:Signature>",
            &format!("<ds:Object>{}</ds:Object></ds:Signature>", evil_assertion()),
        ),
        ..ResponseXml::default()
    }
    .response();
    for xml in [before, after, in_extensions, in_object] {
        assert_eq!(
            shape_check(&xml),
            Err(SamlError::MultipleAssertions),
            "{xml}"
        );
    }
}

#[test]
fn assertions_are_found_whatever_their_prefix() {
    let other_prefix = evil_assertion()
        .replace("saml:", "x:")
        .replace("xmlns:saml=", "xmlns:x=");
    let default_namespace = evil_assertion()
        .replace("saml:", "")
        .replace("xmlns:saml=", "xmlns=");
    for evil in [other_prefix, default_namespace] {
        let xml = ResponseXml {
            after_assertion: evil,
            ..signed()
        };
        assert_eq!(
            shape_check(&xml.response()),
            Err(SamlError::MultipleAssertions)
        );
    }
    // An "Assertion" in another namespace is not a SAML assertion.
    let lookalike = ResponseXml {
        after_issuer:
            r#"<samlp:Extensions><x:Assertion xmlns:x="urn:example:other"/></samlp:Extensions>"#
                .to_owned(),
        ..signed()
    };
    assert_eq!(shape_check(&lookalike.response()), Ok(()));
}

#[test]
fn the_only_assertion_must_be_a_child_of_the_response() {
    let moved = ResponseXml::default().response().replace(
        &ResponseXml::default().assertion(),
        &format!(
            "<samlp:Extensions>{}</samlp:Extensions>",
            signed().assertion()
        ),
    );
    assert!(
        matches!(shape_check(&moved), Err(SamlError::Malformed(_))),
        "{moved}"
    );
}

#[test]
fn a_response_without_an_assertion_is_refused() {
    let xml = signed().response().replace(&signed().assertion(), "");
    assert_eq!(shape_check(&xml), Err(SamlError::NoAssertion));
}

#[test]
fn an_encrypted_assertion_is_refused_as_unsupported() {
    let encrypted = r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/></saml:EncryptedAssertion>"#;
    let only = signed()
        .response()
        .replace(&signed().assertion(), encrypted);
    let beside = ResponseXml {
        after_assertion: encrypted.to_owned(),
        ..signed()
    }
    .response();
    for xml in [only, beside] {
        assert_eq!(shape_check(&xml), Err(SamlError::EncryptedAssertion));
    }
}

#[test]
fn an_error_status_is_reported_before_anything_else() {
    let refused = ResponseXml {
        status: r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode><samlp:StatusMessage>no</samlp:StatusMessage></samlp:Status>"#.to_owned(),
        ..ResponseXml::default()
    };
    // Unsigned, and without an assertion: the IdP's refusal is still what the human sees.
    let xml = refused.response().replace(&refused.assertion(), "");
    assert_eq!(
        shape_check(&xml),
        Err(SamlError::Status("Responder/AuthnFailed".to_owned()))
    );
    let bare = ResponseXml {
        status: r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"/></samlp:Status>"#.to_owned(),
        ..signed()
    };
    assert_eq!(
        shape_check(&bare.response()),
        Err(SamlError::Status("Requester".to_owned()))
    );
}

#[test]
fn a_response_without_status_is_malformed() {
    let xml = ResponseXml {
        status: String::new(),
        ..signed()
    };
    assert!(matches!(
        shape_check(&xml.response()),
        Err(SamlError::Malformed(_))
    ));
}

#[test]
fn the_envelope_must_be_addressed_to_this_acs_and_request() {
    let elsewhere = signed().response().replacen(
        "Destination=\"https://gateway.example/",
        "Destination=\"https://evil.example/",
        1,
    );
    assert_eq!(shape_check(&elsewhere), Err(SamlError::WrongDestination));
    let other_request = signed().response().replacen(REQUEST_ID, "_other", 1);
    assert_eq!(
        shape_check(&other_request),
        Err(SamlError::WrongInResponseTo)
    );
    // Both are optional on the envelope (the signed assertion carries them too).
    let bare = ResponseXml {
        response_attributes: r#"ID="_r1" Version="2.0" IssueInstant="2026-11-30T08:00:00Z""#
            .to_owned(),
        ..signed()
    };
    assert_eq!(shape_check(&bare.response()), Ok(()));
}

#[test]
fn sha1_signatures_and_sha1_digests_are_refused_by_name() {
    for (method, digest, refused) in [
        (RSA_SHA1, SHA1, RSA_SHA1),
        (RSA_SHA1, SHA256, RSA_SHA1),
        (RSA_SHA256, SHA1, SHA1),
        (
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
            SHA256,
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        ),
        (
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
            SHA256,
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        ),
        (
            "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
            SHA256,
            "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
        ),
        (
            RSA_SHA256,
            "http://www.w3.org/2001/04/xmldsig-more#md5",
            "http://www.w3.org/2001/04/xmldsig-more#md5",
        ),
    ] {
        let xml = ResponseXml {
            assertion_signature: fake_signature("_a1", method, digest),
            ..ResponseXml::default()
        };
        assert_eq!(
            shape_check(&xml.response()),
            Err(SamlError::WeakAlgorithm(refused.to_owned())),
            "{method} {digest}"
        );
    }
    // A weak signature anywhere counts, even next to a strong one.
    let mixed = ResponseXml {
        after_issuer: fake_signature("_r1", RSA_SHA1, SHA1),
        ..signed()
    };
    assert_eq!(
        shape_check(&mixed.response()),
        Err(SamlError::WeakAlgorithm(RSA_SHA1.to_owned()))
    );
}

#[test]
fn every_allowed_algorithm_passes() {
    for method in ALLOWED_SIGNATURE_METHODS {
        for digest in ALLOWED_DIGEST_METHODS {
            let xml = ResponseXml {
                assertion_signature: fake_signature("_a1", method, digest),
                ..ResponseXml::default()
            };
            assert_eq!(shape_check(&xml.response()), Ok(()), "{method} {digest}");
        }
    }
}

#[test]
fn the_allow_lists_match_the_ones_given_to_samael() {
    let methods: Vec<&str> = SAMAEL_ALLOWED_ALGORITHMS
        .iter()
        .map(AllowedSignatureAlgorithm::signature_uri)
        .collect();
    assert_eq!(methods, ALLOWED_SIGNATURE_METHODS);
    let mut digests: Vec<&str> = SAMAEL_ALLOWED_ALGORITHMS
        .iter()
        .map(AllowedSignatureAlgorithm::digest_uri)
        .collect();
    digests.sort_unstable();
    digests.dedup();
    let mut ours = ALLOWED_DIGEST_METHODS.to_vec();
    ours.sort_unstable();
    assert_eq!(digests, ours);
}
