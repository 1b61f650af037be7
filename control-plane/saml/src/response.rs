//! The end of a sign-in: verifying the SAML Response the browser POSTed to the ACS URL.
//!
//! Owns: the size limit, base64 and UTF-8 decoding, the shape checks (`precheck`), samael's
//! signature verification and reduction to the signed content (with IdP metadata built from the
//! configured certificates only, and the algorithm allow-list), our own checks of the signed
//! assertion against the caller's clock (issuer, audience, validity window, bearer
//! confirmation), and reading the identity from the signed assertion.
//!
//! Must not: trust a key from the message (`KeyInfo`), accept a response when no certificate is
//! configured, accept IdP-initiated responses, read anything from unsigned content, remember
//! assertion IDs (the caller keeps the replay cache from `assertion_id` and `valid_until_ms`),
//! or log any part of a response.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeDelta, Utc};
use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{
    Endpoint, EntityDescriptor, HTTP_REDIRECT_BINDING, IdpSsoDescriptor, KeyDescriptor,
};
use samael::schema::{Assertion, SubjectConfirmationData};
use samael::service_provider::{Error as SamaelError, ServiceProvider as SamaelSp};

use crate::config::{IdentityProvider, ServiceProvider};
use crate::error::{SamlError, short_status};
use crate::metadata::{NAME_ID_FORMAT_EMAIL, SAML2_PROTOCOL};
use crate::precheck;

/// The largest decoded SAML response accepted.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The largest `SAMLResponse` form value accepted before decoding: base64 of
/// `MAX_RESPONSE_BYTES` plus room for line breaks some IdPs insert.
pub const MAX_ENCODED_RESPONSE_BYTES: usize =
    MAX_RESPONSE_BYTES / 3 * 4 + 4 + MAX_RESPONSE_BYTES / 16;

/// How far the IdP's clock may be from ours.
pub const CLOCK_SKEW: Duration = Duration::from_secs(180);

/// How long after its IssueInstant an assertion may arrive (plus `CLOCK_SKEW`): the IdP's page
/// posts it at once.
pub const MAX_ASSERTION_AGE: Duration = Duration::from_secs(90);

/// The longest NameID accepted.
const MAX_NAME_ID_CHARS: usize = 1024;

/// The subject confirmation method of the Web Browser SSO profile.
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Attributes that carry an email address, in the order they are looked at.
pub const EMAIL_ATTRIBUTES: [&str; 4] = [
    "mail",
    "email",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];

/// Who signed in, read from the signed assertion only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The IdP's entity id (the assertion's Issuer, equal to the configured one).
    pub idp_entity_id: String,
    /// The Subject's NameID, as sent (not normalized).
    pub name_id: String,
    /// The NameID's Format, if the IdP sent one.
    pub name_id_format: Option<String>,
    /// The email: the NameID when its format is emailAddress, else the first of the attributes `mail`, `email`, `urn:oid:0.9.2342.19200300.100.1.3`, `http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress`.
    /// Only values shaped like an address count; not normalized (case kept).
    pub email: Option<String>,
    /// For the caller's replay cache: the assertion's ID and until when it is valid (ms since the Unix epoch).
    pub assertion_id: String,
    /// The earliest of the Conditions' and the bearer confirmation's `NotOnOrAfter`, plus
    /// `CLOCK_SKEW`: after this instant the assertion is refused anyway, so its ID may leave
    /// the replay cache.
    pub valid_until_ms: i64,
}

/// Verifies a base64 `SAMLResponse` (HTTP-POST binding) from `idp` for `sp`, answering the
/// AuthnRequest `expected_request_id`, at `now`.
///
/// Signatures are always required (the Response's, the Assertion's, or both) and checked with
/// the configured certificates only; exactly one Assertion, not encrypted; RSA or ECDSA with
/// SHA-256/384/512 only; no DTD; at most `MAX_RESPONSE_BYTES`. Then Destination (when present)
/// and every Recipient equal the ACS URL, InResponseTo equals `expected_request_id`, every
/// Issuer is the IdP's entity id, the Audience is the SP's entity id, the status is Success, and
/// the validity windows hold with `CLOCK_SKEW`.
///
/// Blocking and CPU-bound (libxml2 parsing and xmlsec signature checks, about 5 ms for a
/// response signed twice, in a debug build): call it from `spawn_blocking` in async code. samael also checks the times against
/// the wall clock, so `now` should be the current time.
pub fn verify_response(
    sp: &ServiceProvider,
    idp: &IdentityProvider,
    saml_response_b64: &str,
    expected_request_id: &str,
    now: SystemTime,
) -> Result<VerifiedAssertion, SamlError> {
    sp.check()?;
    idp.check()?;
    let certificates = idp.signing_certificates()?;
    if expected_request_id.is_empty() {
        return Err(SamlError::WrongInResponseTo);
    }
    if saml_response_b64.len() > MAX_ENCODED_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    let compact: Vec<u8> = saml_response_b64
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = STANDARD
        .decode(compact)
        .map_err(|_| SamlError::Malformed("the SAMLResponse is not base64".to_owned()))?;
    if decoded.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    let xml = String::from_utf8(decoded)
        .map_err(|_| SamlError::Malformed("the SAMLResponse is not UTF-8".to_owned()))?;

    let shape = precheck::inspect(&xml)?;
    precheck::check(&shape, sp, expected_request_id)?;

    let samael_sp = samael_service_provider(sp, idp, &certificates);
    // samael verifies signatures only when the IdP metadata holds a signing key, and accepts
    // unsigned responses otherwise: never call it without one.
    match samael_sp.idp_signing_certs() {
        Ok(Some(keys)) if !keys.is_empty() => {}
        _ => {
            return Err(SamlError::Config {
                field: "certificates",
                reason: "no usable signing certificate".to_owned(),
            });
        }
    }
    let assertion = samael_sp
        .parse_xml_response(&xml, Some(&[expected_request_id]))
        .map_err(from_samael)?;
    check_assertion(&assertion, sp, idp, expected_request_id, now)
}

/// samael's SP for one verification: IdP metadata from the configured certificates (use
/// `signing`) and nothing else, the algorithm allow-list, SP-initiated only.
fn samael_service_provider(
    sp: &ServiceProvider,
    idp: &IdentityProvider,
    certificates: &[Vec<u8>],
) -> SamaelSp {
    let key_descriptors = certificates
        .iter()
        .map(|der| KeyDescriptor {
            key_use: Some("signing".to_owned()),
            key_info: KeyInfo {
                id: None,
                x509_data: Some(X509Data {
                    certificates: vec![STANDARD.encode(der)],
                }),
            },
            encryption_methods: None,
        })
        .collect();
    let idp_metadata = EntityDescriptor {
        entity_id: Some(idp.entity_id.clone()),
        idp_sso_descriptors: Some(vec![IdpSsoDescriptor {
            id: None,
            valid_until: None,
            cache_duration: None,
            protocol_support_enumeration: Some(SAML2_PROTOCOL.to_owned()),
            error_url: None,
            signature: None,
            key_descriptors,
            organization: None,
            contact_people: Vec::new(),
            artifact_resolution_service: Vec::new(),
            single_logout_services: Vec::new(),
            manage_name_id_services: Vec::new(),
            name_id_formats: Vec::new(),
            want_authn_requests_signed: None,
            single_sign_on_services: vec![Endpoint {
                binding: HTTP_REDIRECT_BINDING.to_owned(),
                location: idp.sso_url.clone(),
                response_location: None,
            }],
            name_id_mapping_services: Vec::new(),
            assertion_id_request_services: Vec::new(),
            attribute_profiles: Vec::new(),
            attributes: Vec::new(),
        }]),
        ..EntityDescriptor::default()
    };
    SamaelSp {
        entity_id: Some(sp.entity_id.clone()),
        acs_url: Some(sp.acs_url.clone()),
        metadata_url: None,
        slo_url: None,
        idp_metadata,
        allow_idp_initiated: false,
        // samael checks times against the wall clock too; give it the same limits as ours
        // (its IssueInstant limit has no skew of its own).
        max_issue_delay: delta(MAX_ASSERTION_AGE) + delta(CLOCK_SKEW),
        max_clock_skew: delta(CLOCK_SKEW),
        allowed_signature_algorithms: Some(precheck::SAMAEL_ALLOWED_ALGORITHMS.to_vec()),
        ..SamaelSp::default()
    }
}

/// samael's refusals as ours. Its texts (which quote IDs and URLs from the response) are
/// dropped.
fn from_samael(error: SamaelError) -> SamlError {
    match error {
        SamaelError::FailedToValidateSignature => SamlError::SignatureInvalid,
        SamaelError::DestinationValidationError { .. } => SamlError::WrongDestination,
        SamaelError::AssertionExpired { .. }
        | SamaelError::ResponseExpired { .. }
        | SamaelError::AssertionSubjectConfirmationExpired { .. }
        | SamaelError::AssertionConditionExpired { .. } => SamlError::Expired,
        SamaelError::AssertionSubjectConfirmationExpiredBefore { .. }
        | SamaelError::AssertionConditionExpiredBefore { .. } => SamlError::NotYetValid,
        SamaelError::AssertionIssuerMismatch { .. }
        | SamaelError::ResponseIssuerMismatch { .. } => SamlError::WrongIssuer,
        SamaelError::AssertionConditionAudienceRestrictionFailed { .. } => SamlError::WrongAudience,
        SamaelError::AssertionRecipientMismatch { .. } => SamlError::WrongRecipient,
        SamaelError::AssertionInResponseToInvalid { .. }
        | SamaelError::ResponseInResponseToInvalid { .. } => SamlError::WrongInResponseTo,
        SamaelError::ResponseBadStatusCode { code } => SamlError::Status(short_status(&code)),
        SamaelError::EncryptedAssertionsNotYetSupported
        | SamaelError::MissingPrivateKeySP
        | SamaelError::MissingEncryptedKeyInfo
        | SamaelError::MissingEncryptedValueInfo
        | SamaelError::EncryptedAssertionKeyMethodUnsupported { .. }
        | SamaelError::EncryptedAssertionValueMethodUnsupported { .. }
        | SamaelError::EncryptedAssertionInvalid
        | SamaelError::FailedToDecryptAssertion => SamlError::EncryptedAssertion,
        SamaelError::AssertionBearerSubjectConfirmationMissing
        | SamaelError::AssertionSubjectConfirmationMissing => SamlError::Malformed(
            "the assertion has no usable bearer subject confirmation".to_owned(),
        ),
        _ => SamlError::Malformed("the response could not be read".to_owned()),
    }
}

/// Our checks of the signed assertion samael returned, against `now`, and the identity in it.
fn check_assertion(
    assertion: &Assertion,
    sp: &ServiceProvider,
    idp: &IdentityProvider,
    expected_request_id: &str,
    now: SystemTime,
) -> Result<VerifiedAssertion, SamlError> {
    let now = DateTime::<Utc>::from(now);
    let skew = delta(CLOCK_SKEW);

    if assertion.issuer.value.as_deref() != Some(idp.entity_id.as_str()) {
        return Err(SamlError::WrongIssuer);
    }
    if assertion.issue_instant > now + skew {
        return Err(SamlError::NotYetValid);
    }
    if assertion.issue_instant < now - delta(MAX_ASSERTION_AGE) - skew {
        return Err(SamlError::Expired);
    }

    let conditions = assertion
        .conditions
        .as_ref()
        .ok_or(SamlError::WrongAudience)?;
    if conditions
        .not_before
        .is_some_and(|not_before| now + skew < not_before)
    {
        return Err(SamlError::NotYetValid);
    }
    if conditions
        .not_on_or_after
        .is_some_and(|not_on_or_after| not_on_or_after <= now - skew)
    {
        return Err(SamlError::Expired);
    }
    // Every AudienceRestriction must name us (they are ANDed), and there must be one.
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .unwrap_or_default();
    if restrictions.is_empty()
        || !restrictions
            .iter()
            .all(|restriction| restriction.audience.contains(&sp.entity_id))
    {
        return Err(SamlError::WrongAudience);
    }

    let subject = assertion
        .subject
        .as_ref()
        .ok_or_else(|| SamlError::Malformed("the assertion has no Subject".to_owned()))?;
    let confirmation = bearer_confirmation(
        subject.subject_confirmations.as_deref().unwrap_or_default(),
        sp,
        expected_request_id,
        now,
        skew,
    )?;
    let confirmation_end = confirmation.not_on_or_after.ok_or_else(|| {
        SamlError::Malformed("the bearer confirmation has no NotOnOrAfter".to_owned())
    })?;
    let valid_until = match conditions.not_on_or_after {
        Some(conditions_end) => conditions_end.min(confirmation_end),
        None => confirmation_end,
    };
    // Times in the assertion may be anywhere in chrono's range: no `+` that could overflow.
    let valid_until = valid_until
        .checked_add_signed(skew)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);

    let name_id = subject
        .name_id
        .as_ref()
        .ok_or_else(|| SamlError::Malformed("the assertion has no NameID".to_owned()))?;
    let value = name_id.value.trim();
    if value.is_empty() || value.chars().count() > MAX_NAME_ID_CHARS {
        return Err(SamlError::Malformed(
            "the assertion's NameID is empty or too long".to_owned(),
        ));
    }
    let email = if name_id.format.as_deref() == Some(NAME_ID_FORMAT_EMAIL) {
        plausible_email(value)
    } else {
        None
    }
    .or_else(|| email_attribute(assertion));

    Ok(VerifiedAssertion {
        idp_entity_id: idp.entity_id.clone(),
        name_id: value.to_owned(),
        name_id_format: name_id.format.clone(),
        email,
        assertion_id: assertion.id.clone(),
        valid_until_ms: valid_until.timestamp_millis(),
    })
}

/// The first bearer confirmation that holds for this SP, request and time; otherwise the
/// refusal of the first one.
fn bearer_confirmation<'a>(
    confirmations: &'a [samael::schema::SubjectConfirmation],
    sp: &ServiceProvider,
    expected_request_id: &str,
    now: DateTime<Utc>,
    skew: TimeDelta,
) -> Result<&'a SubjectConfirmationData, SamlError> {
    let mut first_error = None;
    for confirmation in confirmations {
        if confirmation.method.as_deref() != Some(BEARER) {
            continue;
        }
        let Some(data) = confirmation.subject_confirmation_data.as_ref() else {
            continue;
        };
        let refusal = if data.recipient.as_deref() != Some(sp.acs_url.as_str()) {
            Some(SamlError::WrongRecipient)
        } else if data.in_response_to.as_deref() != Some(expected_request_id) {
            Some(SamlError::WrongInResponseTo)
        } else if data
            .not_before
            .is_some_and(|not_before| now + skew < not_before)
        {
            Some(SamlError::NotYetValid)
        } else {
            match data.not_on_or_after {
                None => Some(SamlError::Malformed(
                    "the bearer confirmation has no NotOnOrAfter".to_owned(),
                )),
                Some(not_on_or_after) if not_on_or_after <= now - skew => Some(SamlError::Expired),
                Some(_) => None,
            }
        };
        match refusal {
            None => return Ok(data),
            Some(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        SamlError::Malformed("the assertion has no usable bearer subject confirmation".to_owned())
    }))
}

/// The first value shaped like an address among `EMAIL_ATTRIBUTES`, in their order.
fn email_attribute(assertion: &Assertion) -> Option<String> {
    let attributes: Vec<&samael::attribute::Attribute> = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|statement| statement.attributes.iter())
        .collect();
    EMAIL_ATTRIBUTES.iter().find_map(|wanted| {
        attributes
            .iter()
            .filter(|attribute| attribute.name.as_deref() == Some(*wanted))
            .flat_map(|attribute| attribute.values.iter())
            .find_map(|value| value.value.as_deref().and_then(plausible_email))
    })
}

/// `text` (trimmed) if it looks like an email address: one `@` with something on both sides,
/// no spaces or control characters, at most 254 characters.
pub(crate) fn plausible_email(text: &str) -> Option<String> {
    let text = text.trim();
    let (local, domain) = text.rsplit_once('@')?;
    let shaped = !local.is_empty()
        && !domain.is_empty()
        && !local.contains('@')
        && text.len() <= 254
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    shaped.then(|| text.to_owned())
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or_else(|_| TimeDelta::zero())
}

#[cfg(test)]
mod tests;
