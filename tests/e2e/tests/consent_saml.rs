//! SAML 2.0 single sign-on on the consent pages of `portcullis dev`, SP-initiated, against a
//! real IdP: PyPI `pysaml2` with Debian's `xmlsec1` (`tests/peers/identity/saml_idp.py`),
//! given the SP metadata the admin API serves.
//!
//! The browser here keeps every site's cookies and follows redirects by hand; it submits the
//! IdP's auto-post form to the gateway's assertion consumer service, and the ACS page's form to
//! the finish step, as a browser would. Around the happy path: responses that are unsigned,
//! SHA-1 signed, signed by another key, wrapped (XSW), for another audience, or replayed sign
//! nobody in; a bad IdP certificate is refused by the admin API, naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure

use portcullis_e2e::consent_client::{
    Answer, CookieBrowser, authorization, form, input_value, register,
};
use portcullis_e2e::dev_admin::DevGateway;
use serde_json::json;
use test_fixtures::SamlIdp;

const REDIRECT: &str = "http://127.0.0.1:43120/callback";
const ALICE: &str = "alice@corp.example";

struct Setup {
    gateway: DevGateway,
    idp: SamlIdp,
}

async fn setup() -> Setup {
    let gateway = DevGateway::start(&[]).await;
    // The SP metadata, as the admin hands it to the IdP's administrator.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/hosts/{}/saml/metadata",
            gateway.base, gateway.host
        ))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .expect("metadata");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let metadata = response.text().await.expect("xml");
    let acs = format!(
        "{}/api/auth/sso/saml2/callback/sso-{}",
        gateway.base, gateway.host
    );
    assert!(metadata.contains(&acs), "{metadata}");
    assert!(
        metadata.contains(&format!("{}/api/auth/sso/saml2/sp/metadata", gateway.base)),
        "{metadata}"
    );
    let idp = SamlIdp::start(&metadata).await.expect("pysaml2 IdP");
    let (status, host) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": { "providers": [{
                "id": "corp-saml", "kind": "saml", "display_name": "Corp SAML",
                "saml_sso_url": idp.sso_url, "saml_entity_id": idp.entity_id,
                "saml_certificates": [idp.certificate],
            }] } } })),
        )
        .await;
    assert_eq!(status, 200, "{host}");
    Setup { gateway, idp }
}

/// Starts a SAML sign-in in a new browser and walks it to the gateway's finish step: the
/// answer of that step (not followed), the browser, and the form it posted.
async fn through_the_idp(setup: &Setup) -> (CookieBrowser, Answer, Vec<(String, String)>, String) {
    let client = register(&setup.gateway, &[REDIRECT]).await;
    let request = authorization(&setup.gateway, &client, &setup.gateway.mcp_url(), &[]);
    let browser = CookieBrowser::new(&setup.gateway.base, REDIRECT);
    let page = browser.open(&request.url).await;
    assert!(
        page.body.contains("Continue with Corp SAML"),
        "{}",
        page.body
    );
    let started = browser
        .post(
            "/consent/sso",
            &[
                ("flow", &page.hidden("flow")),
                ("csrf", &page.hidden("csrf")),
                ("provider", "corp-saml"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let to_idp = started.location().expect("location").to_owned();
    assert!(to_idp.starts_with(&setup.idp.sso_url), "{to_idp}");
    assert!(to_idp.contains("SAMLRequest="), "{to_idp}");
    // The IdP answers with a form that posts to the ACS.
    let idp_page = browser.get(&to_idp).await;
    assert_eq!(idp_page.status, 200, "{}", idp_page.body);
    let response = input_value(&idp_page.body, "SAMLResponse").expect("SAMLResponse");
    let relay = input_value(&idp_page.body, "RelayState").unwrap_or_default();
    let acs = format!("/api/auth/sso/saml2/callback/sso-{}", setup.gateway.host);
    assert!(
        idp_page
            .body
            .contains(&format!("{}{acs}", setup.gateway.base)),
        "{}",
        idp_page.body
    );
    let acs_page = browser
        .post(&acs, &[("SAMLResponse", &response), ("RelayState", &relay)])
        .await;
    assert_eq!(acs_page.status, 200, "{}", acs_page.body);
    assert!(
        acs_page
            .body
            .contains("action=\"/consent/sso/saml/finish\""),
        "{}",
        acs_page.body
    );
    let fields = vec![
        (
            "SAMLResponse".to_owned(),
            input_value(&acs_page.body, "SAMLResponse").expect("re-posted"),
        ),
        (
            "RelayState".to_owned(),
            input_value(&acs_page.body, "RelayState").expect("relay"),
        ),
    ];
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cookie = browser.cookie_header().expect("cookies");
    let finished = browser.post("/consent/sso/saml/finish", &pairs).await;
    (browser, finished, fields, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_response_signs_in_once_and_tampered_ones_never() {
    let setup = setup().await;
    setup.gateway.add_human(ALICE).await;

    // A good response: alice signs in (her pre-authorized human, no duplicate).
    let (browser, finished, fields, cookie) = through_the_idp(&setup).await;
    assert_eq!(finished.status, 303, "{}", finished.body);
    let page = browser
        .follow(
            finished,
            format!("{}/consent/sso/saml/finish", setup.gateway.base),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(ALICE), "{}", page.body);
    // The same request again, cookies and all (a thief of it): the assertion is spent.
    let replayed = reqwest::Client::new()
        .post(format!("{}/consent/sso/saml/finish", setup.gateway.base))
        .header("origin", &setup.gateway.base)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(
            &fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        ))
        .send()
        .await
        .expect("replay");
    assert_eq!(replayed.status().as_u16(), 403);
    let body = replayed.text().await.expect("body");
    assert!(body.contains("already used"), "{body}");

    for (mode, expected) in [
        ("unsigned", "is not signed"),
        ("sha1", "algorithm that is not allowed"),
        ("other-key", "signature is not valid"),
        ("wrapped", "more than one assertion"),
        ("wrong-audience", "another service provider"),
    ] {
        setup.idp.mode(mode).await.expect("mode");
        let (_, finished, _, _) = through_the_idp(&setup).await;
        assert_eq!(finished.status, 403, "{mode}: {}", finished.body);
        let text = finished.body.to_lowercase();
        assert!(
            text.contains(&expected.to_lowercase()),
            "{mode}: expected {expected:?} in {}",
            finished.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_certificate_is_checked_when_the_admin_sets_it() {
    let gateway = DevGateway::start(&[]).await;
    let (status, error) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": { "providers": [{
                "id": "corp-saml", "kind": "saml",
                "saml_sso_url": "http://127.0.0.1:9/sso", "saml_entity_id": "urn:idp",
                "saml_certificates": ["-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----"],
            }] } } })),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"]["details"]["field"], "settings.auth.providers[0].saml_certificates",
        "{error}"
    );
    // Without any certificate: refused too (a response would be accepted unsigned).
    let (status, error) = gateway
        .api(
            "PATCH",
            &format!("/api/v1/hosts/{}", gateway.host),
            Some(json!({ "settings": { "auth": { "providers": [{
                "id": "corp-saml", "kind": "saml",
                "saml_sso_url": "http://127.0.0.1:9/sso", "saml_entity_id": "urn:idp",
            }] } } })),
        )
        .await;
    assert_eq!(status, 400, "{error}");
}
