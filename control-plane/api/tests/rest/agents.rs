//! `/api/v1/hosts/{host}/agents`: list, detail, cap, revoke, delete.

use axum::http::StatusCode;
use portcullis_proto::TrustLevel;
use serde_json::json;

use crate::support::App;

#[tokio::test]
async fn agents_are_listed_capped_revoked_and_deleted() {
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
        .body
        .clone();
    let human_id = human["id"].as_str().unwrap();
    app.put(
        &format!("/api/v1/hosts/{host}/humans/ada@example.com/grants/files"),
        json!({ "max_trust_level": "high" }),
    )
    .send()
    .await
    .expect_status(StatusCode::OK);
    let agent_id = app
        .connect_agent(
            &host,
            "cursor",
            human_id,
            &server.server_id,
            TrustLevel::High,
        )
        .await;
    let agents = format!("/api/v1/hosts/{host}/agents");

    let list = app.get(&agents).send().await;
    list.expect_status(StatusCode::OK);
    assert_eq!(
        list.body["agents"],
        json!([{
            "id": agent_id,
            "name": "cursor",
            "client_id": "https://cursor.example/client.json",
            "uri": "https://cursor.example",
            "type": "sdk",
            "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "human_email": "ada@example.com",
            "human_id": human_id,
        }])
    );

    let agent = format!("{agents}/{agent_id}");
    let detail = app.get(&agent).send().await;
    detail.expect_status(StatusCode::OK);
    assert_eq!(detail.body["name"], "cursor");
    assert_eq!(detail.body["caps"], json!([]));
    let on_files = &detail.body["servers"][0];
    assert_eq!(on_files["server_key"], "files");
    assert_eq!(on_files["consented"], "high");
    assert_eq!(on_files["grant"], "high");
    assert_eq!(on_files["cap"], json!(null));
    assert_eq!(on_files["effective"], "high");
    assert_eq!(on_files["session_ids"].as_array().unwrap().len(), 1);

    let capped = app
        .put(
            &format!("{agent}/servers/files"),
            json!({ "max_trust_level": "low" }),
        )
        .send()
        .await;
    capped.expect_status(StatusCode::OK);
    assert_eq!(
        capped.body["caps"],
        json!([{ "server_key": "files", "server_id": server.server_id, "max_trust_level": "low" }])
    );
    assert_eq!(capped.body["servers"][0]["cap"], "low");
    assert_eq!(capped.body["servers"][0]["effective"], "low");
    app.put(
        &format!("{agent}/servers/files"),
        json!({ "max_trust_level": "none" }),
    )
    .send()
    .await
    .expect_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some("max_trust_level"),
    );
    app.put(
        &format!("{agent}/servers/nope"),
        json!({ "max_trust_level": "low" }),
    )
    .send()
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    app.put(
        &format!("{agents}/NOPE/servers/files"),
        json!({ "max_trust_level": "low" }),
    )
    .send()
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found", None);

    app.delete(&format!("{agent}/servers/files"))
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    let detail = app.get(&agent).send().await;
    assert_eq!(detail.body["servers"], json!([]), "its session there ended");
    assert_eq!(
        detail.body["caps"][0]["max_trust_level"], "low",
        "the cap stays"
    );

    app.delete(&agent)
        .send()
        .await
        .expect_status(StatusCode::NO_CONTENT);
    app.get(&agent)
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(app.get(&agents).send().await.body["agents"], json!([]));
}
