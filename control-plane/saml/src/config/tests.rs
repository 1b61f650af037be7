//! Tests of `ServiceProvider::check` and `IdentityProvider::check`: entity ids, URL syntax, and
//! the signing certificates (formats, key types and sizes, the index in the error).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::test_support::{certificate, ec_key, idp, rsa_certificate_pem, rsa_key, sp};

/// `Ok`, or the field the check named and a piece of its reason.
#[track_caller]
fn check_idp(idp: &IdentityProvider, expected: Result<(), (&str, &str)>) {
    match (idp.check(), expected) {
        (Ok(()), Ok(())) => {}
        (Err(SamlError::Config { field, reason }), Err((want_field, want_reason))) => {
            assert_eq!(field, want_field, "{reason}");
            assert!(
                reason.contains(want_reason),
                "{reason:?} lacks {want_reason:?}"
            );
        }
        (got, want) => panic!("got {got:?}, expected {want:?}"),
    }
}

#[track_caller]
fn check_sp(sp: &ServiceProvider, expected: Result<(), &str>) {
    let got = sp.check().map_err(|error| match error {
        SamlError::Config { field, .. } => field,
        other => panic!("expected a Config error, got {other:?}"),
    });
    assert_eq!(got, expected, "{sp:?}");
}

#[test]
fn a_complete_identity_provider_passes() {
    check_idp(&idp(), Ok(()));
}

#[test]
fn an_identity_provider_without_certificates_is_refused() {
    let mut idp = idp();
    idp.certificates.clear();
    check_idp(&idp, Err(("certificates", "at least one")));
}

#[test]
fn several_certificates_for_rotation_pass_and_a_bad_one_is_named_by_index() {
    let mut idp = idp();
    idp.certificates.push(rsa_certificate_pem());
    check_idp(&idp, Ok(()));
    idp.certificates.push("not a certificate".to_owned());
    check_idp(&idp, Err(("certificates", "certificate 2 ")));
}

#[test]
fn a_bare_base64_der_certificate_passes_with_or_without_line_breaks() {
    let der = certificate(&rsa_key(2048)).to_der().unwrap();
    let text = STANDARD.encode(der);
    let wrapped: String = text
        .as_bytes()
        .chunks(64)
        .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
        .collect();
    for form in [text, wrapped] {
        let idp = IdentityProvider {
            certificates: vec![form],
            ..idp()
        };
        check_idp(&idp, Ok(()));
    }
}

#[test]
fn an_ec_certificate_passes() {
    let pem = String::from_utf8(certificate(&ec_key()).to_pem().unwrap()).unwrap();
    let idp = IdentityProvider {
        certificates: vec![pem],
        ..idp()
    };
    check_idp(&idp, Ok(()));
}

#[test]
fn a_small_rsa_key_is_refused() {
    let pem = String::from_utf8(certificate(&rsa_key(1024)).to_pem().unwrap()).unwrap();
    let idp = IdentityProvider {
        certificates: vec![pem],
        ..idp()
    };
    check_idp(&idp, Err(("certificates", "1024-bit")));
}

#[test]
fn a_pem_entry_must_hold_exactly_one_certificate() {
    let two = format!("{}{}", rsa_certificate_pem(), rsa_certificate_pem());
    let idp = IdentityProvider {
        certificates: vec![two],
        ..idp()
    };
    check_idp(
        &idp,
        Err(("certificates", "certificate 0 must hold exactly one")),
    );
}

#[test]
fn garbage_certificates_are_refused() {
    for garbage in [
        "",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "bm90IGEgY2VydGlmaWNhdGU=",
        "%%%",
    ] {
        let idp = IdentityProvider {
            certificates: vec![garbage.to_owned()],
            ..idp()
        };
        check_idp(&idp, Err(("certificates", "certificate 0 ")));
    }
}

#[test]
fn too_many_certificates_are_refused() {
    let pem = rsa_certificate_pem();
    let idp = IdentityProvider {
        certificates: vec![pem; MAX_CERTIFICATES + 1],
        ..idp()
    };
    check_idp(&idp, Err(("certificates", "at most")));
}

#[test]
fn the_entity_id_must_be_non_empty_short_and_without_spaces() {
    for (entity_id, reason) in [
        (String::new(), "empty"),
        ("x".repeat(MAX_ENTITY_ID_CHARS + 1), "longer than"),
        ("https://idp.example/ metadata".to_owned(), "spaces"),
        ("urn:idp\n".to_owned(), "spaces"),
    ] {
        let idp = IdentityProvider { entity_id, ..idp() };
        check_idp(&idp, Err(("entity_id", reason)));
    }
    let urn = IdentityProvider {
        entity_id: "urn:example:idp".to_owned(),
        ..idp()
    };
    check_idp(&urn, Ok(()));
    let longest = IdentityProvider {
        entity_id: "x".repeat(MAX_ENTITY_ID_CHARS),
        ..idp()
    };
    check_idp(&longest, Ok(()));
}

#[test]
fn the_sso_url_must_be_an_absolute_http_url_without_credentials_or_fragment() {
    for (url, reason) in [
        ("/sso", "absolute"),
        ("ftp://idp.example/sso", "scheme"),
        ("https://user:pw@idp.example/sso", "credentials"),
        ("https://user@idp.example/sso", "credentials"),
        ("https://idp.example/sso#x", "fragment"),
        ("file:///etc/passwd", "scheme"),
    ] {
        let idp = IdentityProvider {
            sso_url: url.to_owned(),
            ..idp()
        };
        check_idp(&idp, Err(("sso_url", reason)));
    }
    for url in [
        "http://127.0.0.1:8080/sso",
        "https://idp.example/saml2/idp/SSOService.php?spentityid=x",
    ] {
        let idp = IdentityProvider {
            sso_url: url.to_owned(),
            ..idp()
        };
        check_idp(&idp, Ok(()));
    }
}

#[test]
fn the_service_provider_needs_an_entity_id_and_an_absolute_acs_url() {
    check_sp(&sp(), Ok(()));
    check_sp(
        &ServiceProvider {
            entity_id: String::new(),
            ..sp()
        },
        Err("service_provider.entity_id"),
    );
    for acs_url in [
        "/acs",
        "https://gateway.example/acs#x",
        "javascript:alert(1)",
    ] {
        check_sp(
            &ServiceProvider {
                acs_url: acs_url.to_owned(),
                ..sp()
            },
            Err("service_provider.acs_url"),
        );
    }
}

#[test]
fn config_errors_read_as_sentences_naming_the_setting() {
    let mut idp = idp();
    idp.certificates = vec!["nope".to_owned()];
    let text = idp.check().unwrap_err().to_string();
    assert!(
        text.starts_with("the SAML setting certificates is not valid: certificate 0 "),
        "{text}"
    );
}
