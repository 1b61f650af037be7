//! Tests of how one listed tool becomes a `DiscoveredTool`.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[test]
fn a_tool_gets_its_hash_and_the_classifiers_suggestion() {
    let tool = check(
        json!({"name": "bulk_delete_users", "description": "Deletes.", "inputSchema": {"type": "object"}}),
    );
    assert_eq!(tool.suggested_level, TrustLevel::High);
    assert_eq!(tool.matched_keyword, Some("delete"));
    assert_eq!(
        tool.input_schema_sha256,
        schema_sha256(&json!({"type": "object"}))
    );
    assert_eq!(tool.description.as_deref(), Some("Deletes."));
}

#[test]
fn annotations_reach_the_classifier() {
    let tool = check(json!({
        "name": "archive",
        "inputSchema": {"type": "object"},
        "annotations": {"title": "Archive", "destructiveHint": true, "readOnlyHint": "no"}
    }));
    assert_eq!(tool.suggested_level, TrustLevel::High);
    assert!(
        tool.classification_reason.contains("destructiveHint"),
        "{}",
        tool.classification_reason
    );
    assert_eq!(tool.title.as_deref(), Some("Archive"));
    let annotations = tool.annotations.unwrap();
    assert_eq!(annotations.destructive_hint, Some(true));
    // A hint that is not a boolean is ignored.
    assert_eq!(annotations.read_only_hint, None);
}

#[test]
fn unknown_fields_survive_in_raw() {
    let raw = json!({"name": "echo", "inputSchema": {"type": "object"}, "execution": {"taskSupport": "forbidden"}});
    assert_eq!(check(raw.clone()).raw, raw);
}

#[test]
fn tools_without_a_name_or_schema_are_refused() {
    refused(
        json!({"inputSchema": {}}),
        "a tool in tools/list has no name",
    );
    refused(
        json!({"name": "", "inputSchema": {}}),
        "a tool in tools/list has no name",
    );
    refused(
        json!({"name": "echo"}),
        "the tool \"echo\" has no inputSchema object",
    );
    refused(
        json!({"name": "echo", "inputSchema": true}),
        "the tool \"echo\" has no inputSchema object",
    );
}

#[track_caller]
fn check(raw: Value) -> DiscoveredTool {
    parse_tool(&raw).unwrap()
}

#[track_caller]
fn refused(raw: Value, message: &str) {
    assert_eq!(parse_tool(&raw).unwrap_err(), message);
}
