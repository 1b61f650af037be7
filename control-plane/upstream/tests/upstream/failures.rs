//! What an admin sees when an import cannot work: the SSRF guard's refusals, an HTTP server
//! that is not MCP, nothing listening, a server that never answers.

use std::time::Duration;

use portcullis_upstream::{
    AddressClass, DiscoverError, DiscoverOptions, UrlPolicy, UrlRejected, discover,
};

use crate::support::{canned_server, silent_server};

#[tokio::test]
async fn production_refuses_loopback_private_and_metadata_destinations() {
    for url in [
        "https://127.0.0.1/mcp",
        "https://localhost/mcp",
        "https://[::1]/mcp",
        "https://2130706433/mcp",
        "https://0x7f.0.0.1/mcp",
        "https://10.0.0.8/mcp",
        "https://[fe80::1]/mcp",
        "https://169.254.169.254/latest/meta-data/",
    ] {
        let error = discover(url, UrlPolicy::PRODUCTION, &DiscoverOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoverError::Rejected(UrlRejected::ForbiddenAddress { .. })
            ),
            "{url}: {error:?}"
        );
    }
    let error = discover(
        "http://93.184.215.14/mcp",
        UrlPolicy::PRODUCTION,
        &DiscoverOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, DiscoverError::Rejected(UrlRejected::HttpsRequired)),
        "{error:?}"
    );
}

#[tokio::test]
async fn even_development_never_reaches_the_metadata_service() {
    let error = discover(
        "http://169.254.169.254/latest/meta-data/",
        UrlPolicy::DEVELOPMENT,
        &DiscoverOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoverError::Rejected(UrlRejected::ForbiddenAddress {
                class: AddressClass::CloudMetadata,
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "url host 169.254.169.254 is 169.254.169.254, a cloud metadata address, which the \
         gateway does not connect to"
    );
}

#[tokio::test]
async fn a_web_page_is_not_mcp_and_the_error_says_why() {
    let url = canned_server(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\nConnection: close\r\n\r\n<html></html>",
    )
    .await;
    check_not_mcp(
        &url,
        "initialize was answered with content type text/html, not application/json or \
         text/event-stream",
    )
    .await;
}

#[tokio::test]
async fn a_missing_path_is_not_mcp_and_the_error_hints_at_the_path() {
    let url = canned_server(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
    )
    .await;
    check_not_mcp(
        &url,
        "initialize got HTTP status 404 Not Found: not found (is the path right? MCP endpoints \
         are often at /mcp)",
    )
    .await;
}

#[tokio::test]
async fn json_that_is_not_json_rpc_is_not_mcp() {
    let url = canned_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
    )
    .await;
    check_not_mcp(
        &url,
        "initialize was answered with a message that lacks \"jsonrpc\": \"2.0\"",
    )
    .await;
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let url = canned_server(
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    check_not_mcp(
        &url,
        "initialize was redirected (302 Found) to http://169.254.169.254/; redirects are not \
         followed, so give the final URL",
    )
    .await;
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        test_fixtures::free_loopback_port().expect("free port")
    );
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &DiscoverOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoverError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("could not reach {url}: ")) && message.contains("refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let url = silent_server().await;
    let options = DiscoverOptions {
        request_timeout: Duration::from_millis(500),
        ..DiscoverOptions::default()
    };
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoverError::Timeout {
                stage: "initialize",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{url} did not answer initialize within 500ms")
    );
}

#[tokio::test]
async fn the_overall_deadline_bounds_a_discovery() {
    let url = silent_server().await;
    let options = DiscoverOptions {
        total_timeout: Duration::from_millis(300),
        ..DiscoverOptions::default()
    };
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoverError::Timeout {
                stage: "discovery",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_cut_off() {
    let url = canned_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{}",
    )
    .await;
    let options = DiscoverOptions {
        max_response_bytes: 1000,
        ..DiscoverOptions::default()
    };
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoverError::LimitExceeded { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{url}: the answer to initialize is larger than 1000 bytes")
    );
}

async fn check_not_mcp(url: &str, detail: &str) {
    let error = discover(url, UrlPolicy::DEVELOPMENT, &DiscoverOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoverError::NotMcp { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("{url} is not an MCP Streamable HTTP endpoint: {detail}")
    );
}
