//! The gateway's SP metadata document, for the admin to hand to the IdP.
//!
//! Owns: the EntityDescriptor with one SPSSODescriptor (unsigned AuthnRequests, signed
//! assertions wanted, NameID format emailAddress, one ACS with the HTTP-POST binding).
//!
//! Must not: publish keys (the SP neither signs nor decrypts) or a validity period that would
//! make IdPs drop the document later.

use samael::metadata::{EntityDescriptor, HTTP_POST_BINDING, IndexedEndpoint, SpSsoDescriptor};
use samael::traits::ToXml;

use crate::config::ServiceProvider;
use crate::error::SamlError;

/// The NameID format the SP asks for and prefers.
pub const NAME_ID_FORMAT_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// The SAML 2.0 protocol namespace, the only protocol the SP speaks.
pub(crate) const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

/// The SP metadata XML for `sp`: its entityID, `AuthnRequestsSigned="false"`,
/// `WantAssertionsSigned="true"`, NameIDFormat emailAddress and the ACS (HTTP-POST).
pub fn sp_metadata(sp: &ServiceProvider) -> Result<String, SamlError> {
    sp.check()?;
    let descriptor = EntityDescriptor {
        entity_id: Some(sp.entity_id.clone()),
        sp_sso_descriptors: Some(vec![SpSsoDescriptor {
            protocol_support_enumeration: Some(SAML2_PROTOCOL.to_owned()),
            authn_requests_signed: Some(false),
            want_assertions_signed: Some(true),
            name_id_formats: Some(vec![NAME_ID_FORMAT_EMAIL.to_owned()]),
            assertion_consumer_services: vec![IndexedEndpoint {
                binding: HTTP_POST_BINDING.to_owned(),
                location: sp.acs_url.clone(),
                index: 0,
                is_default: Some(true),
                ..IndexedEndpoint::default()
            }],
            ..SpSsoDescriptor::default()
        }]),
        ..EntityDescriptor::default()
    };
    ToXml::to_string(&descriptor).map_err(|_| SamlError::Internal)
}

#[cfg(test)]
mod tests;
