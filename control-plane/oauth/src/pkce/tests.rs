//! PKCE: the RFC 7636 appendix B example, and every way to get it wrong.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

#[test]
fn the_rfc_example_verifies() {
    assert_eq!(challenge_of(VERIFIER), CHALLENGE);
    assert_eq!(
        check_challenge(Some(CHALLENGE), Some("S256")),
        Ok(CHALLENGE.to_owned())
    );
    assert_eq!(verify(CHALLENGE, Some(VERIFIER)), Ok(()));
}

#[test]
fn a_missing_or_plain_challenge_is_refused() {
    assert_eq!(
        check_challenge(None, Some("S256")),
        Err(PkceError::MissingChallenge)
    );
    assert_eq!(
        check_challenge(Some(""), Some("S256")),
        Err(PkceError::MissingChallenge)
    );
    assert_eq!(
        check_challenge(Some(CHALLENGE), Some("plain")),
        Err(PkceError::UnsupportedMethod("plain".into()))
    );
    assert_eq!(
        check_challenge(Some(CHALLENGE), None),
        Err(PkceError::UnsupportedMethod("plain".into()))
    );
    assert_eq!(
        check_challenge(Some(CHALLENGE), Some("s256")),
        Err(PkceError::UnsupportedMethod("s256".into()))
    );
    assert_eq!(
        check_challenge(Some("short"), Some("S256")),
        Err(PkceError::MalformedChallenge)
    );
    assert_eq!(
        check_challenge(Some(&format!("{}=", &CHALLENGE[..42])), Some("S256")),
        Err(PkceError::MalformedChallenge)
    );
}

#[test]
fn a_wrong_missing_or_malformed_verifier_is_refused() {
    assert_eq!(verify(CHALLENGE, None), Err(PkceError::MissingVerifier));
    let other = "x".repeat(43);
    assert_eq!(verify(CHALLENGE, Some(&other)), Err(PkceError::Mismatch));
    assert_eq!(
        verify(CHALLENGE, Some("short")),
        Err(PkceError::MalformedVerifier)
    );
    assert_eq!(
        verify(CHALLENGE, Some(&"a".repeat(129))),
        Err(PkceError::MalformedVerifier)
    );
    assert_eq!(
        verify(CHALLENGE, Some(&format!("{VERIFIER}+"))),
        Err(PkceError::MalformedVerifier)
    );
    // A plain-method client sends the verifier as the challenge: it must not verify.
    assert_eq!(verify(VERIFIER, Some(VERIFIER)), Err(PkceError::Mismatch));
}
