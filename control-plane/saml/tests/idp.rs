//! SP-initiated sign-ins against a real SAML IdP on loopback: test-fixtures' `SamlIdp`
//! (`tests/peers/identity/saml_idp.py`, pysaml2 signing with xmlsec1). Each test starts its own
//! IdP trusting our SP metadata, builds an AuthnRequest with `authn_request`, GETs its redirect
//! URL like a browser, reads the auto-POST form the IdP answers with, and runs
//! `verify_response` on its `SAMLResponse`. The ACS URL is never contacted.
//!
//! Needs `PORTCULLIS_PEER_SAML_PYTHON`, `PORTCULLIS_PEER_SAML_IDP` and `PORTCULLIS_XMLSEC1`
//! (`ensure_saml_tools` in scripts/lib/tools.sh exports them); a test fails with a clear message
//! when one is unset. Must not reach anything but loopback.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_saml::{
    IdentityProvider, NAME_ID_FORMAT_EMAIL, SamlError, ServiceProvider, VerifiedAssertion,
    authn_request, sp_metadata, verify_response,
};
use test_fixtures::SamlIdp;

const SP_ENTITY_ID: &str = "http://127.0.0.1:1/api/auth/sso/saml2/sp/metadata";
/// Never contacted: the walk stops at the IdP's form.
const ACS_URL: &str = "http://127.0.0.1:1/api/auth/sso/saml2/callback/sso-test";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// The auto-POST form the IdP answered with.
#[derive(Debug)]
struct Form {
    action: String,
    saml_response: String,
    relay_state: String,
}

/// One IdP and our SP configured for it.
struct Flow {
    idp: SamlIdp,
    sp: ServiceProvider,
    config: IdentityProvider,
    http: reqwest::Client,
}

impl Flow {
    async fn start() -> Flow {
        let sp = ServiceProvider {
            entity_id: SP_ENTITY_ID.to_owned(),
            acs_url: ACS_URL.to_owned(),
        };
        let metadata = sp_metadata(&sp).expect("SP metadata");
        let idp = SamlIdp::start(&metadata)
            .await
            .unwrap_or_else(|error| panic!("{error:#}"));
        let config = IdentityProvider {
            entity_id: idp.entity_id.clone(),
            sso_url: idp.sso_url.clone(),
            certificates: vec![idp.certificate.clone()],
        };
        config.check().expect("the peer's settings pass our checks");
        // reqwest is built without a default crypto provider; plain HTTP still needs one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Flow {
            idp,
            sp,
            config,
            http,
        }
    }

    /// Starts a sign-in and follows it to the IdP's form: the request id and the form.
    async fn sign_in(&self, relay_state: &str) -> (String, Form) {
        let request = authn_request(&self.sp, &self.config, relay_state, SystemTime::now())
            .expect("AuthnRequest");
        let response = self
            .http
            .get(&request.redirect_url)
            .send()
            .await
            .expect("GET the SSO URL");
        let status = response.status();
        let page = response.text().await.expect("IdP page");
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "{page}\n--- IdP log ---\n{}",
            std::fs::read_to_string(self.idp.log()).unwrap_or_default()
        );
        (request.id, parse_form(&page))
    }

    /// The IdP's next response (in `mode`) for a fresh sign-in, verified.
    async fn verify_next(&self, mode: &str) -> Result<VerifiedAssertion, SamlError> {
        self.idp.mode(mode).await.expect("set the IdP's mode");
        let (request_id, form) = self.sign_in("state-1").await;
        self.verify(&form.saml_response, &request_id)
    }

    fn verify(
        &self,
        saml_response: &str,
        request_id: &str,
    ) -> Result<VerifiedAssertion, SamlError> {
        verify_response(
            &self.sp,
            &self.config,
            saml_response,
            request_id,
            SystemTime::now(),
        )
    }
}

/// The form's action and its `SAMLResponse` and `RelayState` fields.
fn parse_form(page: &str) -> Form {
    let attribute_after = |marker: &str, name: &str| -> String {
        let start = page
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in {page}"));
        let rest = &page[start..];
        let key = format!("{name}=\"");
        let from = rest.find(&key).expect("attribute") + key.len();
        let to = rest[from..].find('"').expect("closing quote") + from;
        unescape(&rest[from..to])
    };
    Form {
        action: attribute_after("<form", "action"),
        saml_response: attribute_after("name=\"SAMLResponse\"", "value"),
        relay_state: attribute_after("name=\"RelayState\"", "value"),
    }
}

/// Undoes Python's `html.escape`.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn decode(saml_response: &str) -> String {
    String::from_utf8(STANDARD.decode(saml_response).expect("base64")).expect("UTF-8")
}

fn encode(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// `xml` without its `ds:Signature` elements (whatever their prefix).
fn strip_signatures(xml: &str) -> String {
    let mut xml = xml.to_owned();
    while let Some(start) = find_element(&xml, "Signature") {
        let prefix = &xml[start + 1..xml[start..].find("Signature").expect("name") + start];
        let close = format!("</{prefix}Signature>");
        let end = xml[start..].find(&close).expect("closing tag") + start + close.len();
        xml.replace_range(start..end, "");
    }
    xml
}

/// Where the first element whose local name is `name` starts.
fn find_element(xml: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = xml[from..].find(&format!("{name} ")) {
        let at = from + offset;
        let open = xml[..at].rfind('<')?;
        let between = &xml[open + 1..at];
        if between.is_empty() || (between.ends_with(':') && !between.contains(['<', '>', ' ', '/']))
        {
            return Some(open);
        }
        from = at + name.len();
    }
    None
}

#[tokio::test]
async fn a_normal_response_signs_in_the_user_the_idp_names() {
    let flow = Flow::start().await;

    let (request_id, form) = flow.sign_in("opaque-key-1").await;
    assert_eq!(form.action, ACS_URL);
    assert_eq!(form.relay_state, "opaque-key-1");
    let before = SystemTime::now();
    let verified = flow
        .verify(&form.saml_response, &request_id)
        .expect("accepted");
    assert_eq!(verified.idp_entity_id, flow.idp.entity_id);
    assert_eq!(verified.name_id, "alice@corp.example");
    assert_eq!(
        verified.name_id_format.as_deref(),
        Some(NAME_ID_FORMAT_EMAIL)
    );
    assert_eq!(verified.email.as_deref(), Some("alice@corp.example"));
    assert!(!verified.assertion_id.is_empty());
    let now_ms = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    // pysaml2's lifetime is 5 minutes; plus our 3 minutes of skew.
    assert!(
        verified.valid_until_ms > now_ms + 4 * 60_000
            && verified.valid_until_ms <= now_ms + 9 * 60_000,
        "{verified:?}"
    );

    // Someone else next: the identity is whoever the IdP signed for.
    flow.idp
        .login_as("bob+saml@corp.example")
        .await
        .expect("login-as");
    let bob = flow.verify_next("normal").await.expect("accepted");
    assert_eq!(bob.email.as_deref(), Some("bob+saml@corp.example"));
    assert_ne!(bob.assertion_id, verified.assertion_id);

    // The library keeps no replay cache: the same response verifies again (the caller refuses
    // a seen assertion_id until valid_until_ms).
    assert_eq!(flow.verify(&form.saml_response, &request_id), Ok(verified));
}

#[tokio::test]
async fn a_response_to_another_request_or_outside_its_window_is_refused() {
    let flow = Flow::start().await;
    let (request_id, form) = flow.sign_in("").await;
    let (other_request, _) = flow.sign_in("").await;
    assert_eq!(
        flow.verify(&form.saml_response, &other_request),
        Err(SamlError::WrongInResponseTo)
    );
    let at = |now: SystemTime| {
        verify_response(
            &flow.sp,
            &flow.config,
            &form.saml_response,
            &request_id,
            now,
        )
    };
    assert_eq!(
        at(SystemTime::now() + Duration::from_secs(15 * 60)),
        Err(SamlError::Expired)
    );
    assert_eq!(
        at(SystemTime::now() - Duration::from_secs(10 * 60)),
        Err(SamlError::NotYetValid)
    );
    assert!(at(SystemTime::now()).is_ok());

    // Verified for another ACS than the one the request named: the Destination is wrong.
    let elsewhere = ServiceProvider {
        acs_url: "http://127.0.0.1:1/api/auth/sso/saml2/callback/other".to_owned(),
        ..flow.sp.clone()
    };
    assert_eq!(
        verify_response(
            &elsewhere,
            &flow.config,
            &form.saml_response,
            &request_id,
            SystemTime::now()
        ),
        Err(SamlError::WrongDestination)
    );
    // Verified as if from another IdP (same key): the Issuer is wrong.
    let impostor = IdentityProvider {
        entity_id: "http://127.0.0.1:1/another-idp".to_owned(),
        ..flow.config.clone()
    };
    assert_eq!(
        verify_response(
            &flow.sp,
            &impostor,
            &form.saml_response,
            &request_id,
            SystemTime::now()
        ),
        Err(SamlError::WrongIssuer)
    );
}

#[tokio::test]
async fn a_signature_on_the_assertion_or_on_the_response_alone_is_enough() {
    let flow = Flow::start().await;
    for mode in ["assertion-only", "response-only"] {
        let verified = flow.verify_next(mode).await;
        assert_eq!(
            verified.map(|v| v.email),
            Ok(Some("alice@corp.example".to_owned())),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn unsigned_weak_and_foreign_signatures_are_refused() {
    let flow = Flow::start().await;
    assert_eq!(flow.verify_next("unsigned").await, Err(SamlError::Unsigned));
    assert_eq!(
        flow.verify_next("sha1").await,
        Err(SamlError::WeakAlgorithm(RSA_SHA1.to_owned()))
    );
    assert_eq!(
        flow.verify_next("sha1-digest").await,
        Err(SamlError::WeakAlgorithm(SHA1.to_owned()))
    );
    assert_eq!(
        flow.verify_next("other-key").await,
        Err(SamlError::SignatureInvalid)
    );

    // A normal response: signed by a key we do not know, it is refused; listed next to the
    // one we know (rotation), it is accepted.
    flow.idp.mode("normal").await.expect("mode");
    let (request_id, form) = flow.sign_in("").await;
    let other_pem = {
        let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("key"))
            .expect("pkey");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "someone else").expect("cn");
        let name = name.build();
        let mut builder = openssl::x509::X509::builder().expect("builder");
        builder.set_subject_name(&name).expect("subject");
        builder.set_issuer_name(&name).expect("issuer");
        builder.set_pubkey(&key).expect("pubkey");
        builder
            .set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("time"))
            .expect("not before");
        builder
            .set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).expect("time"))
            .expect("not after");
        builder
            .sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        String::from_utf8(builder.build().to_pem().expect("pem")).expect("utf-8")
    };
    let stranger = IdentityProvider {
        certificates: vec![other_pem.clone()],
        ..flow.config.clone()
    };
    assert_eq!(
        verify_response(
            &flow.sp,
            &stranger,
            &form.saml_response,
            &request_id,
            SystemTime::now()
        ),
        Err(SamlError::SignatureInvalid)
    );
    let rotating = IdentityProvider {
        certificates: vec![other_pem, flow.idp.certificate.clone()],
        ..flow.config.clone()
    };
    assert!(
        verify_response(
            &flow.sp,
            &rotating,
            &form.saml_response,
            &request_id,
            SystemTime::now()
        )
        .is_ok()
    );

    // Regression for samael accepting unsigned responses when it has no key: the normal
    // response with its signatures stripped and the NameID changed is refused.
    let xml = decode(&form.saml_response);
    assert_eq!(xml.matches("alice@corp.example").count(), 2, "{xml}");
    let forged = strip_signatures(&xml).replace("alice@corp.example", "mallory@evil.example");
    assert!(!forged.contains("Signature"), "{forged}");
    assert_eq!(
        flow.verify(&encode(&forged), &request_id),
        Err(SamlError::Unsigned)
    );
    // And edited under the signatures, it is refused as tampered.
    let tampered = xml.replace("alice@corp.example", "mallory@evil.example");
    assert_eq!(
        flow.verify(&encode(&tampered), &request_id),
        Err(SamlError::SignatureInvalid)
    );
}

#[tokio::test]
async fn signature_wrapping_attempts_are_refused() {
    let flow = Flow::start().await;
    for mode in [
        "wrapped",
        "wrapped-after",
        "wrapped-extensions",
        "wrapped-object",
    ] {
        let result = flow.verify_next(mode).await;
        assert_eq!(result, Err(SamlError::MultipleAssertions), "{mode}");
    }
}

#[tokio::test]
async fn a_response_for_another_audience_or_an_idp_refusal_is_refused() {
    let flow = Flow::start().await;
    assert_eq!(
        flow.verify_next("wrong-audience").await,
        Err(SamlError::WrongAudience)
    );
    assert_eq!(
        flow.verify_next("status-error").await,
        Err(SamlError::Status("Responder/AuthnFailed".to_owned()))
    );
}
