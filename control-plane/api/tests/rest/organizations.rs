//! `/api/v1/organizations`.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn an_admin_lists_and_creates_its_organizations() {
    let app = App::start().await;
    let list = app.get("/api/v1/organizations").send().await;
    list.expect_status(StatusCode::OK);
    let names: Vec<&str> = list.body["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Acme"],
        "another admin's organization is not listed"
    );

    let created = app
        .post("/api/v1/organizations", json!({ "name": "  Acme Labs " }))
        .send()
        .await;
    created.expect_status(StatusCode::CREATED);
    assert_eq!(created.body["name"], "Acme Labs");
    let id = created.body["id"].as_str().unwrap().to_owned();

    let list = app.get("/api/v1/organizations").send().await;
    let ids: Vec<&str> = list.body["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()), "{ids:?}");
    assert_eq!(ids.len(), 2);
}

#[tokio::test]
async fn an_organization_needs_a_valid_name_and_nothing_else() {
    let app = App::start().await;
    app.post("/api/v1/organizations", json!({ "name": "   " }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("name"));
    app.post("/api/v1/organizations", json!({}))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("name"));
    app.post(
        "/api/v1/organizations",
        json!({ "name": "X", "plan": "gold" }),
    )
    .send()
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("plan"));
    app.post("/api/v1/organizations", json!({ "name": 5 }))
        .send()
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some("name"));
}
