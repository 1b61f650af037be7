//! Tests of `verify_response` up to samael's signature check (limits, decoding, the unsigned
//! regression, a forged signature, a missing certificate), and of `check_assertion` on parsed
//! assertions against a fixed clock (validity windows, audience, recipient, request id, issuer,
//! where the email comes from). Signed responses from a real IdP are in `tests/idp.rs`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::test_support::{
    ACS_URL, ENDS, IDP_ENTITY_ID, ISSUED_MS, REQUEST_ID, RSA_SHA256, ResponseXml, SHA256,
    SP_ENTITY_ID, at, bearer, conditions, fake_signature, idp, sp,
};

fn verify(encoded: &str) -> Result<VerifiedAssertion, SamlError> {
    verify_response(&sp(), &idp(), encoded, REQUEST_ID, at(10))
}

/// `check_assertion` on the fixture's assertion, parsed as samael would return it.
fn check_at(xml: &ResponseXml, seconds: i64) -> Result<VerifiedAssertion, SamlError> {
    let assertion: Assertion = xml.assertion().parse().unwrap();
    check_assertion(&assertion, &sp(), &idp(), REQUEST_ID, at(seconds))
}

fn attribute(name: &str, values: &[&str]) -> String {
    let values: String = values
        .iter()
        .map(|value| format!("<saml:AttributeValue>{value}</saml:AttributeValue>"))
        .collect();
    format!(r#"<saml:Attribute Name="{name}">{values}</saml:Attribute>"#)
}

fn statement(attributes: &[String]) -> String {
    format!(
        "<saml:AttributeStatement>{}</saml:AttributeStatement>",
        attributes.concat()
    )
}

const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

#[test]
fn an_unsigned_response_with_an_edited_name_id_is_refused() {
    // The samael pitfall: without a signing key in the IdP metadata it verifies nothing.
    let forged = ResponseXml {
        name_id: ResponseXml::default()
            .name_id
            .replace("alice@corp.example", "mallory@evil.example"),
        ..ResponseXml::default()
    };
    assert_eq!(verify(&forged.encoded()), Err(SamlError::Unsigned));
}

#[test]
fn without_a_configured_certificate_nothing_is_verified() {
    let mut idp = idp();
    idp.certificates.clear();
    let result = verify_response(
        &sp(),
        &idp,
        &ResponseXml::default().encoded(),
        REQUEST_ID,
        at(10),
    );
    assert!(matches!(
        result,
        Err(SamlError::Config {
            field: "certificates",
            ..
        })
    ));
}

#[test]
fn a_forged_signature_is_refused_by_samael() {
    for reference in ["_a1", "_r1"] {
        let forged = ResponseXml {
            assertion_signature: fake_signature(reference, RSA_SHA256, SHA256),
            ..ResponseXml::default()
        };
        assert_eq!(
            verify(&forged.encoded()),
            Err(SamlError::SignatureInvalid),
            "{reference}"
        );
    }
    // The same for a signature that carries its own (attacker's) certificate in KeyInfo.
    let with_key_info = ResponseXml {
        assertion_signature: fake_signature("_a1", RSA_SHA256, SHA256).replace(
            "</ds:SignatureValue>",
            &format!(
                "</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
                crate::test_support::rsa_certificate_pem()
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .collect::<String>()
            ),
        ),
        ..ResponseXml::default()
    };
    assert_eq!(
        verify(&with_key_info.encoded()),
        Err(SamlError::SignatureInvalid)
    );
}

#[test]
fn oversized_responses_are_refused_before_and_after_decoding() {
    let huge = "A".repeat(MAX_ENCODED_RESPONSE_BYTES + 1);
    assert_eq!(verify(&huge), Err(SamlError::TooLarge));
    // Under the encoded limit, over the decoded one.
    let padding = format!("<!--{}-->", "x".repeat(MAX_RESPONSE_BYTES));
    let xml = format!("{}{padding}", ResponseXml::default().response());
    let encoded = STANDARD.encode(xml);
    assert!(encoded.len() <= MAX_ENCODED_RESPONSE_BYTES);
    assert_eq!(verify(&encoded), Err(SamlError::TooLarge));
}

#[test]
fn input_that_is_not_base64_or_not_utf8_is_malformed() {
    for input in ["%%%", "not base64!", "AAA"] {
        assert!(
            matches!(verify(input), Err(SamlError::Malformed(_))),
            "{input}"
        );
    }
    let latin1 = STANDARD.encode([0x3c, 0xe9, 0x3e]);
    assert!(matches!(verify(&latin1), Err(SamlError::Malformed(_))));
}

#[test]
fn base64_with_line_breaks_is_decoded() {
    let encoded = ResponseXml::default().encoded();
    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
        .collect();
    // It decodes, and is then refused for what it is: unsigned.
    assert_eq!(verify(&wrapped), Err(SamlError::Unsigned));
}

#[test]
fn an_empty_expected_request_id_matches_nothing() {
    let result = verify_response(&sp(), &idp(), &ResponseXml::default().encoded(), "", at(10));
    assert_eq!(result, Err(SamlError::WrongInResponseTo));
}

#[test]
fn a_valid_assertion_yields_the_identity_and_its_replay_window() {
    let verified = check_at(&ResponseXml::default(), 10).unwrap();
    assert_eq!(
        verified,
        VerifiedAssertion {
            idp_entity_id: IDP_ENTITY_ID.to_owned(),
            name_id: "alice@corp.example".to_owned(),
            name_id_format: Some(NAME_ID_FORMAT_EMAIL.to_owned()),
            email: Some("alice@corp.example".to_owned()),
            assertion_id: "_a1".to_owned(),
            // ENDS (08:05:00) plus the clock skew.
            valid_until_ms: (ISSUED_MS + 300_000 + 180_000) as i64,
        }
    );
}

#[test]
fn the_replay_window_ends_with_the_earlier_not_on_or_after() {
    let xml = ResponseXml {
        confirmations: bearer(ACS_URL, REQUEST_ID, Some("2026-11-30T08:02:00Z")),
        ..ResponseXml::default()
    };
    let verified = check_at(&xml, 10).unwrap();
    assert_eq!(
        verified.valid_until_ms,
        (ISSUED_MS + 120_000 + 180_000) as i64
    );
}

#[test]
fn the_validity_window_allows_three_minutes_of_skew_and_no_more() {
    // NotBefore = IssueInstant = 08:00:00.
    let xml = ResponseXml::default();
    assert!(check_at(&xml, -180).is_ok());
    assert_eq!(check_at(&xml, -181), Err(SamlError::NotYetValid));
    // NotOnOrAfter = 08:05:00 (issued at 08:04:00, so the issue age is not what ends it).
    let late = ResponseXml {
        assertion_issue_instant: "2026-11-30T08:04:00Z".to_owned(),
        ..ResponseXml::default()
    };
    assert!(check_at(&late, 300 + 179).is_ok());
    assert_eq!(check_at(&late, 300 + 180), Err(SamlError::Expired));
}

#[test]
fn an_assertion_issued_too_long_ago_is_expired_even_if_its_conditions_last() {
    let xml = ResponseXml {
        assertion_issue_instant: "2026-11-30T07:55:00Z".to_owned(),
        ..ResponseXml::default()
    };
    // Issued 5 minutes before `ISSUED`: older than 90 s + 180 s at `ISSUED` + 10 s.
    assert_eq!(check_at(&xml, 10), Err(SamlError::Expired));
    let recent = ResponseXml {
        assertion_issue_instant: "2026-11-30T07:56:00Z".to_owned(),
        ..ResponseXml::default()
    };
    assert!(check_at(&recent, 0).is_ok());
}

#[test]
fn a_bearer_confirmation_that_has_expired_is_refused() {
    let xml = ResponseXml {
        confirmations: bearer(ACS_URL, REQUEST_ID, Some("2026-11-30T08:01:00Z")),
        ..ResponseXml::default()
    };
    assert_eq!(check_at(&xml, 60 + 180), Err(SamlError::Expired));
    let no_end = ResponseXml {
        confirmations: bearer(ACS_URL, REQUEST_ID, None),
        ..ResponseXml::default()
    };
    assert!(matches!(
        check_at(&no_end, 10),
        Err(SamlError::Malformed(_))
    ));
}

#[test]
fn the_audience_must_be_this_service_provider_in_every_restriction() {
    for (restrictions, ok) in [
        (conditions(&[&[SP_ENTITY_ID]]), true),
        (conditions(&[&["urn:other", SP_ENTITY_ID]]), true),
        (conditions(&[&["urn:other"]]), false),
        (conditions(&[&[SP_ENTITY_ID], &["urn:other"]]), false),
        (conditions(&[]), false),
        (String::new(), false),
    ] {
        let xml = ResponseXml {
            conditions: restrictions.clone(),
            ..ResponseXml::default()
        };
        let result = check_at(&xml, 10);
        if ok {
            assert!(result.is_ok(), "{restrictions}: {result:?}");
        } else {
            assert_eq!(result, Err(SamlError::WrongAudience), "{restrictions}");
        }
    }
}

#[test]
fn the_bearer_confirmation_must_name_this_acs_and_request() {
    let elsewhere = ResponseXml {
        confirmations: bearer("https://evil.example/acs", REQUEST_ID, Some(ENDS)),
        ..ResponseXml::default()
    };
    assert_eq!(check_at(&elsewhere, 10), Err(SamlError::WrongRecipient));
    let other_request = ResponseXml {
        confirmations: bearer(ACS_URL, "_other", Some(ENDS)),
        ..ResponseXml::default()
    };
    assert_eq!(
        check_at(&other_request, 10),
        Err(SamlError::WrongInResponseTo)
    );
    // One good bearer confirmation among bad ones is enough.
    let one_good = ResponseXml {
        confirmations: format!(
            "{}{}",
            bearer("https://evil.example/acs", REQUEST_ID, Some(ENDS)),
            bearer(ACS_URL, REQUEST_ID, Some(ENDS))
        ),
        ..ResponseXml::default()
    };
    assert!(check_at(&one_good, 10).is_ok());
    let holder_of_key = ResponseXml {
        confirmations: bearer(ACS_URL, REQUEST_ID, Some(ENDS))
            .replace("cm:bearer", "cm:holder-of-key"),
        ..ResponseXml::default()
    };
    assert!(matches!(
        check_at(&holder_of_key, 10),
        Err(SamlError::Malformed(_))
    ));
}

#[test]
fn the_assertion_must_come_from_the_configured_idp() {
    let xml = ResponseXml {
        assertion_issuer: "https://evil.example/metadata".to_owned(),
        ..ResponseXml::default()
    };
    assert_eq!(check_at(&xml, 10), Err(SamlError::WrongIssuer));
}

#[test]
fn without_an_email_name_id_the_email_comes_from_the_first_listed_attribute() {
    let xml = ResponseXml {
        name_id: format!(r#"<saml:NameID Format="{UNSPECIFIED}">u-1234</saml:NameID>"#),
        attributes: statement(&[
            attribute(EMAIL_ATTRIBUTES[3], &["fourth@corp.example"]),
            attribute(
                EMAIL_ATTRIBUTES[1],
                &["not an address", "second@corp.example"],
            ),
            attribute(EMAIL_ATTRIBUTES[2], &["third@corp.example"]),
            attribute("displayName", &["Alice@Home"]),
        ]),
        ..ResponseXml::default()
    };
    let verified = check_at(&xml, 10).unwrap();
    assert_eq!(verified.name_id, "u-1234");
    assert_eq!(verified.name_id_format.as_deref(), Some(UNSPECIFIED));
    assert_eq!(verified.email.as_deref(), Some("second@corp.example"));

    let only_oid = ResponseXml {
        attributes: statement(&[attribute(EMAIL_ATTRIBUTES[2], &["third@corp.example"])]),
        ..xml.clone()
    };
    assert_eq!(
        check_at(&only_oid, 10).unwrap().email.as_deref(),
        Some("third@corp.example")
    );
    let none = ResponseXml {
        attributes: statement(&[attribute("displayName", &["Alice"])]),
        ..xml
    };
    assert_eq!(check_at(&none, 10).unwrap().email, None);
}

#[test]
fn an_email_name_id_that_is_not_an_address_falls_back_to_the_attributes() {
    let xml = ResponseXml {
        name_id: format!(r#"<saml:NameID Format="{NAME_ID_FORMAT_EMAIL}">alice</saml:NameID>"#),
        attributes: statement(&[attribute("mail", &["alice@corp.example"])]),
        ..ResponseXml::default()
    };
    let verified = check_at(&xml, 10).unwrap();
    assert_eq!(verified.name_id, "alice");
    assert_eq!(verified.email.as_deref(), Some("alice@corp.example"));
}

#[test]
fn a_missing_name_id_is_malformed() {
    // (An empty NameID element does not even parse in samael.)
    let xml = ResponseXml {
        name_id: String::new(),
        ..ResponseXml::default()
    };
    assert!(matches!(check_at(&xml, 10), Err(SamlError::Malformed(_))));
}

#[test]
fn only_address_shaped_values_count_as_emails() {
    for good in ["a@b", "alice@corp.example", " alice@corp.example "] {
        assert_eq!(
            plausible_email(good).as_deref(),
            Some(good.trim()),
            "{good}"
        );
    }
    for bad in [
        "",
        "alice",
        "@corp.example",
        "alice@",
        "a@b@c",
        "a b@c",
        "a@\nb",
        "<a@b>",
    ] {
        assert_eq!(plausible_email(bad), None, "{bad:?}");
    }
    assert_eq!(plausible_email(&format!("{}@b", "a".repeat(253))), None);
}

#[test]
fn error_messages_never_quote_the_response() {
    let forged = ResponseXml {
        status: r#"<samlp:Status><samlp:StatusCode Value="urn:x:<script>alert(1)</script>"/></samlp:Status>"#.replace('<', "&lt;").replace("&lt;samlp", "<samlp").replace("&lt;/samlp", "</samlp"),
        ..ResponseXml::default()
    };
    let text = verify(&forged.encoded()).unwrap_err().to_string();
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
}
