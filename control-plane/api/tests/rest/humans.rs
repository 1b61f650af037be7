//! `/api/v1/hosts/{host}/humans` and their grants.

use axum::http::StatusCode;
use portcullis_proto::TrustLevel;
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn humans_are_added_by_normalized_email_listed_read_and_removed() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let humans = format!("/api/v1/hosts/{host}/humans");

    let added = app
        .post(&humans, json!({ "email": "  Ada@Example.COM " }))
        .send()
        .await;
    added.expect_status(StatusCode::CREATED);
    assert_eq!(added.body["email"], "ada@example.com");
    assert_eq!(added.body["pre_authorized"], true);
    app.post(&humans, json!({ "email": "bob@example.com" }))
        .send()
        .await
        .expect_status(StatusCode::CREATED);

    // The same email in any case is taken.
    app.post(&humans, json!({ "email": "ADA@example.com" }))
        .send()
        .await
        .expect_error(StatusCode::CONFLICT, "conflict", None);
    for bad in ["", "no-at-sign", "a@b@c", "x@.com"] {
        app.post(&humans, json!({ "email": bad }))
            .send()
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("email"));
    }
    app.post(&humans, json!({ "mail": "ada@example.com" }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("mail"));

    let list = app.get(&humans).send().await;
    list.expect_status(StatusCode::OK);
    let emails: Vec<&str> = list.body["humans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ada@example.com", "bob@example.com"]);

    // Addressed by email, in any case.
    let detail = app.get(&format!("{humans}/ADA@example.com")).send().await;
    detail.expect_status(StatusCode::OK);
    assert_eq!(detail.body["email"], "ada@example.com");
    assert_eq!(detail.body["grants"], json!([]));
    assert_eq!(detail.body["agents"], json!([]));
    app.get(&format!("{humans}/not-an-email"))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("email"));
    app.get(&format!("{humans}/carol@example.com"))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);

    app.delete(&format!("{humans}/ada@example.com"))
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.get(&format!("{humans}/ada@example.com"))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    // The email is free again.
    app.post(&humans, json!({ "email": "ada@example.com" }))
        .send()
        .await
        .expect_status(StatusCode::CREATED);
}

#[tokio::test]
async fn grants_are_put_shown_with_server_keys_and_revoked() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let server = app.seed_server(&host, "files").await;
    let humans = format!("/api/v1/hosts/{host}/humans");
    let human = app
        .post(&humans, json!({ "email": "ada@example.com" }))
        .send()
        .await
        .body
        .clone();
    let grant = format!("{humans}/ada@example.com/grants/files");

    let put = app
        .put(&grant, json!({ "max_trust_level": "medium" }))
        .send()
        .await;
    put.expect_status(StatusCode::OK);
    assert_eq!(
        put.body,
        json!({ "server_key": "files", "server_id": server.server_id, "max_trust_level": "medium" })
    );
    let put = app
        .put(&grant, json!({ "max_trust_level": "high" }))
        .send()
        .await;
    assert_eq!(put.body["max_trust_level"], "high");
    for bad in [
        json!({ "max_trust_level": "admin" }),
        json!({ "max_trust_level": 3 }),
        json!({}),
    ] {
        app.put(&grant, bad).send().await.expect_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("max_trust_level"),
        );
    }
    app.put(
        &format!("{humans}/ada@example.com/grants/nope"),
        json!({ "max_trust_level": "low" }),
    )
    .send()
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    app.put(
        &format!("{humans}/zed@example.com/grants/files"),
        json!({ "max_trust_level": "low" }),
    )
    .send()
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found", None);

    // A connected agent shows up in the human's detail.
    let agent_id = app
        .connect_agent(
            &host,
            "cursor",
            human["id"].as_str().unwrap(),
            &server.server_id,
            TrustLevel::Medium,
        )
        .await;
    let detail = app.get(&format!("{humans}/ada@example.com")).send().await;
    assert_eq!(
        detail.body["grants"],
        json!([{ "server_key": "files", "server_id": server.server_id, "max_trust_level": "high" }])
    );
    assert_eq!(detail.body["agents"][0]["id"], agent_id.as_str());
    assert_eq!(detail.body["agents"][0]["name"], "cursor");

    app.delete(&grant)
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.delete(&grant)
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    let detail = app.get(&format!("{humans}/ada@example.com")).send().await;
    assert_eq!(detail.body["grants"], json!([]));
}
