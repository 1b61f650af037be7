//! `/api/v1/hosts/{host}/servers` without an upstream (servers seeded through the service);
//! discovery, import and refresh against real upstreams are in `upstream`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{App, closed_port_url};

#[tokio::test]
async fn servers_are_listed_read_changed_and_deleted_by_key() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let seeded = app.seed_server(&host, "files").await;
    app.seed_server(&host, "alpha").await;

    let list = app
        .get(&format!("/api/v1/hosts/{host}/servers"))
        .send()
        .await;
    list.expect_status(StatusCode::OK);
    let keys: Vec<&str> = list.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alpha", "files"]);

    let path = format!("/api/v1/hosts/{host}/servers/files");
    let server = app.get(&path).send().await;
    server.expect_status(StatusCode::OK);
    let body = &server.body;
    assert_eq!(body["id"], seeded.server_id.as_str());
    assert_eq!(body["key"], "files");
    assert_eq!(body["name"], "files server");
    assert_eq!(body["url"], "https://files.example.com/mcp");
    assert_eq!(
        body["mcp_url"],
        format!("http://{host}.localhost:8080/mcp/files")
    );
    assert_eq!(
        body["upstream_auth"],
        json!({ "kind": "none", "client_id": null, "key_id": null })
    );
    let tools: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["delete_file", "read_file", "write_file"]);
    assert_eq!(
        body["tools"][0],
        json!({
            "name": "delete_file",
            "description": "delete_file tool",
            "input_schema_sha256": "07".repeat(32),
            "trust_level": "high",
            "enabled": true,
            "classification": { "kind": "auto", "matched_keyword": "", "reason": "seeded" },
        })
    );

    let changed = app
        .patch(
            &path,
            json!({ "name": "Files", "description": "Shared files" }),
        )
        .send()
        .await;
    changed.expect_status(StatusCode::OK);
    assert_eq!(changed.body["name"], "Files");
    assert_eq!(changed.body["description"], "Shared files");
    app.patch(&path, json!({ "name": "" }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("name"));
    app.patch(&path, json!({ "key": "other" }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("key"));

    app.delete(&path)
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.get(&path)
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    app.delete(&path)
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn an_upstream_timeout_is_set_shown_changed_and_cleared() {
    let app = App::start().await;
    let host = app.host("acme").await;
    app.seed_server(&host, "files").await;
    let servers = format!("/api/v1/hosts/{host}/servers");
    let path = format!("{servers}/files");
    let shown = |body: &Value| body["timeout_seconds"].clone();
    let get = || async {
        let server = app.get(&path).send().await;
        server.expect_status(StatusCode::OK);
        shown(&server.body)
    };
    let listed = || async {
        let list = app.get(&servers).send().await;
        list.expect_status(StatusCode::OK);
        shown(&list.body["servers"][0])
    };
    let patch = |body: Value| async {
        let changed = app.patch(&path, body).send().await;
        changed.expect_status(StatusCode::OK);
        shown(&changed.body)
    };

    // Unset: the data plane's global default, shown as null.
    assert_eq!(get().await, Value::Null);
    assert_eq!(listed().await, Value::Null);

    assert_eq!(patch(json!({ "timeout_seconds": 300 })).await, json!(300));
    assert_eq!(get().await, json!(300));
    assert_eq!(listed().await, json!(300));
    // A change that does not name the timeout keeps it; null is "not given", as for name.
    assert_eq!(patch(json!({ "name": "Files" })).await, json!(300));
    assert_eq!(
        patch(json!({ "timeout_seconds": null, "clear_timeout": false })).await,
        json!(300)
    );
    assert_eq!(patch(json!({ "timeout_seconds": 3600 })).await, json!(3600));
    assert_eq!(patch(json!({ "timeout_seconds": 1 })).await, json!(1));
    assert_eq!(get().await, json!(1));

    assert_eq!(patch(json!({ "clear_timeout": true })).await, Value::Null);
    assert_eq!(get().await, Value::Null);
    assert_eq!(listed().await, Value::Null);
    assert_eq!(patch(json!({ "clear_timeout": true })).await, Value::Null);

    // Out of bounds or not a whole number of seconds: 400 naming the field, nothing changed.
    for bad in [json!(0), json!(3601), json!(-1), json!(1.5), json!("30")] {
        app.patch(&path, json!({ "timeout_seconds": bad }))
            .send()
            .await
            .expect_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("timeout_seconds"),
            );
    }
    app.patch(
        &path,
        json!({ "timeout_seconds": 30, "clear_timeout": true }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("clear_timeout"),
    );
    assert_eq!(get().await, Value::Null);

    // An import with a bad timeout is refused before its upstream is contacted (nothing
    // listens there; the valid import is in `upstream`).
    for bad in [0, 3601] {
        app.post(
            &servers,
            json!({ "url": closed_port_url(), "key": "slow", "timeout_seconds": bad }),
        )
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("timeout_seconds"),
        );
    }
}

#[tokio::test]
async fn tools_are_added_overridden_and_removed_by_hand() {
    let app = App::start().await;
    let host = app.host("acme").await;
    app.seed_server(&host, "files").await;
    let tools = format!("/api/v1/hosts/{host}/servers/files/tools");

    let added = app
        .post(
            &tools,
            json!({ "name": "purge_cache", "description": "Purges", "trust_level": "high" }),
        )
        .send()
        .await;
    added.expect_status(StatusCode::CREATED);
    assert_eq!(added.body["name"], "purge_cache");
    assert_eq!(added.body["trust_level"], "high");
    assert_eq!(added.body["classification"]["kind"], "admin_override");
    app.post(
        &tools,
        json!({ "name": "purge_cache", "trust_level": "low" }),
    )
    .send()
    .await
    .expect_error(StatusCode::CONFLICT, "conflict", None);
    app.post(&tools, json!({ "name": "x" }))
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("trust_level"),
        );
    app.post(&tools, json!({ "name": "x", "trust_level": "critical" }))
        .send()
        .await
        .expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("trust_level"),
        );
    app.post(&tools, json!({ "name": "has space", "trust_level": "low" }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("name"));

    let changed = app
        .patch(
            &format!("{tools}/read_file"),
            json!({ "trust_level": "medium", "enabled": false }),
        )
        .send()
        .await;
    changed.expect_status(StatusCode::OK);
    assert_eq!(changed.body["trust_level"], "medium");
    assert_eq!(changed.body["enabled"], false);
    assert_eq!(changed.body["classification"]["kind"], "admin_override");
    app.patch(
        &format!("{tools}/read_file"),
        json!({ "trust_level": "Medium" }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("trust_level"),
    );
    app.patch(&format!("{tools}/nope"), json!({ "enabled": false }))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);

    app.delete(&format!("{tools}/purge_cache"))
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.delete(&format!("{tools}/purge_cache"))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    let server = app
        .get(&format!("/api/v1/hosts/{host}/servers/files"))
        .send()
        .await;
    let names: Vec<&str> = server.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["delete_file", "read_file", "write_file"]);

    // Unknown server keys are 404 on every server path.
    for path in [
        format!("/api/v1/hosts/{host}/servers/nope"),
        format!("/api/v1/hosts/{host}/servers/nope/tools/read_file"),
    ] {
        app.delete(&path)
            .send()
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    }
}
