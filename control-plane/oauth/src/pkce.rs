//! PKCE (RFC 7636), S256 only: `plain` and missing challenges are refused, as the MCP
//! authorization spec requires; verifiers are checked for syntax and compared in constant
//! time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The one supported `code_challenge_method`.
pub const S256: &str = "S256";

/// Why a PKCE parameter was refused. Display texts are safe to show the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge` in the authorization request.
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    /// A method other than S256, or none (which means `plain`).
    #[error("code_challenge_method must be S256, not {0:?}")]
    UnsupportedMethod(String),
    /// The challenge is not a base64url SHA-256 (43 characters).
    #[error("code_challenge is not a base64url-encoded SHA-256")]
    MalformedChallenge,
    /// No `code_verifier` in the token request.
    #[error("code_verifier is required")]
    MissingVerifier,
    /// The verifier is not 43–128 unreserved characters.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    MalformedVerifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// Checks the challenge of an authorization request; returns it.
pub fn check_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<String, PkceError> {
    let challenge = challenge
        .filter(|c| !c.is_empty())
        .ok_or(PkceError::MissingChallenge)?;
    match method {
        Some(S256) => {}
        Some(other) => return Err(PkceError::UnsupportedMethod(other.to_owned())),
        None => return Err(PkceError::UnsupportedMethod("plain".to_owned())),
    }
    let valid = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(challenge.to_owned())
}

/// Whether a verifier has RFC 7636 §4.1 syntax.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks a token request's verifier against the challenge the code carries.
pub fn verify(challenge: &str, verifier: Option<&str>) -> Result<(), PkceError> {
    let verifier = verifier.ok_or(PkceError::MissingVerifier)?;
    if !is_valid_verifier(verifier) {
        return Err(PkceError::MalformedVerifier);
    }
    let computed = challenge_of(verifier);
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(PkceError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
