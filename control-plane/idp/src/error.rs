//! `IdpError`: every way a sign-in with an external identity provider can fail.
//!
//! Owns the error enum and the sanitizing of provider-supplied text that goes into it. Must not
//! carry a secret (client secret, code, state, verifier, token) in any variant: messages are
//! shown to the human on the consent page (escaped by the caller) and written to logs.

use portcullis_upstream::HttpFailure;

/// Why a sign-in could not start or finish. Display texts are lowercase and safe to show a
/// human; transport details stay in `source()` for the logs.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The provider configuration is wrong; `field` names the `ProviderConfig` field.
    #[error("the identity provider setting {field} is not valid: {reason}")]
    Config {
        /// The field, as named in `ProviderConfig` (e.g. `allowed_tenants`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A request to the provider failed (refused by the SSRF guard, timed out, connection
    /// failed, unexpected status, body too large).
    #[error("the identity provider's {what} could not be reached or did not answer properly")]
    Unreachable {
        /// What was fetched ("discovery document", "key set", "token endpoint", …).
        what: &'static str,
        /// The transport failure.
        #[source]
        source: HttpFailure,
    },
    /// The provider refused: an `error` in the callback or an OAuth error from the token
    /// endpoint. Both texts are sanitized (printable, length-limited) but still come from the
    /// provider: escape them when rendering.
    #[error(
        "the identity provider refused the sign-in ({error}){}",
        description_suffix(description)
    )]
    Denied {
        /// The OAuth error code, e.g. `access_denied`.
        error: String,
        /// The provider's description, if any.
        description: Option<String>,
    },
    /// The callback's `state` is missing or is not the one this sign-in sent.
    #[error("the sign-in response does not belong to this sign-in (stale or forged)")]
    StateMismatch,
    /// The sign-in was started too long ago.
    #[error("the sign-in took too long; start again")]
    Expired,
    /// An issuer (discovery document, callback `iss`, ID token `iss`) is not the expected one.
    #[error("the identity provider's issuer is {found}, expected {expected}")]
    IssuerMismatch {
        /// The issuer that was expected (for Microsoft multi-tenant, the template).
        expected: String,
        /// The issuer that was found.
        found: String,
    },
    /// The provider announced RFC 9207 `iss` in authorization responses, and the callback had
    /// none (a mix-up attack, or a proxy dropping the parameter).
    #[error("the sign-in response does not name its identity provider (expected {expected})")]
    IssuerMissing {
        /// The issuer that was expected.
        expected: String,
    },
    /// A Microsoft Entra tenant that is not in `allowed_tenants`.
    #[error("accounts of the Microsoft tenant {tenant} may not sign in here")]
    TenantNotAllowed {
        /// The tenant id (`tid`).
        tenant: String,
    },
    /// The ID token failed verification (signature, audience, expiry, nonce, claims).
    #[error("the identity provider's ID token is not valid: {0}")]
    InvalidIdToken(String),
    /// The provider broke the protocol (missing code, malformed document or response).
    #[error("the identity provider's answer is not valid: {0}")]
    Protocol(String),
}

fn description_suffix(description: &Option<String>) -> String {
    match description {
        Some(text) if !text.is_empty() => format!(": {text}"),
        _ => String::new(),
    }
}

/// Longest OAuth error code kept, in characters.
pub(crate) const MAX_ERROR_CODE_CHARS: usize = 64;
/// Longest provider error description kept, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 300;

/// An OAuth `error` code as a provider sent it, reduced to the characters RFC 6749 allows
/// (printable ASCII except `"` and `\`) and at most [`MAX_ERROR_CODE_CHARS`].
pub(crate) fn sanitize_error_code(code: &str) -> String {
    let cleaned: String = code
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(MAX_ERROR_CODE_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "unknown_error".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Provider text (an error description) with control characters replaced by spaces, trimmed,
/// and cut to `max` characters (an ellipsis marks the cut).
pub(crate) fn sanitize_text(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_owned()
}

/// A `Denied` error from a provider's raw `error` and `error_description`.
pub(crate) fn denied(error: &str, description: Option<&str>) -> IdpError {
    IdpError::Denied {
        error: sanitize_error_code(error),
        description: description
            .map(|d| sanitize_text(d, MAX_DESCRIPTION_CHARS))
            .filter(|d| !d.is_empty()),
    }
}

#[cfg(test)]
mod tests;
