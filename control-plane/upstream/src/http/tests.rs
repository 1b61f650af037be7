//! Tests of the outbound client: the guard runs again at connection time, and a validated URL
//! connects only to the addresses it was validated with.
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
