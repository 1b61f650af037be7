//! The OpenAPI document: served without a token, valid OpenAPI 3.1 (checked by
//! `openapi-spec-validator`), and exactly the routes the router serves.

use std::collections::BTreeSet;
use std::process::Command;

use axum::http::{Method, StatusCode};
use serde_json::Value;
use test_fixtures::installed_tool;

use crate::support::App;

/// The REST contract: every operation, as (method, path template).
const CONTRACT: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/organizations"),
    ("POST", "/api/v1/organizations"),
    ("GET", "/api/v1/hosts"),
    ("POST", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{host}"),
    ("PATCH", "/api/v1/hosts/{host}"),
    ("DELETE", "/api/v1/hosts/{host}"),
    ("GET", "/api/v1/hosts/{host}/client-config"),
    ("GET", "/api/v1/hosts/{host}/saml/metadata"),
    ("GET", "/api/v1/hosts/{host}/signing-keys"),
    ("POST", "/api/v1/hosts/{host}/signing-keys"),
    ("DELETE", "/api/v1/hosts/{host}/signing-keys/{kid}"),
    ("POST", "/api/v1/hosts/{host}/servers/discover"),
    ("GET", "/api/v1/hosts/{host}/servers"),
    ("POST", "/api/v1/hosts/{host}/servers"),
    ("GET", "/api/v1/hosts/{host}/servers/{key}"),
    ("PATCH", "/api/v1/hosts/{host}/servers/{key}"),
    ("DELETE", "/api/v1/hosts/{host}/servers/{key}"),
    ("POST", "/api/v1/hosts/{host}/servers/{key}/refresh"),
    ("POST", "/api/v1/hosts/{host}/servers/{key}/tools"),
    ("PATCH", "/api/v1/hosts/{host}/servers/{key}/tools/{tool}"),
    ("DELETE", "/api/v1/hosts/{host}/servers/{key}/tools/{tool}"),
    ("POST", "/api/v1/hosts/{host}/humans"),
    ("GET", "/api/v1/hosts/{host}/humans"),
    ("GET", "/api/v1/hosts/{host}/humans/{email}"),
    ("DELETE", "/api/v1/hosts/{host}/humans/{email}"),
    (
        "PUT",
        "/api/v1/hosts/{host}/humans/{email}/grants/{server_key}",
    ),
    (
        "DELETE",
        "/api/v1/hosts/{host}/humans/{email}/grants/{server_key}",
    ),
    ("GET", "/api/v1/hosts/{host}/agents"),
    ("POST", "/api/v1/hosts/{host}/agents"),
    ("GET", "/api/v1/hosts/{host}/agents/{agent_id}"),
    ("DELETE", "/api/v1/hosts/{host}/agents/{agent_id}"),
    (
        "PUT",
        "/api/v1/hosts/{host}/agents/{agent_id}/servers/{server_key}",
    ),
    (
        "DELETE",
        "/api/v1/hosts/{host}/agents/{agent_id}/servers/{server_key}",
    ),
    ("GET", "/api/v1/hosts/{host}/audit"),
    ("GET", "/api/v1/upstream-oauth/callback"),
];

async fn document(app: &App) -> Value {
    let response = app.get("/api/v1/openapi.json").token(None).send().await;
    response.expect_status(StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    response.body
}

fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_document_lists_exactly_the_contract() {
    let app = App::start().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented = operations(&document);
    let contract: BTreeSet<(String, String)> = CONTRACT
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, contract);

    // Every operation names its errors with the one error body, and every write takes an
    // Idempotency-Key.
    for (method, path) in &documented {
        let operation = &document["paths"][path][method.to_lowercase()];
        let responses = operation["responses"].as_object().unwrap();
        if path == "/api/v1/openapi.json" {
            continue;
        }
        // A browser redirect carries no token: the sealed state is the proof.
        let public = path == "/api/v1/upstream-oauth/callback";
        assert_eq!(responses.contains_key("401"), !public, "{method} {path}");
        assert!(responses.contains_key("400"), "{method} {path}");
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{method} {path}");
        }
        if operation["requestBody"].is_object() {
            assert!(responses.contains_key("415"), "{method} {path}");
            assert!(responses.contains_key("413"), "{method} {path}");
        }
        let idempotency = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key");
        let records = method != "GET" && !path.ends_with("/servers/discover");
        assert_eq!(idempotency, records, "{method} {path}");
    }
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = App::start().await;
    let document = document(&app).await;
    for (method, path) in operations(&document) {
        let concrete = path
            .replace("{host}", "no-such-host-1234")
            .replace("{email}", "ada@example.com")
            .replace('{', "x")
            .replace('}', "");
        let method: Method = method.parse().unwrap();
        let response = app.request(method.clone(), &concrete).send().await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not routed"
        );
        assert_ne!(
            response.body["error"]["message"], "no such endpoint",
            "{method} {path} is not routed"
        );
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi() {
    let app = App::start().await;
    let document = document(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let python = installed_tool("PORTCULLIS_OPENAPI_PYTHON", "ensure_schemathesis")
        .expect("openapi-spec-validator's python");
    let output = Command::new(python)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n\
             print('valid')",
        )
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
