//! Builders shared by the unit tests: freshly generated certificates and the SP/IdP settings
//! they use. Test-only; nothing here is signed for real.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};

use crate::{IdentityProvider, ServiceProvider};

pub(crate) const SP_ENTITY_ID: &str = "https://gateway.example/api/auth/sso/saml2/sp/metadata";
pub(crate) const ACS_URL: &str = "https://gateway.example/api/auth/sso/saml2/callback/corp";
pub(crate) const IDP_ENTITY_ID: &str = "https://idp.example/metadata";
pub(crate) const SSO_URL: &str = "https://idp.example/sso";

/// A self-signed certificate for `key`.
pub(crate) fn certificate(key: &PKey<Private>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "test idp").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder
        .set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    builder.sign(key, MessageDigest::sha256()).unwrap();
    builder.build()
}

pub(crate) fn rsa_key(bits: u32) -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap()
}

pub(crate) fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// An RSA-2048 certificate as PEM.
pub(crate) fn rsa_certificate_pem() -> String {
    String::from_utf8(certificate(&rsa_key(2048)).to_pem().unwrap()).unwrap()
}

pub(crate) fn sp() -> ServiceProvider {
    ServiceProvider {
        entity_id: SP_ENTITY_ID.to_owned(),
        acs_url: ACS_URL.to_owned(),
    }
}

/// The fixture IdP, with one RSA-2048 certificate generated once per test binary.
pub(crate) fn idp() -> IdentityProvider {
    static CERTIFICATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IdentityProvider {
        entity_id: IDP_ENTITY_ID.to_owned(),
        sso_url: SSO_URL.to_owned(),
        certificates: vec![CERTIFICATE.get_or_init(rsa_certificate_pem).clone()],
    }
}

/// The request id the fixture responses answer.
pub(crate) const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";

/// 2026-11-30T08:00:00Z: the fixture responses' IssueInstant and NotBefore.
pub(crate) const ISSUED: &str = "2026-11-30T08:00:00Z";
/// Five minutes later: the fixture responses' NotOnOrAfter.
pub(crate) const ENDS: &str = "2026-11-30T08:05:00Z";
/// `ISSUED` in ms since the Unix epoch.
pub(crate) const ISSUED_MS: u64 = 1_796_025_600_000;

/// `ISSUED` plus `seconds` as a `SystemTime`.
pub(crate) fn at(seconds: i64) -> std::time::SystemTime {
    let ms = ISSUED_MS.checked_add_signed(seconds * 1000).unwrap();
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// A SAML Response as an IdP would send it, unsigned unless `signature` is set; each field is
/// the XML text spliced in, so tests change one part at a time.
#[derive(Debug, Clone)]
pub(crate) struct ResponseXml {
    pub declaration: String,
    pub response_attributes: String,
    pub status: String,
    /// Elements between the Response's Issuer and its Status (a `ds:Signature`, Extensions).
    pub after_issuer: String,
    pub assertion_issuer: String,
    pub assertion_issue_instant: String,
    pub assertion_signature: String,
    pub name_id: String,
    pub confirmations: String,
    pub conditions: String,
    pub attributes: String,
    /// Elements after the Assertion (a second assertion, say).
    pub after_assertion: String,
}

impl Default for ResponseXml {
    fn default() -> Self {
        ResponseXml {
            declaration: r#"<?xml version="1.0" encoding="UTF-8"?>"#.to_owned(),
            response_attributes: format!(
                r#"ID="_r1" InResponseTo="{REQUEST_ID}" Version="2.0" IssueInstant="{ISSUED}" Destination="{ACS_URL}""#
            ),
            status: r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#.to_owned(),
            after_issuer: String::new(),
            assertion_issuer: IDP_ENTITY_ID.to_owned(),
            assertion_issue_instant: ISSUED.to_owned(),
            assertion_signature: String::new(),
            name_id: r#"<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@corp.example</saml:NameID>"#.to_owned(),
            confirmations: bearer(ACS_URL, REQUEST_ID, Some(ENDS)),
            conditions: conditions(&[&[SP_ENTITY_ID]]),
            attributes: String::new(),
            after_assertion: String::new(),
        }
    }
}

impl ResponseXml {
    /// The Assertion element alone (with the namespace declarations it needs).
    pub(crate) fn assertion(&self) -> String {
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="{}"><saml:Issuer>{}</saml:Issuer>{}<saml:Subject>{}{}</saml:Subject>{}{}</saml:Assertion>"#,
            self.assertion_issue_instant,
            self.assertion_issuer,
            self.assertion_signature,
            self.name_id,
            self.confirmations,
            self.conditions,
            self.attributes,
        )
    }

    /// The whole Response.
    pub(crate) fn response(&self) -> String {
        format!(
            r#"{}<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" {}><saml:Issuer>{IDP_ENTITY_ID}</saml:Issuer>{}{}{}{}</samlp:Response>"#,
            self.declaration,
            self.response_attributes,
            self.after_issuer,
            self.status,
            self.assertion(),
            self.after_assertion,
        )
    }

    /// The whole Response, base64 as in the POSTed form.
    pub(crate) fn encoded(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.response())
    }
}

/// A bearer SubjectConfirmation.
pub(crate) fn bearer(
    recipient: &str,
    in_response_to: &str,
    not_on_or_after: Option<&str>,
) -> String {
    let end = not_on_or_after
        .map(|end| format!(r#" NotOnOrAfter="{end}""#))
        .unwrap_or_default();
    format!(
        r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData{end} Recipient="{recipient}" InResponseTo="{in_response_to}"/></saml:SubjectConfirmation>"#
    )
}

/// Conditions from `ISSUED` to `ENDS` with one AudienceRestriction per slice.
pub(crate) fn conditions(restrictions: &[&[&str]]) -> String {
    let restrictions: String = restrictions
        .iter()
        .map(|audiences| {
            let audiences: String = audiences
                .iter()
                .map(|audience| format!("<saml:Audience>{audience}</saml:Audience>"))
                .collect();
            format!("<saml:AudienceRestriction>{audiences}</saml:AudienceRestriction>")
        })
        .collect();
    format!(
        r#"<saml:Conditions NotBefore="{ISSUED}" NotOnOrAfter="{ENDS}">{restrictions}</saml:Conditions>"#
    )
}

/// A `ds:Signature` with these algorithms over `reference`, whose values are garbage: it
/// passes the shape checks and fails verification.
pub(crate) fn fake_signature(
    reference: &str,
    signature_method: &str,
    digest_method: &str,
) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{signature_method}"/><ds:Reference URI="#{reference}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{digest_method}"/><ds:DigestValue>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"##
    )
}

pub(crate) const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub(crate) const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub(crate) const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub(crate) const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
