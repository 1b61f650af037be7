//! Tests of audit entry and query validation, the filter predicate and cursor round trips.
#![allow(clippy::unwrap_used)]

use super::*;

fn entry() -> AuditEntry {
    AuditEntry {
        record_id: "01JD3ZQ5V4M7W2".to_owned(),
        host_id: "acme-1".to_owned(),
        time_ms: 1_760_000_000_000,
        human_id: "hum_1".to_owned(),
        agent_id: "agent-1".to_owned(),
        server_id: "srv1".to_owned(),
        tool: "bulk_delete_users".to_owned(),
        decision: AuditDecision::Denied,
        record: Bytes::from_static(b"\x0a\x01x"),
    }
}

#[track_caller]
fn rejected(change: impl FnOnce(&mut AuditEntry)) {
    let mut e = entry();
    change(&mut e);
    let err = validate_audit_entry(&e).unwrap_err();
    assert!(matches!(err, AuditError::Rejected { .. }), "{err:?}");
}

#[test]
fn a_well_formed_entry_passes_and_unknown_fields_may_be_empty() {
    validate_audit_entry(&entry()).unwrap();
    let mut anonymous = entry();
    anonymous.human_id.clear();
    anonymous.agent_id.clear();
    anonymous.server_id.clear();
    anonymous.tool.clear();
    validate_audit_entry(&anonymous).unwrap();
    let mut odd_tool = entry();
    odd_tool.tool = "files.read v2 ✓".to_owned();
    validate_audit_entry(&odd_tool).unwrap();
}

#[test]
fn bad_entries_are_rejected_with_the_reason() {
    rejected(|e| e.record_id.clear());
    rejected(|e| e.host_id.clear());
    rejected(|e| e.host_id = "a.b".to_owned());
    rejected(|e| e.host_id = "_".to_owned());
    rejected(|e| e.human_id = "x".repeat(65));
    rejected(|e| e.agent_id = "a*".to_owned());
    rejected(|e| e.server_id = "s>".to_owned());
    rejected(|e| e.tool = "t\nx".to_owned());
    rejected(|e| e.tool = " padded".to_owned());
    rejected(|e| e.tool = "x".repeat(129));
    rejected(|e| e.time_ms = 0);
    rejected(|e| e.time_ms = MAX_AUDIT_TIME_MS + 1);
    rejected(|e| e.record = Bytes::from(vec![0; MAX_AUDIT_RECORD_BYTES + 1]));
    let mut largest = entry();
    largest.record = Bytes::from(vec![0; MAX_AUDIT_RECORD_BYTES]);
    validate_audit_entry(&largest).unwrap();
}

#[test]
fn a_query_needs_a_host_and_a_sane_limit() {
    let invalid = |filter: AuditFilter, limit: usize| {
        let err = validate_audit_query(&filter, limit).unwrap_err();
        assert!(matches!(err, AuditError::InvalidQuery { .. }), "{err:?}");
    };
    validate_audit_query(&AuditFilter::host("acme-1"), 1).unwrap();
    validate_audit_query(&AuditFilter::host("acme-1"), MAX_AUDIT_PAGE).unwrap();
    invalid(AuditFilter::default(), 10);
    invalid(AuditFilter::host("acme-1"), 0);
    invalid(AuditFilter::host("acme-1"), MAX_AUDIT_PAGE + 1);
    invalid(
        AuditFilter {
            human_id: Some(String::new()),
            ..AuditFilter::host("acme-1")
        },
        10,
    );
    invalid(
        AuditFilter {
            tool: Some("a\tb".to_owned()),
            ..AuditFilter::host("acme-1")
        },
        10,
    );
    invalid(
        AuditFilter {
            since_ms: Some(10),
            until_ms: Some(9),
            ..AuditFilter::host("acme-1")
        },
        10,
    );
}

#[test]
fn the_filter_matches_exactly_and_never_another_host() {
    let e = entry();
    assert!(AuditFilter::host("acme-1").matches(&e));
    assert!(!AuditFilter::host("acme-2").matches(&e));
    let with = |f: AuditFilter| f.matches(&e);
    assert!(with(AuditFilter {
        human_id: Some("hum_1".into()),
        agent_id: Some("agent-1".into()),
        server_id: Some("srv1".into()),
        tool: Some("bulk_delete_users".into()),
        decision: Some(AuditDecision::Denied),
        since_ms: Some(e.time_ms),
        until_ms: Some(e.time_ms),
        ..AuditFilter::host("acme-1")
    }));
    assert!(!with(AuditFilter {
        tool: Some("bulk_delete".into()),
        ..AuditFilter::host("acme-1")
    }));
    assert!(!with(AuditFilter {
        decision: Some(AuditDecision::Allowed),
        ..AuditFilter::host("acme-1")
    }));
    assert!(!with(AuditFilter {
        since_ms: Some(e.time_ms + 1),
        ..AuditFilter::host("acme-1")
    }));
    assert!(!with(AuditFilter {
        until_ms: Some(e.time_ms - 1),
        ..AuditFilter::host("acme-1")
    }));
}

#[test]
fn cursors_round_trip_and_garbage_is_refused() {
    for sequence in [1, 42, u64::MAX] {
        let cursor = AuditCursor::before(sequence);
        let parsed = AuditCursor::parse(&cursor.to_string()).unwrap();
        assert_eq!(parsed, cursor);
        assert_eq!(parsed.before_sequence(), sequence);
    }
    for garbage in [
        "",
        "ac1-",
        "ac1-0",
        "ac1-xyz",
        "42",
        "ac1-10000000000000000",
    ] {
        let err = AuditCursor::parse(garbage).unwrap_err();
        assert!(
            matches!(err, AuditError::InvalidQuery { .. }),
            "{garbage}: {err:?}"
        );
    }
}

#[test]
fn decisions_round_trip_through_their_stored_form() {
    for decision in [AuditDecision::Allowed, AuditDecision::Denied] {
        assert_eq!(AuditDecision::parse(decision.as_str()), Some(decision));
    }
    assert_eq!(AuditDecision::parse("ALLOWED"), None);
}
