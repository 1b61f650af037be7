//! Tests of the forwarding client against real sockets: what the guard refuses and when, the
//! connect timeout over the TLS handshake, certificate verification, and pooled reuse.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::url_guard::AddressClass;

fn get(uri: &str) -> Request<ForwardBody> {
    Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(ForwardBody::default())
        .unwrap()
}

/// Why a client under `policy` refused to send a GET to `uri` (any other outcome fails).
async fn refusal(policy: UrlPolicy, uri: &str) -> UrlRejected {
    let client = ForwardingClient::new(policy, Duration::from_secs(2)).unwrap();
    match client.send(get(uri)).await {
        Err(ForwardFailure::Rejected(rejected)) => rejected,
        other => panic!("{uri} was not refused by the guard: {other:?}"),
    }
}

#[tokio::test]
async fn a_name_resolving_to_a_forbidden_address_is_refused_when_connecting() {
    let rejected = refusal(UrlPolicy::PRODUCTION, "https://localhost:1/mcp").await;
    assert!(
        matches!(
            rejected,
            UrlRejected::ForbiddenAddress {
                class: AddressClass::Loopback,
                ..
            }
        ),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn a_forbidden_ip_literal_and_a_forbidden_scheme_are_refused_before_connecting() {
    // Development allows loopback and private ranges, never cloud metadata addresses.
    let rejected = refusal(
        UrlPolicy::DEVELOPMENT,
        "http://169.254.169.254/latest/meta-data",
    )
    .await;
    assert!(
        matches!(
            rejected,
            UrlRejected::ForbiddenAddress {
                class: AddressClass::CloudMetadata,
                ..
            }
        ),
        "{rejected:?}"
    );
    let rejected = refusal(UrlPolicy::DEVELOPMENT, "http://user:secret@127.0.0.1:1/mcp").await;
    assert_eq!(rejected, UrlRejected::Credentials);
    let rejected = refusal(UrlPolicy::PRODUCTION, "http://example.com/mcp").await;
    assert_eq!(rejected, UrlRejected::HttpsRequired);
}

#[tokio::test]
async fn the_connect_timeout_covers_a_tls_handshake_that_never_answers() {
    // Accepts the TCP connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let client = ForwardingClient::new(UrlPolicy::DEVELOPMENT, Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let failure = client
        .send(get(&format!("https://localhost:{port}/mcp")))
        .await
        .unwrap_err();
    assert!(
        matches!(failure, ForwardFailure::ConnectTimeout { after } if after == Duration::from_millis(300)),
        "{failure:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}

#[tokio::test]
async fn requests_reuse_a_pooled_connection_and_carry_the_gateways_user_agent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (heads, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = pending.drain(..end + 4).collect();
                        let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    let client = ForwardingClient::new(UrlPolicy::DEVELOPMENT, Duration::from_secs(2)).unwrap();
    for _ in 0..3 {
        let response = client
            .send(get(&format!("http://127.0.0.1:{port}/mcp")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");
    let head = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "user-agent: portcullis/{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{head}"
    );
    assert!(head.contains(&format!("host: 127.0.0.1:{port}")), "{head}");
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
    let client = ForwardingClient::new(UrlPolicy::DEVELOPMENT, Duration::from_secs(2)).unwrap();
    let failure = tokio::time::timeout(
        Duration::from_secs(5),
        client.send(get(&format!("https://localhost:{port}/mcp"))),
    )
    .await
    .unwrap()
    .unwrap_err();
    // The platform verifier's words for a chain to no trusted root vary with the store.
    assert!(
        matches!(&failure, ForwardFailure::Transport { detail, .. } if detail.contains("invalid peer certificate")),
        "{failure:?}"
    );
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
