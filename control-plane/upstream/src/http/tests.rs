//! Tests of the outbound client: the guard runs again at connection time, a validated URL
//! connects only to the addresses it was validated with, and the forwarding client verifies
//! an upstream's certificate.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::*;
use crate::url_guard::{AddressClass, GuardedUrl};

const LIMITS: HttpLimits = HttpLimits {
    connect_timeout: Duration::from_secs(2),
    request_timeout: Duration::from_secs(5),
};

#[tokio::test]
async fn a_name_is_checked_again_when_the_connection_is_made() {
    // No `validate` first: the resolver alone must refuse the loopback answer.
    let egress = Egress::new(UrlPolicy::PRODUCTION, &[], LIMITS).unwrap();
    let url = Url::parse("https://localhost:1/mcp").unwrap();
    let request = egress.request(reqwest::Method::GET, &url).unwrap();
    let failure = egress.send(request).await.unwrap_err();
    assert!(
        matches!(
            failure,
            HttpFailure::Rejected(UrlRejected::ForbiddenAddress {
                class: AddressClass::Loopback,
                ..
            })
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn an_ip_literal_is_checked_before_the_request_is_built() {
    let egress = Egress::new(UrlPolicy::DEVELOPMENT, &[], LIMITS).unwrap();
    let url = Url::parse("http://169.254.169.254/").unwrap();
    let failure = egress.request(reqwest::Method::GET, &url).unwrap_err();
    assert!(matches!(failure, HttpFailure::Rejected(_)), "{failure:?}");
}

#[tokio::test]
async fn a_validated_host_connects_only_to_its_pinned_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await;
    });
    // The name does not resolve at all: only the pin can lead to the listener.
    let pinned = GuardedUrl::pinned_for_tests(
        Url::parse(&format!("http://pinned.invalid:{port}/")).unwrap(),
        vec![SocketAddr::from(([127, 0, 0, 1], port))],
    );
    let egress = Egress::new(UrlPolicy::DEVELOPMENT, &[&pinned], LIMITS).unwrap();
    let request = egress.request(reqwest::Method::GET, pinned.url()).unwrap();
    let response = egress.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_forwarding_client_speaks_tls_and_refuses_a_certificate_it_cannot_verify() {
    let (certificate, key) = self_signed_localhost();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![rustls::pki_types::CertificateDer::from(certificate)],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The upstream's side of the handshake: what name the client asked for, and how it ended.
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut ended = Ok(());
        while tls.is_handshaking() {
            if let Err(error) = tls.complete_io(&mut tcp) {
                ended = Err(error);
                break;
            }
        }
        (tls.server_name().map(str::to_owned), ended)
    });
    let client = forwarding_client(UrlPolicy::DEVELOPMENT, Duration::from_secs(2)).unwrap();
    let error = client
        .get(format!("https://localhost:{port}/mcp"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_err();
    let cause = innermost_cause(&error);
    // The platform verifier's words for a chain to no trusted root vary with the store.
    assert!(cause.contains("invalid peer certificate"), "{cause}");
    let (server_name, ended) = server.join().unwrap();
    assert_eq!(server_name.as_deref(), Some("localhost"), "SNI sent");
    assert!(ended.is_err(), "the handshake never completed");
}

/// A self-signed certificate for `localhost` and its PKCS #8 key, both DER: trusted by no
/// platform store.
fn self_signed_localhost() -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};

    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut builder = X509::builder().unwrap();
    builder.set_version(2).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&builder.x509v3_context(None, None))
        .unwrap();
    builder.append_extension(san).unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    (
        builder.build().to_der().unwrap(),
        key.private_key_to_pkcs8().unwrap(),
    )
}

#[test]
fn logs_get_urls_without_their_query() {
    assert_eq!(
        loggable_url("https://a/mcp?api_key=s3cret#x"),
        "https://a/mcp"
    );
    assert_eq!(loggable_url("https://a/mcp"), "https://a/mcp");
}

#[test]
fn excerpts_are_short_and_printable() {
    assert_eq!(printable_excerpt(b"line\nbreak\x07", 100), "line break");
    assert_eq!(printable_excerpt("é".repeat(5).as_bytes(), 3), "ééé…");
}
