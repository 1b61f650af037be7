//! Discovery against real MCP servers: every page, every tool, the classifier's suggestion.

use portcullis_domain::classify::{ToolAnnotationsInput, classify};
use portcullis_proto::TrustLevel;
use portcullis_upstream::{
    DiscoverError, DiscoverOptions, Discovery, Secret, UrlPolicy, discover, discover_with_token,
};

use test_fixtures::McpPeer;

#[tokio::test]
async fn server_everything_lists_its_tools_with_the_product_rules_levels() {
    let peer = McpPeer::server_everything()
        .await
        .expect("server-everything");
    let url = peer.url().to_owned();
    let discovery = discover(&url, UrlPolicy::DEVELOPMENT, &DiscoverOptions::default())
        .await
        .unwrap();

    assert_eq!(discovery.protocol_version, "2025-11-25");
    assert!(!discovery.server.name.is_empty());
    let names = names(&discovery);
    for expected in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "toggle-subscriber-updates",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Listed only to clients that declared sampling/elicitation/roots: discovery declares
    // every capability, so the catalog also has the tools capable clients will see.
    for capability_tool in [
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "get-roots-list",
    ] {
        assert!(
            names.contains(&capability_tool),
            "{capability_tool}: {names:?}"
        );
    }
    assert_level(&discovery, "echo", TrustLevel::Low, None);
    assert_level(&discovery, "get-sum", TrustLevel::Low, None);
    assert_level(
        &discovery,
        "trigger-long-running-operation",
        TrustLevel::Medium,
        Some("run"),
    );
    assert_level(
        &discovery,
        "toggle-subscriber-updates",
        TrustLevel::Medium,
        Some("update"),
    );
    assert_every_tool_is_classified_by_the_rule(&discovery);
}

#[tokio::test]
async fn every_page_of_a_paged_python_server_is_followed() {
    // Five tools in pages of two, answered as application/json (server-everything covers SSE).
    let peer = McpPeer::python_server(&["--page-size", "2", "--json-response"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let discovery = discover(&url, UrlPolicy::DEVELOPMENT, &DiscoverOptions::default())
        .await
        .unwrap();

    assert_eq!(discovery.server.name, "Notes");
    assert_eq!(
        names(&discovery),
        [
            "list_notes",
            "add_note",
            "delete_note",
            "archive_notes",
            "get_dataset"
        ]
    );
    assert_level(&discovery, "list_notes", TrustLevel::Low, None);
    assert_level(&discovery, "add_note", TrustLevel::Medium, Some("add"));
    assert_level(&discovery, "delete_note", TrustLevel::High, Some("delete"));
    // The substring rule: "get_dataset" contains "set".
    assert_level(&discovery, "get_dataset", TrustLevel::Medium, Some("set"));
    // No keyword, but the server annotates it destructive: raised, and the reason says so.
    let archive = tool(&discovery, "archive_notes");
    assert_eq!(archive.suggested_level, TrustLevel::High);
    assert!(
        archive
            .classification_reason
            .contains("raised to high: annotation destructiveHint is true"),
        "{}",
        archive.classification_reason
    );
    assert_every_tool_is_classified_by_the_rule(&discovery);
    // The session was ended with DELETE (uvicorn's access log shows it).
    assert!(
        eventually(|| peer.log().contains("\"DELETE /mcp HTTP/1.1\" 200")).await,
        "no DELETE in the peer's log:\n{}",
        peer.log()
    );
}

#[tokio::test]
async fn a_page_limit_stops_an_endless_listing() {
    let peer = McpPeer::python_server(&["--page-size", "1"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let options = DiscoverOptions {
        max_pages: 3,
        ..DiscoverOptions::default()
    };
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoverError::LimitExceeded { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{url}: tools/list has more than 3 pages")
    );
}

#[tokio::test]
async fn a_bearer_protected_python_server_asks_for_authorization_and_accepts_a_token() {
    let peer = McpPeer::python_server(&["--auth"])
        .await
        .expect("python server");
    let url = peer.url().to_owned();
    let error = discover(&url, UrlPolicy::DEVELOPMENT, &DiscoverOptions::default())
        .await
        .unwrap_err();
    let DiscoverError::AuthorizationRequired {
        resource_metadata, ..
    } = &error
    else {
        panic!("expected AuthorizationRequired, got {error:?}");
    };
    let metadata_url = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(resource_metadata.as_deref(), Some(metadata_url.as_str()));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{url} requires authorization")),
        "{error}"
    );

    let wrong = discover_with_token(
        &url,
        &Secret::new("wrong-token"),
        UrlPolicy::DEVELOPMENT,
        &DiscoverOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(wrong, DiscoverError::AuthorizationRequired { .. }),
        "{wrong:?}"
    );

    let discovery = discover_with_token(
        &url,
        &Secret::new("notes-token"),
        UrlPolicy::DEVELOPMENT,
        &DiscoverOptions::default(),
    )
    .await
    .unwrap();
    assert!(names(&discovery).contains(&"list_notes"));
}

/// Polls `condition` for up to two seconds (a peer's log lines land a moment after the
/// response).
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..40 {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    condition()
}

fn names(discovery: &Discovery) -> Vec<&str> {
    discovery.tools.iter().map(|t| t.name.as_str()).collect()
}

fn tool<'a>(discovery: &'a Discovery, name: &str) -> &'a portcullis_upstream::DiscoveredTool {
    discovery
        .tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} not discovered"))
}

#[track_caller]
fn assert_level(discovery: &Discovery, name: &str, level: TrustLevel, keyword: Option<&str>) {
    let tool = tool(discovery, name);
    assert_eq!(
        tool.suggested_level, level,
        "{name}: {}",
        tool.classification_reason
    );
    assert_eq!(tool.matched_keyword, keyword, "{name}");
}

/// Every suggestion is exactly what the domain classifier says for the tool as listed, and
/// every schema hash is a SHA-256 in hex.
#[track_caller]
fn assert_every_tool_is_classified_by_the_rule(discovery: &Discovery) {
    for tool in &discovery.tools {
        let hints = tool.annotations.as_ref().map(|a| ToolAnnotationsInput {
            read_only_hint: a.read_only_hint,
            destructive_hint: a.destructive_hint,
        });
        let expected = classify(&tool.name, hints.as_ref(), &tool.input_schema);
        assert_eq!(tool.suggested_level, expected.level, "{}", tool.name);
        assert_eq!(tool.classification_reason, expected.reason, "{}", tool.name);
        assert_eq!(tool.input_schema_sha256.len(), 64, "{}", tool.name);
        assert!(
            tool.input_schema_sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        assert_eq!(tool.raw["name"], tool.name.as_str());
    }
}
