//! The gateway's OAuth client against the TS SDK's OAuth-protected example server: 401 →
//! metadata → dynamic registration → PKCE authorization (auto-approved) → code exchange →
//! discovery with the token. And the callback checks that stop forged or mixed-up callbacks.

use portcullis_upstream::{
    AuthorizationOptions, AuthorizationRequest, BegunAuthorization, CallbackParams, DiscoverError,
    DiscoverOptions, OAuthError, PreRegisteredClient, Secret, TokenAuthMethod, UrlPolicy,
    begin_authorization, complete_authorization, discover, discover_with_token,
};
use test_fixtures::McpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// The gateway's callback; never contacted here, the test reads the redirect itself.
const REDIRECT_URI: &str = "http://127.0.0.1:9/upstream/oauth/callback";

#[tokio::test]
async fn the_full_upstream_oauth_flow_ends_with_the_tools_listed() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let policy = UrlPolicy::DEVELOPMENT;

    let challenge = discover(&url, policy, &DiscoverOptions::default())
        .await
        .unwrap_err();
    let DiscoverError::AuthorizationRequired {
        resource_metadata,
        scope,
        ..
    } = challenge
    else {
        panic!("expected AuthorizationRequired, got {challenge:?}");
    };
    assert!(resource_metadata.is_some());

    let begun = begin(&url, resource_metadata, scope, None).await.unwrap();
    let pending = &begun.pending;
    assert!(pending.client_registered_dynamically);
    // The demo server offers client_secret_post and none: a confidential client is preferred.
    assert_eq!(
        pending.client.auth_method,
        TokenAuthMethod::ClientSecretPost
    );
    assert!(pending.client.client_secret.is_some());
    assert_eq!(pending.resource, url);
    let query = query_of(&begun.authorization_url);
    assert_eq!(query("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query("resource").as_deref(), Some(url.as_str()));
    assert_eq!(query("redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(query("scope").as_deref(), Some("mcp:tools"));
    assert_eq!(query("state").as_deref(), Some(pending.state.expose()));

    // The "browser": the demo server approves at once and redirects to the callback.
    let callback = follow_authorization(&begun.authorization_url).await;
    let tokens =
        complete_authorization(pending, &callback, policy, &AuthorizationOptions::default())
            .await
            .unwrap();
    assert!(tokens.expires_at.is_some());

    let discovery = discover_with_token(
        &url,
        &tokens.access_token,
        policy,
        &DiscoverOptions::default(),
    )
    .await
    .unwrap();
    let names: Vec<&str> = discovery.tools.iter().map(|t| t.name.as_str()).collect();
    for expected in ["greet", "multi-greet"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // A pending authorization survives being stored and read back, as the caller does.
    let stored = serde_json::to_string(pending).unwrap();
    let _: portcullis_upstream::PendingAuthorization = serde_json::from_str(&stored).unwrap();
}

#[tokio::test]
async fn a_callback_with_another_state_or_issuer_is_refused_before_any_exchange() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let begun = begin(&url, None, None, None).await.unwrap();
    let callback = follow_authorization(&begun.authorization_url).await;
    let options = AuthorizationOptions::default();
    let policy = UrlPolicy::DEVELOPMENT;

    let forged = CallbackParams {
        state: Some(Secret::new("forged")),
        ..callback.clone()
    };
    let error = complete_authorization(&begun.pending, &forged, policy, &options)
        .await
        .unwrap_err();
    assert!(matches!(error, OAuthError::StateMismatch), "{error:?}");

    let mixed_up = CallbackParams {
        iss: Some("http://evil.example/".to_owned()),
        ..callback.clone()
    };
    let error = complete_authorization(&begun.pending, &mixed_up, policy, &options)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the callback comes from issuer http://evil.example/, not {}",
            begun.pending.issuer
        )
    );

    // The genuine callback still works: the refused ones consumed nothing.
    complete_authorization(&begun.pending, &callback, policy, &options)
        .await
        .unwrap();
    // A code is single-use at the server.
    let replay = complete_authorization(&begun.pending, &callback, policy, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(replay, OAuthError::TokenRequestFailed { .. }),
        "{replay:?}"
    );
}

#[tokio::test]
async fn an_admin_given_client_skips_registration() {
    let peer = McpPeer::sdk_oauth_example()
        .await
        .expect("sdk oauth example");
    let url = peer.url().to_owned();
    let client = PreRegisteredClient {
        client_id: "registered-by-hand".to_owned(),
        client_secret: Some(Secret::new("s3cret")),
    };
    let begun = begin(&url, None, None, Some(client)).await.unwrap();
    assert!(!begun.pending.client_registered_dynamically);
    assert_eq!(begun.pending.client.client_id, "registered-by-hand");
    assert_eq!(
        begun.pending.client.auth_method,
        TokenAuthMethod::ClientSecretPost
    );
}

#[tokio::test]
async fn an_unreachable_authorization_server_is_named_in_the_error() {
    // The Python server's metadata points at an authorization server on a closed port.
    let peer = McpPeer::python_server(&["--auth"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let error = begin(&url, None, None, None).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "could not fetch the authorization server metadata from \
             http://127.0.0.1:9/.well-known/oauth-authorization-server: "
        ),
        "{message}"
    );
}

/// An authorization server without a registration endpoint (a stand-in for the
/// neighbour; the behaviour proven is the gateway's): the gateway cannot register itself, so
/// it must say so and ask for a client id and secret, and use them when given.
#[tokio::test]
async fn an_authorization_server_without_registration_asks_for_client_credentials() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let resource_metadata = serde_json::json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base.clone()],
    })
    .to_string();
    let server_metadata = serde_json::json!({
        "issuer": base.clone(),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (resource_metadata, server_metadata) =
                (resource_metadata.clone(), server_metadata.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&head);
                let path = request.split(' ').nth(1).unwrap_or_default().to_owned();
                let (status, body) = if path.starts_with("/.well-known/oauth-protected-resource") {
                    ("200 OK", resource_metadata)
                } else if path == "/.well-known/oauth-authorization-server" {
                    ("200 OK", server_metadata)
                } else {
                    ("404 Not Found", "{}".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    let url = format!("{base}/mcp");
    let prm = Some(format!("{base}/.well-known/oauth-protected-resource/mcp"));

    let error = begin(&url, prm.clone(), None, None).await.unwrap_err();
    assert!(
        matches!(error, OAuthError::ClientCredentialsRequired { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("offers no dynamic registration")
            && message.contains("oauth.client_id")
            && message.contains("oauth.client_secret"),
        "{message}"
    );

    let client = PreRegisteredClient {
        client_id: "gateway-client".to_owned(),
        client_secret: Some(portcullis_upstream::Secret::new("s3cret")),
    };
    let begun = begin(&url, prm, None, Some(client))
        .await
        .expect("begins with the given client");
    let query = query_of(&begun.authorization_url);
    assert_eq!(query("client_id").as_deref(), Some("gateway-client"));
    assert_eq!(query("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query("resource").as_deref(), Some(url.as_str()));
    assert!(
        !begun.authorization_url.as_str().contains("s3cret"),
        "no secret in the URL"
    );
}

async fn begin(
    url: &str,
    resource_metadata: Option<String>,
    scope: Option<String>,
    client: Option<PreRegisteredClient>,
) -> Result<BegunAuthorization, OAuthError> {
    let request = AuthorizationRequest {
        mcp_url: url.to_owned(),
        resource_metadata,
        scope,
        redirect_uri: REDIRECT_URI.to_owned(),
        client,
    };
    begin_authorization(
        &request,
        UrlPolicy::DEVELOPMENT,
        &AuthorizationOptions::default(),
    )
    .await
}

fn query_of(url: &Url) -> impl Fn(&str) -> Option<String> + '_ {
    move |key| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// GETs the authorization URL with a plain HTTP/1.1 client and reads the callback parameters
/// from the redirect's `Location`.
async fn follow_authorization(url: &Url) -> CallbackParams {
    let port = url.port_or_known_default().unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let host = format!("{}:{port}", url.host_str().unwrap());
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let location = response
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no redirect from the authorization endpoint:\n{response}"));
    let location = Url::parse(&location).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    CallbackParams::from_query(location.query().unwrap_or_default())
}
