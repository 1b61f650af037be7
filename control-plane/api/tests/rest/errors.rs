//! What every route shares: authentication (401), tenant isolation (404), body handling (400,
//! 413, 415), request ids and idempotency keys.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{App, OTHER_TOKEN};

/// Every host-scoped route with a body that would be valid, for host `{host}`, server
/// `files`, human `ada@example.com`, agent `{agent}`.
fn host_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/hosts/{host}", None),
        (
            Method::PATCH,
            "/api/v1/hosts/{host}",
            Some(json!({ "settings": { "dynamic_mcps": true } })),
        ),
        (Method::DELETE, "/api/v1/hosts/{host}", None),
        (Method::GET, "/api/v1/hosts/{host}/client-config", None),
        (
            Method::POST,
            "/api/v1/hosts/{host}/servers/discover",
            Some(json!({ "url": "http://127.0.0.1:9/mcp" })),
        ),
        (Method::GET, "/api/v1/hosts/{host}/servers", None),
        (
            Method::POST,
            "/api/v1/hosts/{host}/servers",
            Some(json!({ "url": "http://127.0.0.1:9/mcp" })),
        ),
        (Method::GET, "/api/v1/hosts/{host}/servers/files", None),
        (
            Method::PATCH,
            "/api/v1/hosts/{host}/servers/files",
            Some(json!({ "name": "x" })),
        ),
        (Method::DELETE, "/api/v1/hosts/{host}/servers/files", None),
        (
            Method::POST,
            "/api/v1/hosts/{host}/servers/files/refresh",
            None,
        ),
        (
            Method::POST,
            "/api/v1/hosts/{host}/servers/files/tools",
            Some(json!({ "name": "t", "trust_level": "low" })),
        ),
        (
            Method::PATCH,
            "/api/v1/hosts/{host}/servers/files/tools/read_file",
            Some(json!({ "enabled": false })),
        ),
        (
            Method::DELETE,
            "/api/v1/hosts/{host}/servers/files/tools/read_file",
            None,
        ),
        (
            Method::POST,
            "/api/v1/hosts/{host}/humans",
            Some(json!({ "email": "eve@example.com" })),
        ),
        (Method::GET, "/api/v1/hosts/{host}/humans", None),
        (
            Method::GET,
            "/api/v1/hosts/{host}/humans/ada@example.com",
            None,
        ),
        (
            Method::DELETE,
            "/api/v1/hosts/{host}/humans/ada@example.com",
            None,
        ),
        (
            Method::PUT,
            "/api/v1/hosts/{host}/humans/ada@example.com/grants/files",
            Some(json!({ "max_trust_level": "low" })),
        ),
        (
            Method::DELETE,
            "/api/v1/hosts/{host}/humans/ada@example.com/grants/files",
            None,
        ),
        (Method::GET, "/api/v1/hosts/{host}/agents", None),
        (Method::GET, "/api/v1/hosts/{host}/agents/{agent}", None),
        (Method::DELETE, "/api/v1/hosts/{host}/agents/{agent}", None),
        (
            Method::PUT,
            "/api/v1/hosts/{host}/agents/{agent}/servers/files",
            Some(json!({ "max_trust_level": "low" })),
        ),
        (
            Method::DELETE,
            "/api/v1/hosts/{host}/agents/{agent}/servers/files",
            None,
        ),
        (Method::GET, "/api/v1/hosts/{host}/audit", None),
    ]
}

/// Every route not under a host.
fn top_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/organizations", None),
        (
            Method::POST,
            "/api/v1/organizations",
            Some(json!({ "name": "X" })),
        ),
        (Method::GET, "/api/v1/hosts", None),
        (
            Method::POST,
            "/api/v1/hosts",
            Some(json!({ "prefix": "x" })),
        ),
    ]
}

#[tokio::test]
async fn every_route_but_the_document_needs_a_valid_admin_token() {
    let app = App::start().await;
    let host = app.host("acme").await;
    for (method, path, body) in top_routes().into_iter().chain(host_routes()) {
        let path = path.replace("{host}", &host).replace("{agent}", "a1");
        for auth in [
            None,
            Some("Bearer pcat_wrong_token_000000000000000000000000"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("Bearer"),
        ] {
            let mut request = app.request(method.clone(), &path).token(None);
            if let Some(auth) = auth {
                request = request.authorization(auth);
            }
            if let Some(body) = &body {
                request = request.json(body.clone());
            }
            let response = request.send().await;
            response.expect_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
            assert_eq!(
                response.headers["www-authenticate"],
                "Bearer realm=\"portcullis-admin\""
            );
        }
    }
    // Authentication comes before the body is even looked at.
    app.request(Method::POST, "/api/v1/hosts")
        .token(None)
        .raw(Some("text/plain"), "nonsense")
        .send()
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
}

#[tokio::test]
async fn another_organizations_host_is_not_found_on_every_route() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let server = app.seed_server(&host, "files").await;
    let human = app
        .post(
            &format!("/api/v1/hosts/{host}/humans"),
            json!({ "email": "ada@example.com" }),
        )
        .send()
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = app
        .connect_agent(
            &host,
            "cursor",
            &human,
            &server.server_id,
            portcullis_proto::TrustLevel::Low,
        )
        .await;
    for (method, path, body) in host_routes() {
        let path = path.replace("{host}", &host).replace("{agent}", &agent);
        let mut request = app.request(method.clone(), &path).token(Some(OTHER_TOKEN));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await;
        response.expect_error(StatusCode::NOT_FOUND, "not_found", None);
        assert_eq!(
            response.body["error"]["details"]["resource"], "host",
            "{path}"
        );
    }
    // And nothing changed: the owner still sees everything.
    let server = app
        .get(&format!("/api/v1/hosts/{host}/servers/files"))
        .send()
        .await;
    server.expect_status(StatusCode::OK);
    assert_eq!(server.body["tools"].as_array().unwrap().len(), 3);
    app.get(&format!("/api/v1/hosts/{host}/humans/ada@example.com"))
        .send()
        .await
        .expect_status(StatusCode::OK);
    app.get(&format!("/api/v1/hosts/{host}/agents/{agent}"))
        .send()
        .await
        .expect_status(StatusCode::OK);
}

#[tokio::test]
async fn bodies_must_be_json_of_bounded_size_with_known_fields() {
    let app = App::start().await;
    let hosts = "/api/v1/hosts";
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        app.request(Method::POST, hosts)
            .raw(content_type, r#"{"prefix":"acme"}"#)
            .send()
            .await
            .expect_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            );
    }
    app.request(Method::POST, hosts)
        .raw(
            Some("application/json; charset=utf-8"),
            r#"{"prefix":"acme"}"#,
        )
        .send()
        .await
        .expect_status(StatusCode::CREATED);

    let big = format!(r#"{{"prefix":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    app.request(Method::POST, hosts)
        .raw(Some("application/json"), big)
        .send()
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None);

    for malformed in [
        r#"{"prefix":"acme""#,
        "",
        "[1,2",
        r#"{"prefix":"acme"} {}"#,
        "nul",
    ] {
        let response = app
            .request(Method::POST, hosts)
            .raw(Some("application/json"), malformed)
            .send()
            .await;
        response.expect_error(StatusCode::BAD_REQUEST, "invalid_request", None);
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON"),
            "{malformed:?}: {}",
            response.body
        );
    }
    let response = app
        .request(Method::POST, hosts)
        .raw(Some("application/json"), "[]")
        .send()
        .await;
    response.expect_error(StatusCode::BAD_REQUEST, "invalid_request", None);

    let response = app
        .post(
            hosts,
            json!({ "prefix": "acme", "settings": { "allowed_origins": "x" } }),
        )
        .send()
        .await;
    response.expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("settings.allowed_origins"),
    );
    let host = app.host("acme").await;
    let response = app
        .post(
            &format!("/api/v1/hosts/{host}/servers"),
            json!({ "url": "http://x", "tools": [{ "name": "a" }, { "name": "b", "level": "low" }] }),
        )
        .send()
        .await;
    response.expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("tools[1].level"),
    );
    assert!(
        response.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `level`"),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn every_response_carries_a_fresh_request_id() {
    let app = App::start().await;
    let ok = app.get("/api/v1/hosts").send().await;
    let denied = app.get("/api/v1/hosts").token(None).send().await;
    let mut ids = Vec::new();
    for response in [&ok, &denied] {
        let id = response.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 26, "{id}");
        assert!(id.parse::<ulid::Ulid>().is_ok(), "{id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_create_return_the_same_thing() {
    let app = App::start().await;
    let create = || {
        app.post("/api/v1/hosts", json!({ "prefix": "acme" }))
            .header("idempotency-key", "create-acme-1")
            .send()
    };
    let first = create().await;
    first.expect_status(StatusCode::CREATED);
    let second = create().await;
    second.expect_status(StatusCode::CREATED);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(
        app.get("/api/v1/hosts").send().await.body["hosts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let fresh = app
        .post("/api/v1/hosts", json!({ "prefix": "acme" }))
        .send()
        .await;
    assert_ne!(fresh.body["id"], first.body["id"]);

    app.post("/api/v1/hosts", json!({ "prefix": "acme" }))
        .header("idempotency-key", "has space")
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("idempotency_key"),
        );
    app.post("/api/v1/hosts", json!({ "prefix": "acme" }))
        .header("idempotency-key", &"k".repeat(129))
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("idempotency_key"),
        );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let app = App::start().await;
    for (method, path) in [
        (Method::PUT, "/api/v1/hosts"),
        (Method::DELETE, "/api/v1/organizations"),
        (Method::GET, "/api/v1/hosts/h/servers/k/tools/t"),
    ] {
        app.request(method, path).send().await.expect_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_json_404s() {
    let app = App::start().await;
    for path in ["/api/v1/nope", "/api/v2/hosts", "/"] {
        app.get(path)
            .send()
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    }
}
