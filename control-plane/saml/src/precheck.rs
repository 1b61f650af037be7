//! The shape checks a SAML response passes before any signature is verified.
//!
//! Owns: one namespace-aware pass over the decoded response with quick-xml that refuses a
//! document type declaration (DTDs and entities), a non-UTF-8 encoding declaration, a root other
//! than `samlp:Response`, more than one Assertion anywhere in the document, an Assertion that is
//! not a direct child of the Response, any EncryptedAssertion, and any SignatureMethod or
//! DigestMethod outside the allow-list; and the checks of the Response's own attributes
//! (Status, Destination, InResponseTo).
//!
//! Must not: read identity from the document (only the signed element samael returns is read),
//! or let anything it accepts stand in for signature verification: what it reads from the
//! Response envelope may be unsigned, so it can only ever refuse.
//!
//! Why check algorithms here when samael's `allowed_signature_algorithms` also restricts both
//! the SignatureMethod and every Reference's DigestMethod (read in samael 0.0.22,
//! `crypto/xmlsec/mod.rs`, `signature_uses_allowed_algorithm`): samael reports a refused
//! algorithm as a bad signature, and the admin needs to be told "SHA-1" to fix the IdP. Both
//! checks use the same lists.

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use samael::crypto::AllowedSignatureAlgorithm;

use crate::config::ServiceProvider;
use crate::error::{SamlError, short_status};
use crate::metadata::SAML2_PROTOCOL;

const SAML2_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const XMLDSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// The allow-list as samael takes it (signature methods, and the digests it maps them to).
pub(crate) const SAMAEL_ALLOWED_ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Signature algorithms accepted: RSA and ECDSA with SHA-256, -384 or -512.
pub(crate) const ALLOWED_SIGNATURE_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// Digest algorithms accepted for signed references: SHA-256, -384 and -512 (the URIs samael's
/// allow-list maps the signature algorithms above to).
pub(crate) const ALLOWED_DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// What the pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The Response's `Destination`, if any.
    pub destination: Option<String>,
    /// The Response's `InResponseTo`, if any.
    pub in_response_to: Option<String>,
    /// The Response's top-level StatusCode `Value`, if a Status was found.
    pub status: Option<String>,
    /// The second-level StatusCode `Value`, if any (e.g. `AuthnFailed`).
    pub sub_status: Option<String>,
    /// SAML 2.0 Assertion elements anywhere.
    pub assertions: usize,
    /// Of those, the direct children of the Response.
    pub top_level_assertions: usize,
    /// EncryptedAssertion elements anywhere.
    pub encrypted_assertions: usize,
    /// `ds:Signature` elements anywhere.
    pub signatures: usize,
    /// The first SignatureMethod or DigestMethod algorithm outside the allow-lists.
    pub refused_algorithm: Option<String>,
}

/// One pass over `xml`; fails only on what is malformed or forbidden whatever else holds.
pub(crate) fn inspect(xml: &str) -> Result<Shape, SamlError> {
    let mut reader = NsReader::from_str(xml);
    let mut shape = Shape::default();
    // Depth of the element being opened: 1 for the root.
    let mut depth = 0usize;
    let mut root_closed = false;
    // The depth of the Response's Status, while inside it.
    let mut status_depth: Option<usize> = None;
    let mut statuses = 0usize;
    loop {
        let (namespace, event) = reader
            .read_resolved_event()
            .map_err(|e| SamlError::Malformed(format!("not well-formed XML ({e})")))?;
        let namespace = namespace_of(&namespace);
        match event {
            Event::DocType(_) => return Err(SamlError::DocumentType),
            Event::Decl(decl) => {
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|_| malformed("bad XML declaration"))?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8") {
                        return Err(malformed(
                            "the XML declaration names an encoding other than UTF-8",
                        ));
                    }
                }
            }
            Event::Start(ref element) | Event::Empty(ref element) => {
                if root_closed {
                    return Err(malformed("content after the root element"));
                }
                let empty = matches!(event, Event::Empty(_));
                depth += 1;
                let name = element.local_name();
                let name = name.as_ref();
                if depth == 1 {
                    if namespace != Some(SAML2_PROTOCOL.as_bytes()) || name != b"Response" {
                        return Err(malformed("the root element is not a SAML 2.0 Response"));
                    }
                    shape.destination = attribute(element, b"Destination")?;
                    shape.in_response_to = attribute(element, b"InResponseTo")?;
                } else if namespace == Some(SAML2_PROTOCOL.as_bytes()) {
                    if depth == 2 && name == b"Status" {
                        statuses += 1;
                        if statuses > 1 {
                            return Err(malformed("more than one Status"));
                        }
                        status_depth = Some(depth);
                    } else if name == b"StatusCode" && status_depth.is_some() {
                        let value = attribute(element, b"Value")?;
                        if depth == 3 && shape.status.is_none() {
                            shape.status = Some(value.unwrap_or_default());
                        } else if depth == 4 && shape.sub_status.is_none() {
                            shape.sub_status = value;
                        }
                    }
                } else if namespace == Some(SAML2_ASSERTION.as_bytes()) {
                    if name == b"Assertion" {
                        shape.assertions += 1;
                        if depth == 2 {
                            shape.top_level_assertions += 1;
                        }
                    } else if name == b"EncryptedAssertion" {
                        shape.encrypted_assertions += 1;
                    }
                } else if namespace == Some(XMLDSIG.as_bytes()) {
                    let allowed: &[&str] = match name {
                        b"Signature" => {
                            shape.signatures += 1;
                            &[]
                        }
                        b"SignatureMethod" => &ALLOWED_SIGNATURE_METHODS,
                        b"DigestMethod" => &ALLOWED_DIGEST_METHODS,
                        _ => &[],
                    };
                    if !allowed.is_empty() && shape.refused_algorithm.is_none() {
                        let algorithm = attribute(element, b"Algorithm")?.unwrap_or_default();
                        if !allowed.contains(&algorithm.as_str()) {
                            shape.refused_algorithm = Some(printable(&algorithm));
                        }
                    }
                }
                if empty {
                    close(&mut depth, &mut status_depth, &mut root_closed);
                }
            }
            Event::End(_) => close(&mut depth, &mut status_depth, &mut root_closed),
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_closed {
        return Err(malformed("the document has no root element"));
    }
    Ok(shape)
}

/// The checks on what `inspect` found, in the order that gives the most useful error: the
/// IdP's own refusal first (error responses are often unsigned), then the structure, then the
/// envelope's addressing, then algorithms, then whether anything is signed at all.
pub(crate) fn check(
    shape: &Shape,
    sp: &ServiceProvider,
    expected_request_id: &str,
) -> Result<(), SamlError> {
    match shape.status.as_deref() {
        Some(STATUS_SUCCESS) => {}
        Some(code) => {
            let mut text = short_status(code);
            if let Some(sub) = &shape.sub_status {
                text = format!("{text}/{}", short_status(sub));
            }
            return Err(SamlError::Status(text));
        }
        None => return Err(malformed("the Response has no Status")),
    }
    if shape.encrypted_assertions > 0 {
        return Err(SamlError::EncryptedAssertion);
    }
    match (shape.assertions, shape.top_level_assertions) {
        (0, _) => return Err(SamlError::NoAssertion),
        (1, 1) => {}
        (1, _) => {
            return Err(malformed(
                "the assertion is not a direct child of the Response",
            ));
        }
        _ => return Err(SamlError::MultipleAssertions),
    }
    if shape
        .destination
        .as_deref()
        .is_some_and(|destination| destination != sp.acs_url)
    {
        return Err(SamlError::WrongDestination);
    }
    if shape
        .in_response_to
        .as_deref()
        .is_some_and(|id| id != expected_request_id)
    {
        return Err(SamlError::WrongInResponseTo);
    }
    if let Some(algorithm) = &shape.refused_algorithm {
        return Err(SamlError::WeakAlgorithm(algorithm.clone()));
    }
    if shape.signatures == 0 {
        return Err(SamlError::Unsigned);
    }
    Ok(())
}

fn close(depth: &mut usize, status_depth: &mut Option<usize>, root_closed: &mut bool) {
    if *status_depth == Some(*depth) {
        *status_depth = None;
    }
    *depth = depth.saturating_sub(1);
    if *depth == 0 {
        *root_closed = true;
    }
}

fn namespace_of<'a>(resolved: &'a ResolveResult<'_>) -> Option<&'a [u8]> {
    match resolved {
        ResolveResult::Bound(Namespace(uri)) => Some(uri),
        _ => None,
    }
}

/// The value of the unprefixed attribute `name`, entities resolved.
fn attribute(element: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, SamlError> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|_| malformed("bad attribute"))?;
        if attribute.key.as_ref() == name {
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|_| malformed("bad attribute value"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// An algorithm URI fit for an error message: ASCII letters, digits and `:/#.-_` only, at most
/// 100 characters.
fn printable(text: &str) -> String {
    let text: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '#' | '.' | '-' | '_'))
        .take(100)
        .collect();
    if text.is_empty() {
        "none".to_owned()
    } else {
        text
    }
}

fn malformed(reason: &str) -> SamlError {
    SamlError::Malformed(reason.to_owned())
}

#[cfg(test)]
mod tests;
