//! `GET /api/v1/hosts/{host}/audit` over the SQLite audit log.

use axum::http::StatusCode;
use portcullis_proto::audit::v1 as audit_pb;
use portcullis_proto::events::v1 as pb;
use portcullis_store::{AuditDecision, AuditEntry, AuditLog};
use prost::Message as _;
use serde_json::json;

use crate::support::App;

/// Appends a decision at `time_ms` (record id `r<time_ms>`).
#[allow(clippy::too_many_arguments)]
async fn decide(
    app: &App,
    host: &str,
    time_ms: i64,
    human: (&str, &str),
    server: (&str, &str),
    tool: &str,
    allowed: bool,
) {
    let record_id = format!("01J{time_ms:023}");
    let record = audit_pb::AuditRecord {
        record_id: record_id.clone(),
        time_ms,
        host_id: host.to_owned(),
        human_id: human.0.to_owned(),
        human_email: human.1.to_owned(),
        agent_id: "agent-1".to_owned(),
        client_id: "https://cursor.example/client.json".to_owned(),
        agent_name: "cursor".to_owned(),
        server_id: server.0.to_owned(),
        server_key: server.1.to_owned(),
        tool: tool.to_owned(),
        decision: if allowed {
            audit_pb::Decision::Allowed
        } else {
            audit_pb::Decision::Denied
        } as i32,
        reason: if allowed {
            "allowed"
        } else {
            "trust level too low"
        }
        .to_owned(),
        required_trust: pb::TrustLevel::Medium as i32,
        granted_trust: pb::TrustLevel::Low as i32,
        latency_us: 42,
        request_id: "req-1".to_owned(),
        arguments_sha256: vec![0xab; 32],
    };
    app.store
        .append(AuditEntry {
            record_id,
            host_id: host.to_owned(),
            time_ms,
            human_id: human.0.to_owned(),
            agent_id: "agent-1".to_owned(),
            server_id: server.0.to_owned(),
            tool: tool.to_owned(),
            decision: if allowed {
                AuditDecision::Allowed
            } else {
                AuditDecision::Denied
            },
            record: record.encode_to_vec().into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn decisions_are_filtered_and_paged_newest_first() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let files = app.seed_server(&host, "files").await;
    let ada = app
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
    let ada = (ada.as_str(), "ada@example.com");
    let bob = ("bob-id", "bob@example.com");
    let files = (files.server_id.as_str(), "files");
    let old = ("gone-server", "old");
    let base = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    decide(&app, &host, base, ada, files, "read_file", true).await;
    decide(&app, &host, base + 1000, ada, files, "delete_file", false).await;
    decide(&app, &host, base + 2000, bob, files, "read_file", true).await;
    decide(&app, &host, base + 3000, ada, old, "read_file", true).await;
    // Another host's record is never shown.
    decide(
        &app,
        "globex-other-host-1234",
        base + 4000,
        ada,
        files,
        "read_file",
        true,
    )
    .await;
    let audit = format!("/api/v1/hosts/{host}/audit");
    let times = |body: &serde_json::Value| -> Vec<i64> {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["time_ms"].as_i64().unwrap() - base)
            .collect()
    };

    let all = app.get(&audit).send().await;
    all.expect_status(StatusCode::OK);
    assert_eq!(times(&all.body), [3000, 2000, 1000, 0]);
    assert_eq!(all.body["next_cursor"], json!(null));
    assert_eq!(
        all.body["records"][2],
        json!({
            "id": format!("01J{:023}", base + 1000),
            "time": "2026-01-01T00:00:01.000Z",
            "time_ms": base + 1000,
            "decision": "denied",
            "reason": "trust level too low",
            "human_id": ada.0,
            "human_email": "ada@example.com",
            "agent_id": "agent-1",
            "agent_name": "cursor",
            "client_id": "https://cursor.example/client.json",
            "server_id": files.0,
            "server_key": "files",
            "tool": "delete_file",
            "required_trust_level": "medium",
            "granted_trust_level": "low",
            "latency_us": 42,
            "request_id": "req-1",
            "arguments_sha256": "ab".repeat(32),
        })
    );

    for (query, expected) in [
        ("decision=denied", vec![1000]),
        ("decision=allowed&tool=read_file", vec![3000, 2000, 0]),
        ("human=ADA@example.com", vec![3000, 1000, 0]),
        ("human=bob-id", vec![2000]),
        ("human=carol@example.com", vec![]),
        ("server=files", vec![2000, 1000, 0]),
        ("server=gone-server", vec![3000]),
        ("agent=agent-1&until=2026-01-01T00:00:01Z", vec![1000, 0]),
        (
            &format!("since={}&until={}", base + 1000, base + 2000),
            vec![2000, 1000],
        ),
    ] {
        let page = app.get(&format!("{audit}?{query}")).send().await;
        page.expect_status(StatusCode::OK);
        assert_eq!(times(&page.body), expected, "{query}");
    }

    // Pages of two.
    let first = app.get(&format!("{audit}?limit=2")).send().await;
    assert_eq!(times(&first.body), [3000, 2000]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(&format!("{audit}?limit=2&cursor={cursor}"))
        .send()
        .await;
    assert_eq!(times(&second.body), [1000, 0]);
    assert!(
        second.body["next_cursor"].is_null() || {
            let cursor = second.body["next_cursor"].as_str().unwrap();
            let third = app
                .get(&format!("{audit}?limit=2&cursor={cursor}"))
                .send()
                .await;
            times(&third.body).is_empty()
        }
    );
}

#[tokio::test]
async fn audit_queries_are_validated_and_tenant_scoped() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let audit = format!("/api/v1/hosts/{host}/audit");
    for (query, field) in [
        ("decision=maybe", "decision"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=-5", "until"),
        (
            "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        ("cursor=abc", "cursor"),
        ("agent=a.b", "agent"),
        ("human=not%20an%20id", "human"),
        ("human=bad@", "human"),
        ("colour=red", "colour"),
    ] {
        app.get(&format!("{audit}?{query}"))
            .send()
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request", Some(field));
    }
    let other = app.other_host().await;
    app.get(&format!("/api/v1/hosts/{other}/audit"))
        .send()
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn without_an_audit_log_every_page_is_empty() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let mut state = app.state.clone();
    state.audit = None;
    let router = portcullis_api::router(state);
    let request = axum::http::Request::get(format!("/api/v1/hosts/{host}/audit"))
        .header("authorization", format!("Bearer {}", crate::support::TOKEN))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({ "records": [], "next_cursor": null }));
}

#[tokio::test]
async fn a_humans_detail_shows_their_recent_decisions_newest_first() {
    let app = App::start().await;
    let host = app.host("acme").await;
    let files = app.seed_server(&host, "files").await;
    let ada = app
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
    let files = (files.server_id.as_str(), "files");
    let base = 1_767_225_600_000;
    for i in 0..12 {
        decide(
            &app,
            &host,
            base + i * 1000,
            (&ada, "ada@example.com"),
            files,
            "read_file",
            i % 2 == 0,
        )
        .await;
    }
    // Someone else's decision is not Ada's activity.
    decide(
        &app,
        &host,
        base + 99_000,
        ("bob-id", "bob@example.com"),
        files,
        "read_file",
        true,
    )
    .await;

    let detail = app
        .get(&format!("/api/v1/hosts/{host}/humans/ada@example.com"))
        .send()
        .await;
    detail.expect_status(StatusCode::OK);
    let recent = detail.body["recent_activity"].as_array().unwrap();
    let times: Vec<i64> = recent
        .iter()
        .map(|r| r["time_ms"].as_i64().unwrap() - base)
        .collect();
    assert_eq!(
        times,
        (2..12).rev().map(|i| i * 1000).collect::<Vec<_>>(),
        "the 10 newest, newest first"
    );
    assert!(recent.iter().all(|r| r["tool"] == "read_file"));
}
