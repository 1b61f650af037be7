//! Discovery, import and refresh through the REST API against real upstreams:
//! server-everything (Node, SSE answers) and a Python `mcp` 2.3.0 server (JSON answers, paged
//! `tools/list`, OAuth-protected), and the 422s for what is not an MCP server.

use axum::http::StatusCode;
use serde_json::{Value, json};
use test_fixtures::McpPeer;

use crate::support::{App, canned_server, closed_port_url};

fn tool<'a>(tools: &'a Value, name: &str) -> &'a Value {
    tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from {tools}"))
}

#[tokio::test]
async fn server_everything_is_discovered_imported_and_refreshed() {
    let peer = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let url = peer.url().to_owned();
    let app = App::start().await;
    let host = app.host("acme").await;
    let servers = format!("/api/v1/hosts/{host}/servers");

    let discovered = app
        .post(&format!("{servers}/discover"), json!({ "url": url }))
        .send()
        .await;
    discovered.expect_status(StatusCode::OK);
    let body = &discovered.body;
    assert_eq!(body["status"], "discovered");
    assert_eq!(body["url"], url.as_str());
    assert!(!body["server"]["name"].as_str().unwrap().is_empty());
    let echo = tool(&body["tools"], "echo");
    assert_eq!(echo["suggested_trust_level"], "low");
    assert!(
        echo["classification_reason"].as_str().unwrap().len() > 5,
        "{echo}"
    );
    assert_eq!(echo["input_schema_sha256"].as_str().unwrap().len(), 64);
    assert!(echo["input_schema"].is_object());
    let long = tool(&body["tools"], "trigger-long-running-operation");
    assert_eq!(long["suggested_trust_level"], "medium");
    assert_eq!(long["matched_keyword"], "run");
    assert!(
        long["classification_reason"]
            .as_str()
            .unwrap()
            .contains("run"),
        "{long}"
    );

    let imported = app
        .post(
            &servers,
            json!({
                "url": url,
                "key": "everything",
                "tools": [
                    { "name": "echo", "trust_level": "medium" },
                    { "name": "get-sum", "enabled": false },
                ],
                "timeout_seconds": 120,
            }),
        )
        .send()
        .await;
    imported.expect_status(StatusCode::CREATED);
    let server = &imported.body;
    assert_eq!(server["key"], "everything");
    assert_eq!(server["url"], url.as_str());
    assert_eq!(server["timeout_seconds"], 120);
    let echo = tool(&server["tools"], "echo");
    assert_eq!(echo["trust_level"], "medium");
    assert_eq!(echo["classification"]["kind"], "admin_override");
    assert_eq!(tool(&server["tools"], "get-sum")["enabled"], false);
    let long = tool(&server["tools"], "trigger-long-running-operation");
    assert_eq!(long["trust_level"], "medium");
    assert_eq!(long["classification"]["kind"], "auto");
    assert_eq!(long["classification"]["matched_keyword"], "run");

    // The same key again: a persistent conflict.
    app.post(&servers, json!({ "url": url, "key": "everything" }))
        .send()
        .await
        .expect_error(StatusCode::CONFLICT, "conflict", None);
    // An override naming no discovered tool.
    app.post(
        &servers,
        json!({ "url": url, "key": "other", "tools": [{ "name": "nope" }] }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("tools[0].name"),
    );

    // A hand-made tool and a removed one: refresh removes the first and brings back the
    // second, and keeps the admin's override.
    let key_path = format!("{servers}/everything");
    app.post(
        &format!("{key_path}/tools"),
        json!({ "name": "handmade", "trust_level": "low" }),
    )
    .send()
    .await
    .expect_status(StatusCode::CREATED);
    app.delete(&format!("{key_path}/tools/get-sum"))
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let refreshed = app
        .request(axum::http::Method::POST, &format!("{key_path}/refresh"))
        .send()
        .await;
    refreshed.expect_status(StatusCode::OK);
    assert_eq!(refreshed.body["added"], json!(["get-sum"]));
    assert_eq!(refreshed.body["removed"], json!(["handmade"]));
    assert_eq!(refreshed.body["changed"], json!([]));
    let echo = tool(&refreshed.body["server"]["tools"], "echo");
    assert_eq!(echo["trust_level"], "medium");
    assert_eq!(
        refreshed.body["server"]["timeout_seconds"], 120,
        "a refresh keeps the admin's timeout"
    );
}

#[tokio::test]
async fn a_python_server_is_classified_across_pages() {
    let peer = McpPeer::python_server(&["--page-size", "2", "--json-response"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let app = App::start().await;
    let host = app.host("acme").await;
    let servers = format!("/api/v1/hosts/{host}/servers");

    let discovered = app
        .post(&format!("{servers}/discover"), json!({ "url": url }))
        .send()
        .await;
    discovered.expect_status(StatusCode::OK);
    let body = &discovered.body;
    assert_eq!(body["server"]["name"], "Notes");
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_notes",
            "add_note",
            "delete_note",
            "archive_notes",
            "get_dataset"
        ]
    );
    for (name, level, keyword) in [
        ("list_notes", "low", Value::Null),
        ("add_note", "medium", json!("add")),
        ("delete_note", "high", json!("delete")),
        ("get_dataset", "medium", json!("set")),
    ] {
        let tool = tool(&body["tools"], name);
        assert_eq!(tool["suggested_trust_level"], level, "{tool}");
        assert_eq!(tool["matched_keyword"], keyword, "{tool}");
    }
    let archive = tool(&body["tools"], "archive_notes");
    assert_eq!(archive["suggested_trust_level"], "high");
    assert_eq!(archive["annotations"]["destructive_hint"], true);
    assert!(
        archive["classification_reason"]
            .as_str()
            .unwrap()
            .contains("destructive"),
        "{archive}"
    );

    // Imported without a key: derived from the upstream's name.
    let imported = app.post(&servers, json!({ "url": url })).send().await;
    imported.expect_status(StatusCode::CREATED);
    assert_eq!(imported.body["key"], "notes");
    assert_eq!(imported.body["name"], "Notes");
    assert_eq!(imported.body["tools"].as_array().unwrap().len(), 5);
    assert_eq!(
        tool(&imported.body["tools"], "delete_note")["trust_level"],
        "high"
    );
    // Again: the next free key.
    let again = app.post(&servers, json!({ "url": url })).send().await;
    again.expect_status(StatusCode::CREATED);
    assert_eq!(again.body["key"], "notes-2");
}

#[tokio::test]
async fn an_upstream_wanting_oauth_is_reported_not_failed() {
    let peer = McpPeer::python_server(&["--auth"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let app = App::start().await;
    let host = app.host("acme").await;
    let servers = format!("/api/v1/hosts/{host}/servers");
    let discovered = app
        .post(&format!("{servers}/discover"), json!({ "url": url }))
        .send()
        .await;
    discovered.expect_status(StatusCode::OK);
    assert_eq!(discovered.body["status"], "authorization_required");
    assert_eq!(discovered.body["url"], url.as_str());
    assert!(
        discovered.body["resource_metadata"]
            .as_str()
            .unwrap()
            .contains("/.well-known/oauth-protected-resource"),
        "{}",
        discovered.body
    );
    // Without a master key there is nothing to seal the flow with: no authorization URL.
    assert!(discovered.body["authorization_url"].is_null());
    assert!(
        discovered.body["message"]
            .as_str()
            .unwrap()
            .contains("master key"),
        "{}",
        discovered.body
    );
    // Importing it without OAuth cannot list its tools.
    app.post(&servers, json!({ "url": url }))
        .send()
        .await
        .expect_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_authorization_required",
            None,
        );
}

#[tokio::test]
async fn what_is_not_an_mcp_server_is_a_422_that_says_which() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let servers = format!("/api/v1/hosts/{host}/servers");

    let closed = closed_port_url();
    for path in [format!("{servers}/discover"), servers.clone()] {
        let response = app.post(&path, json!({ "url": closed })).send().await;
        response.expect_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream_unreachable",
            None,
        );
        assert_eq!(response.body["error"]["details"]["url"], closed.as_str());
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("could not reach"),
            "{}",
            response.body
        );
    }

    let web = canned_server(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\nConnection: close\r\n\r\n<html>hi</html>",
    )
    .await;
    for path in [format!("{servers}/discover"), servers.clone()] {
        let response = app.post(&path, json!({ "url": web })).send().await;
        response.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "upstream_not_mcp", None);
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not an MCP"),
            "{}",
            response.body
        );
        assert!(
            response.body["error"]["details"]["reason"].is_string(),
            "{}",
            response.body
        );
    }

    // URLs the guard refuses never leave: a 400 naming the field.
    for url in [
        "ftp://example.com/mcp",
        "not a url",
        "http://user:pw@example.com/mcp",
    ] {
        app.post(&format!("{servers}/discover"), json!({ "url": url }))
            .send()
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("url"));
    }
    // Nothing was imported.
    let list = app.get(&servers).send().await;
    assert_eq!(list.body["servers"], json!([]));
}
