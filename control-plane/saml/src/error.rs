//! `SamlError`: every way a SAML configuration, request or response can be refused.
//!
//! Owns the error enum and the sanitizing of IdP-supplied text that goes into it. Must not carry
//! an assertion, a signature or any other part of a response beyond a sanitized status code: the
//! messages are shown to the human on the consent page (escaped by the caller) and written to
//! logs.

/// Why a SAML configuration was refused, or a sign-in could not start or finish. Display texts
/// are lowercase and safe to show a human.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    /// A setting is wrong; `field` names it (`entity_id`, `sso_url`, `certificates` of the
    /// `IdentityProvider`; `service_provider.entity_id`, `service_provider.acs_url`).
    #[error("the SAML setting {field} is not valid: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The RelayState is longer than the 80 bytes the HTTP-Redirect binding allows.
    #[error("the SAML RelayState is longer than 80 bytes")]
    RelayStateTooLong,
    /// The response is larger than `MAX_RESPONSE_BYTES`.
    #[error("the SAML response is too large")]
    TooLarge,
    /// The response is not base64, not UTF-8, not well-formed XML, not a SAML Response, or
    /// lacks a required part; the text says which (it never quotes the response).
    #[error("the SAML response is malformed: {0}")]
    Malformed(String),
    /// The response declares a document type (`<!DOCTYPE`): DTDs and entities are refused.
    #[error("the SAML response contains a document type declaration, which is not allowed")]
    DocumentType,
    /// Neither the Response nor the Assertion is signed.
    #[error("the SAML response is not signed")]
    Unsigned,
    /// A signature does not verify with the configured certificates, or the signed content does
    /// not cover the assertion.
    #[error("the SAML response's signature is not valid")]
    SignatureInvalid,
    /// A signature or digest algorithm outside the allow-list (SHA-1, for instance).
    #[error("the SAML response is signed with an algorithm that is not allowed ({0})")]
    WeakAlgorithm(String),
    /// More than one Assertion (a signature-wrapping attempt, or an IdP we do not support).
    #[error("the SAML response carries more than one assertion")]
    MultipleAssertions,
    /// An EncryptedAssertion: not supported (the SP has no decryption key).
    #[error("the SAML response carries an encrypted assertion, which is not supported")]
    EncryptedAssertion,
    /// The response carries no assertion.
    #[error("the SAML response carries no assertion")]
    NoAssertion,
    /// `InResponseTo` (Response or SubjectConfirmationData) is missing or is not the request
    /// this sign-in sent (stale, replayed into another flow, or IdP-initiated).
    #[error("the SAML response does not answer this sign-in (stale or forged)")]
    WrongInResponseTo,
    /// The Response's `Destination` is not the ACS URL.
    #[error("the SAML response is addressed to another endpoint")]
    WrongDestination,
    /// The bearer SubjectConfirmationData's `Recipient` is not the ACS URL.
    #[error("the SAML assertion is addressed to another endpoint")]
    WrongRecipient,
    /// The assertion's Audience is not the SP's entity id (or there is none).
    #[error("the SAML assertion is meant for another service provider")]
    WrongAudience,
    /// An Issuer (Response or Assertion) is not the IdP's entity id.
    #[error("the SAML response comes from another identity provider")]
    WrongIssuer,
    /// The assertion (Conditions, SubjectConfirmationData, or its IssueInstant) is too old.
    #[error("the SAML assertion has expired")]
    Expired,
    /// The assertion is not valid yet, beyond the allowed clock skew.
    #[error("the SAML assertion is not valid yet (check the clocks)")]
    NotYetValid,
    /// The IdP answered with a status other than Success; the text is the (sanitized) status
    /// code, e.g. `Responder/AuthnFailed`.
    #[error("the identity provider refused the sign-in ({0})")]
    Status(String),
    /// Writing XML failed (SP metadata, AuthnRequest): a bug, not an input problem.
    #[error("the SAML message could not be written")]
    Internal,
}

/// A status code URI as shown in `SamlError::Status`: the part after the last `:`, ASCII
/// letters, digits, `.`, `_` and `-` only, at most 64 characters.
pub(crate) fn short_status(uri: &str) -> String {
    let tail = uri.rsplit(':').next().unwrap_or(uri);
    let text: String = tail
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    if text.is_empty() {
        "unknown".to_owned()
    } else {
        text
    }
}
