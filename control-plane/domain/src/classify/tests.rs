//! Tests of the automatic tool classification: the exact name rule, then the signals that may
//! only raise it.

use serde_json::json;

use super::*;

const READ_ONLY: ToolAnnotationsInput = ToolAnnotationsInput {
    read_only_hint: Some(true),
    destructive_hint: None,
};
const NOT_READ_ONLY: ToolAnnotationsInput = ToolAnnotationsInput {
    read_only_hint: Some(false),
    destructive_hint: None,
};
const DESTRUCTIVE: ToolAnnotationsInput = ToolAnnotationsInput {
    read_only_hint: None,
    destructive_hint: Some(true),
};
const NOT_DESTRUCTIVE: ToolAnnotationsInput = ToolAnnotationsInput {
    read_only_hint: Some(false),
    destructive_hint: Some(false),
};

#[test]
fn every_high_keyword_makes_a_tool_high_wherever_it_appears() {
    for keyword in HIGH_KEYWORDS {
        check(keyword, None, json!({}), TrustLevel::High, Some(keyword));
        check(
            &format!("bulk_{keyword}_users"),
            None,
            json!({}),
            TrustLevel::High,
            Some(keyword),
        );
        check(
            &format!("x{keyword}y"),
            None,
            json!({}),
            TrustLevel::High,
            Some(keyword),
        );
    }
}

#[test]
fn every_medium_keyword_makes_a_tool_medium_wherever_it_appears() {
    for keyword in MEDIUM_KEYWORDS {
        check(keyword, None, json!({}), TrustLevel::Medium, Some(keyword));
        check(
            &format!("do-{keyword}-it"),
            None,
            json!({}),
            TrustLevel::Medium,
            Some(keyword),
        );
    }
}

#[test]
fn names_are_matched_case_insensitively() {
    check(
        "BulkDeleteUsers",
        None,
        json!({}),
        TrustLevel::High,
        Some("delete"),
    );
    check(
        "CreateIssue",
        None,
        json!({}),
        TrustLevel::Medium,
        Some("create"),
    );
    check("LIST_FILES", None, json!({}), TrustLevel::Low, None);
}

#[test]
fn a_high_keyword_wins_over_a_medium_one_in_the_same_name() {
    check(
        "update_or_delete",
        None,
        json!({}),
        TrustLevel::High,
        Some("delete"),
    );
    check(
        "create_then_kill",
        None,
        json!({}),
        TrustLevel::High,
        Some("kill"),
    );
}

#[test]
fn substrings_count_even_when_they_read_oddly() {
    // The product rule is a plain substring match; admins override these.
    check(
        "get_dataset",
        None,
        json!({}),
        TrustLevel::Medium,
        Some("set"),
    );
    check(
        "address_lookup",
        None,
        json!({}),
        TrustLevel::Medium,
        Some("add"),
    );
    check(
        "output_format",
        None,
        json!({}),
        TrustLevel::Medium,
        Some("put"),
    );
    check(
        "skill_list",
        None,
        json!({}),
        TrustLevel::High,
        Some("kill"),
    );
    check(
        "trigger-long-running-operation",
        None,
        json!({}),
        TrustLevel::Medium,
        Some("run"),
    );
}

#[test]
fn names_without_keywords_are_low() {
    for name in [
        "echo",
        "get_sum",
        "list_files",
        "greet",
        "search",
        "read_file",
        "",
    ] {
        check(name, None, json!({}), TrustLevel::Low, None);
    }
}

#[test]
fn the_reason_names_the_matched_keyword_or_its_absence() {
    let high = classify("bulk_delete_users", None, &json!({}));
    assert_eq!(high.reason, "name contains \"delete\" (high)");
    let low = classify("echo", None, &json!({}));
    assert_eq!(low.reason, "name contains no keyword (low)");
}

#[test]
fn destructive_hint_raises_to_high_and_says_so() {
    let raised = check("echo", Some(DESTRUCTIVE), json!({}), TrustLevel::High, None);
    assert_eq!(
        raised.reason,
        "name contains no keyword (low); raised to high: annotation destructiveHint is true"
    );
    check(
        "update_row",
        Some(DESTRUCTIVE),
        json!({}),
        TrustLevel::High,
        Some("update"),
    );
}

#[test]
fn read_only_hint_false_raises_to_medium_and_says_so() {
    let raised = check(
        "echo",
        Some(NOT_READ_ONLY),
        json!({}),
        TrustLevel::Medium,
        None,
    );
    assert_eq!(
        raised.reason,
        "name contains no keyword (low); raised to medium: annotation readOnlyHint is false"
    );
}

#[test]
fn annotations_never_lower_a_level() {
    let kept = check(
        "delete_user",
        Some(READ_ONLY),
        json!({}),
        TrustLevel::High,
        Some("delete"),
    );
    assert_eq!(kept.reason, "name contains \"delete\" (high)");
    check(
        "delete_user",
        Some(NOT_DESTRUCTIVE),
        json!({}),
        TrustLevel::High,
        Some("delete"),
    );
    check(
        "create_user",
        Some(READ_ONLY),
        json!({}),
        TrustLevel::Medium,
        Some("create"),
    );
}

#[test]
fn absent_hints_change_nothing() {
    check(
        "echo",
        Some(ToolAnnotationsInput::default()),
        json!({}),
        TrustLevel::Low,
        None,
    );
    check("echo", Some(READ_ONLY), json!({}), TrustLevel::Low, None);
}

#[test]
fn a_dry_run_flag_in_the_schema_raises_to_medium() {
    let schema = json!({"type": "object", "properties": {"path": {"type": "string"}, "dryRun": {"type": "boolean"}}});
    let raised = check("archive_logs", None, schema, TrustLevel::Medium, None);
    assert_eq!(
        raised.reason,
        "name contains no keyword (low); raised to medium: input schema has a \"dryRun\" flag, \
         so a real run changes something"
    );
    let nested =
        json!({"type": "object", "properties": {"options": {"properties": {"dry_run": {}}}}});
    check("archive_logs", None, nested, TrustLevel::Low, None);
    check(
        "archive_logs",
        None,
        json!("not an object"),
        TrustLevel::Low,
        None,
    );
}

#[test]
fn several_raises_are_all_explained_in_order() {
    let both = ToolAnnotationsInput {
        read_only_hint: Some(false),
        destructive_hint: Some(true),
    };
    let raised = check("echo", Some(both), json!({}), TrustLevel::High, None);
    // Once high, the weaker readOnlyHint signal raises nothing and is not mentioned.
    assert_eq!(
        raised.reason,
        "name contains no keyword (low); raised to high: annotation destructiveHint is true"
    );
}

/// The one place these tests call the classifier: name, annotations and schema in, level and
/// matched keyword checked; the classification is returned for reason checks.
#[track_caller]
fn check(
    name: &str,
    annotations: Option<ToolAnnotationsInput>,
    input_schema: serde_json::Value,
    level: TrustLevel,
    keyword: Option<&str>,
) -> Classification {
    let classification = classify(name, annotations.as_ref(), &input_schema);
    assert_eq!(
        classification.level, level,
        "{name}: {}",
        classification.reason
    );
    assert_eq!(classification.matched_keyword, keyword, "{name}");
    if let Some(keyword) = keyword {
        assert!(
            classification.reason.contains(keyword),
            "{}",
            classification.reason
        );
    }
    classification
}
