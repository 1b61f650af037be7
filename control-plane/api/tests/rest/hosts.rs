//! `/api/v1/hosts` and `/api/v1/hosts/{host}/client-config`.

use axum::http::StatusCode;
use portcullis_commands::Context;
use portcullis_commands::bootstrap::{DEFAULT_ORG_ID, ensure_default_host};
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn a_host_is_created_listed_read_changed_and_deleted() {
    let app = App::start().await;
    let created = app
        .post(
            "/api/v1/hosts",
            json!({ "prefix": "acme", "settings": { "dynamic_mcps": true } }),
        )
        .send()
        .await;
    created.expect_status(StatusCode::CREATED);
    let host = created.body.clone();
    let id = host["id"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 4, "{id}");
    assert_eq!(parts[0], "acme");
    assert!(
        parts[3].len() == 4 && parts[3].bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(host["prefix"], "acme");
    assert_eq!(host["default"], false);
    assert_eq!(host["mcp_url"], format!("http://{id}.localhost:8080/mcp"));
    assert_eq!(
        host["settings"],
        json!({
            "dynamic_mcps": true,
            "tool_visibility": "permitted",
            "session_idle_seconds": 2_592_000,
            "session_absolute_seconds": 7_776_000,
            "allowed_origins": [],
            "auth": { "password": true, "email_otp": false, "providers": [], "passkeys": false },
        })
    );
    assert_eq!(host["warnings"], json!([]));

    let list = app.get("/api/v1/hosts").send().await;
    list.expect_status(StatusCode::OK);
    assert_eq!(list.body["hosts"], json!([host]));

    app.get(&format!("/api/v1/hosts/{id}"))
        .send()
        .await
        .expect_status(StatusCode::OK);

    let changed = app
        .patch(
            &format!("/api/v1/hosts/{id}"),
            json!({ "settings": {
                "tool_visibility": "all",
                "session_idle_seconds": 3600,
                "allowed_origins": ["https://app.example.com"],
            }}),
        )
        .send()
        .await;
    changed.expect_status(StatusCode::OK);
    assert_eq!(
        changed.body["settings"],
        json!({
            "dynamic_mcps": true,
            "tool_visibility": "all",
            "session_idle_seconds": 3600,
            "session_absolute_seconds": 7_776_000,
            "allowed_origins": ["https://app.example.com"],
            "auth": { "password": true, "email_otp": false, "providers": [], "passkeys": false },
        })
    );
    let read = app.get(&format!("/api/v1/hosts/{id}")).send().await;
    assert_eq!(read.body, changed.body);

    let deleted = app.delete(&format!("/api/v1/hosts/{id}")).send().await;
    deleted.expect_status(StatusCode::NO_CONTENT);
    assert!(deleted.body.is_null());
    app.get(&format!("/api/v1/hosts/{id}"))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(
        app.get("/api/v1/hosts").send().await.body["hosts"],
        json!([])
    );
}

#[tokio::test]
async fn the_default_host_is_marked_and_served_on_the_listen_address() {
    let app = App::start().await;
    let default = ensure_default_host(app.store.as_ref(), &Context::system("test", "boot"))
        .await
        .unwrap();
    let secret = "pcat_test_admin_token_default_org_000000000";
    app.control
        .ensure_admin_token(
            &Context::system("test", "boot"),
            secret,
            &[DEFAULT_ORG_ID.to_owned()],
            "bootstrap",
        )
        .await
        .unwrap();
    let other = app
        .post("/api/v1/hosts", json!({ "prefix": "team" }))
        .token(Some(secret))
        .send()
        .await;
    other.expect_status(StatusCode::CREATED);

    let list = app.get("/api/v1/hosts").token(Some(secret)).send().await;
    let hosts = list.body["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    for host in hosts {
        let is_default = host["id"] == default.host_id.as_str();
        assert_eq!(host["default"], is_default, "{host}");
        let expected = if is_default {
            "http://127.0.0.1:8080/mcp".to_owned()
        } else {
            format!("http://{}.localhost:8080/mcp", host["id"].as_str().unwrap())
        };
        assert_eq!(host["mcp_url"], expected);
    }
}

#[tokio::test]
async fn host_fields_are_validated_and_named() {
    let app = App::start().await;
    let bad = |body: serde_json::Value, field: &'static str| {
        let app = &app;
        async move {
            app.post("/api/v1/hosts", body).send().await.expect_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some(field),
            );
        }
    };
    bad(json!({ "prefix": "Not Valid" }), "prefix").await;
    bad(json!({}), "prefix").await;
    bad(json!({ "prefix": "acme", "color": "red" }), "color").await;
    bad(
        json!({ "prefix": "acme", "settings": { "tool_visibility": "everything" } }),
        "settings.tool_visibility",
    )
    .await;
    bad(
        json!({ "prefix": "acme", "settings": { "session_idle_seconds": 10 } }),
        "settings.session_idle_seconds",
    )
    .await;
    bad(
        json!({ "prefix": "acme", "settings": { "session_idle_seconds": -1 } }),
        "settings.session_idle_seconds",
    )
    .await;
    bad(
        json!({ "prefix": "acme", "settings": { "allowed_origins": ["https://ok.example", "not a url"] } }),
        "settings.allowed_origins[1]",
    )
    .await;
    bad(
        json!({ "prefix": "acme", "settings": { "dynamic": true } }),
        "settings.dynamic",
    )
    .await;
    bad(json!({ "prefix": "acme", "org_id": 7 }), "org_id").await;

    let id = app.host("acme").await;
    let path = format!("/api/v1/hosts/{id}");
    app.patch(
        &path,
        json!({ "settings": { "session_absolute_seconds": 400, "session_idle_seconds": 500 } }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("settings.session_idle_seconds"),
    );
    app.patch(&path, json!({ "dynamic_mcps": true }))
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("dynamic_mcps"),
        );

    // Another admin's organization does not exist for this one.
    let other_org = app.principal(crate::support::OTHER_TOKEN).await.org_ids()[0].clone();
    app.post(
        "/api/v1/hosts",
        json!({ "prefix": "acme", "org_id": other_org }),
    )
    .send()
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn client_config_has_snippets_for_the_host_and_each_server() {
    let app = App::start().await;
    let id = app.host("acme").await;
    app.seed_server(&id, "files").await;
    let config = app
        .get(&format!("/api/v1/hosts/{id}/client-config"))
        .send()
        .await;
    config.expect_status(StatusCode::OK);
    let body = &config.body;
    let host_url = format!("http://{id}.localhost:8080/mcp");
    assert_eq!(body["host_id"], id.as_str());
    assert_eq!(body["host"]["mcp_url"], host_url.as_str());
    let clients = &body["host"]["clients"];
    assert_eq!(
        clients["cursor"]["config"]["mcpServers"][&id]["args"],
        json!(["-y", "mcp-remote", host_url])
    );
    assert_eq!(
        clients["cursor"]["config"]["mcpServers"][&id]["command"],
        "npx"
    );
    assert_eq!(
        clients["vscode"]["config"]["servers"][&id]["args"][2],
        host_url.as_str()
    );
    assert!(clients["claude_desktop"]["config"]["mcpServers"][&id].is_object());
    assert_eq!(
        clients["claude_code"]["command"],
        format!("claude mcp add {id} --transport http {host_url}")
    );

    let server = &body["servers"][0];
    assert_eq!(server["key"], "files");
    assert_eq!(server["upstream_url"], "https://files.example.com/mcp");
    let path_url = format!("http://{id}.localhost:8080/mcp/files");
    assert_eq!(server["path"]["mcp_url"], path_url.as_str());
    assert_eq!(
        server["path"]["clients"]["claude_code"]["command"],
        format!("claude mcp add files --transport http {path_url}")
    );
    assert_eq!(
        server["upstream"]["mcp_url"],
        format!("{host_url}?upstream_mcp=https%3A%2F%2Ffiles.example.com%2Fmcp")
    );
}

#[tokio::test]
async fn sign_in_methods_and_domain_rules_are_set_normalized_and_warned_about() {
    let app = App::start().await;
    let id = app.host("acme").await;
    let path = format!("/api/v1/hosts/{id}");
    let changed = app
        .patch(
            &path,
            json!({ "settings": { "auth": {
                "email_otp": true,
                "allowed_domains": { "domains": ["Acme.COM", "Bücher.example"], "include_subdomains": true },
                "password_domains": { "domains": ["other.example"] },
            }}}),
        )
        .send()
        .await;
    changed.expect_status(StatusCode::OK);
    assert_eq!(
        changed.body["settings"]["auth"],
        json!({
            "password": true,
            "email_otp": true,
            "allowed_domains": { "domains": ["acme.com", "xn--bcher-kva.example"], "include_subdomains": true },
            "password_domains": { "domains": ["other.example"], "include_subdomains": false },
            "providers": [],
            "passkeys": false,
        })
    );
    // Password is on, but its list and the global one have nothing in common.
    let warnings = changed.body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("password"),
        "{warnings:?}"
    );
    // Other settings leave the sign-in rules alone.
    let kept = app
        .patch(&path, json!({ "settings": { "dynamic_mcps": true } }))
        .send()
        .await;
    assert_eq!(
        kept.body["settings"]["auth"],
        changed.body["settings"]["auth"]
    );

    // Refused, naming the field, and nothing changes.
    for (auth, field) in [
        (json!({ "password": false }), "settings.auth"),
        (
            json!({ "allowed_domains": { "domains": ["ok.example", "*.acme.com"] } }),
            "settings.auth.allowed_domains.domains[1]",
        ),
        (
            json!({ "email_otp_domains": { "domains": ["user@acme.com"] } }),
            "settings.auth.email_otp_domains.domains[0]",
        ),
        (json!({ "sso": true }), "settings.auth.sso"),
    ] {
        app.patch(&path, json!({ "settings": { "auth": auth } }))
            .send()
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some(field));
    }
    let read = app.get(&path).send().await;
    assert_eq!(
        read.body["settings"]["auth"],
        changed.body["settings"]["auth"]
    );
}
