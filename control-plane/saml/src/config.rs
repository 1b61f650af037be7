//! The two parties of a SAML sign-in as the gateway configures them: the gateway as service
//! provider (`ServiceProvider`) and the host's identity provider (`IdentityProvider`), and the
//! checks that run before either is used.
//!
//! Owns: entity id rules, URL rules (absolute http(s), no credentials, no fragment) and the
//! parsing of the IdP's signing certificates (PEM or bare base64 DER, RSA of 2048 bits or more,
//! or EC) into DER.
//!
//! Must not: fetch IdP metadata, trust a certificate from anywhere but this configuration, or
//! check certificate validity dates (IdPs commonly sign with long-expired self-signed
//! certificates; the key is what is pinned).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::pkey::Id;
use openssl::x509::X509;
use url::Url;

use crate::error::SamlError;

/// The longest entity id SAML allows (saml-core §8.3.6).
pub const MAX_ENTITY_ID_CHARS: usize = 1024;

/// How many signing certificates an IdP may list (rotation needs two or three).
pub const MAX_CERTIFICATES: usize = 8;

/// The smallest RSA key accepted for signatures.
const MIN_RSA_BITS: u32 = 2048;

/// The gateway as SAML service provider for one IdP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceProvider {
    /// The SP's entity id, sent as the AuthnRequest's Issuer and required as the assertion's
    /// Audience (by convention, the URL of the SP metadata).
    pub entity_id: String,
    /// The Assertion Consumer Service URL (HTTP-POST binding): the response's `Destination` and
    /// the bearer confirmation's `Recipient` must be exactly this.
    pub acs_url: String,
}

impl ServiceProvider {
    /// Checks the entity id and the ACS URL.
    pub fn check(&self) -> Result<(), SamlError> {
        check_entity_id("service_provider.entity_id", &self.entity_id)?;
        check_url("service_provider.acs_url", &self.acs_url)?;
        Ok(())
    }
}

/// A host's SAML identity provider, as the admin configured it (usually copied from the IdP's
/// metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// The IdP's entity id: every Issuer in its responses must be exactly this.
    pub entity_id: String,
    /// SSO URL, HTTP-Redirect binding.
    pub sso_url: String,
    /// X.509 signing certificates (PEM or bare base64 DER), at least one; several for rotation.
    pub certificates: Vec<String>,
}

impl IdentityProvider {
    /// Checks the entity id, the SSO URL and every certificate (the error names the first bad
    /// one by its index, counting from 0). At least one certificate is required: without one,
    /// samael would accept unsigned responses.
    pub fn check(&self) -> Result<(), SamlError> {
        check_entity_id("entity_id", &self.entity_id)?;
        check_url("sso_url", &self.sso_url)?;
        self.signing_certificates().map(|_| ())
    }

    /// The certificates as DER, each checked.
    pub(crate) fn signing_certificates(&self) -> Result<Vec<Vec<u8>>, SamlError> {
        if self.certificates.is_empty() {
            return Err(config(
                "certificates",
                "at least one signing certificate is required",
            ));
        }
        if self.certificates.len() > MAX_CERTIFICATES {
            return Err(config(
                "certificates",
                format!("at most {MAX_CERTIFICATES} certificates are allowed"),
            ));
        }
        self.certificates
            .iter()
            .enumerate()
            .map(|(index, text)| {
                certificate_der(text).map_err(|reason| {
                    config("certificates", format!("certificate {index} {reason}"))
                })
            })
            .collect()
    }
}

fn config(field: &'static str, reason: impl Into<String>) -> SamlError {
    SamlError::Config {
        field,
        reason: reason.into(),
    }
}

fn check_entity_id(field: &'static str, entity_id: &str) -> Result<(), SamlError> {
    if entity_id.is_empty() {
        return Err(config(field, "it is empty"));
    }
    if entity_id.chars().count() > MAX_ENTITY_ID_CHARS {
        return Err(config(
            field,
            format!("it is longer than {MAX_ENTITY_ID_CHARS} characters"),
        ));
    }
    if entity_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(config(field, "it contains spaces or control characters"));
    }
    Ok(())
}

fn check_url(field: &'static str, text: &str) -> Result<(), SamlError> {
    let url = Url::parse(text).map_err(|e| config(field, format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config(field, "the scheme must be https or http"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config(field, "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config(field, "the URL must not contain credentials"));
    }
    if url.fragment().is_some() {
        return Err(config(field, "the URL must not contain a fragment (#…)"));
    }
    Ok(())
}

/// One certificate, PEM (exactly one `CERTIFICATE` block) or bare base64 DER, as DER. The error
/// completes "certificate <index> …".
fn certificate_der(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let certificate = if text.starts_with("-----BEGIN") {
        let mut stack = X509::stack_from_pem(text.as_bytes())
            .map_err(|_| "is not a valid PEM certificate".to_owned())?;
        if stack.len() != 1 {
            return Err(format!(
                "must hold exactly one PEM certificate, not {}",
                stack.len()
            ));
        }
        stack.pop().ok_or("holds no PEM certificate")?
    } else {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| "is neither PEM nor base64 DER".to_owned())?;
        X509::from_der(&der).map_err(|_| "is not a valid X.509 certificate (DER)".to_owned())?
    };
    let key = certificate
        .public_key()
        .map_err(|_| "has a public key that cannot be read".to_owned())?;
    match key.id() {
        Id::RSA if key.bits() >= MIN_RSA_BITS => {}
        Id::RSA => {
            return Err(format!(
                "has a {}-bit RSA key; at least {MIN_RSA_BITS} bits are required",
                key.bits()
            ));
        }
        Id::EC => {}
        _ => return Err("has a key that is neither RSA nor EC".to_owned()),
    }
    certificate
        .to_der()
        .map_err(|_| "cannot be re-encoded as DER".to_owned())
}

#[cfg(test)]
mod tests;
