//! Tests of config validation and of the wire names a namespace produces.
#![allow(clippy::unwrap_used)] // a failed unwrap is the test failure

use super::*;

#[track_caller]
fn check_namespace(namespace: &str, valid: bool) {
    let config = JetStreamConfig {
        namespace: namespace.to_owned(),
        ..JetStreamConfig::new(["nats://127.0.0.1:4222"])
    };
    match config.validate() {
        Ok(()) => assert!(valid, "{namespace:?} was accepted"),
        Err(err) => {
            assert!(!valid, "{namespace:?} was refused: {err}");
            assert_eq!(err.setting, "namespace");
        }
    }
}

#[test]
fn namespaces_are_short_lowercase_tokens() {
    check_namespace("portcullis", true);
    check_namespace("t-1_a", true);
    check_namespace(&"a".repeat(MAX_NAMESPACE_LEN), true);
    check_namespace("", false);
    check_namespace(&"a".repeat(MAX_NAMESPACE_LEN + 1), false);
    check_namespace("Upper", false);
    check_namespace("has.dot", false);
    check_namespace("wild*", false);
    check_namespace("wild>", false);
    check_namespace("has space", false);
}

#[test]
fn replicas_must_be_odd_and_at_most_five() {
    for (replicas, valid) in [
        (0, false),
        (1, true),
        (2, false),
        (3, true),
        (5, true),
        (7, false),
    ] {
        let config = JetStreamConfig {
            replicas,
            ..JetStreamConfig::new(["nats://127.0.0.1:4222"])
        };
        assert_eq!(config.validate().is_ok(), valid, "replicas {replicas}");
    }
}

#[test]
fn other_settings_are_checked() {
    let base = JetStreamConfig::new(["nats://127.0.0.1:4222"]);
    assert_eq!(base.validate(), Ok(()));
    let refused = |config: JetStreamConfig| config.validate().unwrap_err().setting;
    assert_eq!(refused(JetStreamConfig::new(Vec::<String>::new())), "urls");
    assert_eq!(refused(JetStreamConfig::new([" "])), "urls");
    assert_eq!(
        refused(JetStreamConfig {
            duplicate_window: Duration::from_secs(60),
            ..base.clone()
        }),
        "duplicate_window"
    );
    assert_eq!(
        refused(JetStreamConfig {
            publish_attempts: 0,
            ..base.clone()
        }),
        "publish_attempts"
    );
    for kv_history in [0, MAX_KV_HISTORY + 1] {
        assert_eq!(
            refused(JetStreamConfig {
                kv_history,
                ..base.clone()
            }),
            "kv_history"
        );
    }
    assert_eq!(
        refused(JetStreamConfig {
            audit_append_timeout: Duration::ZERO,
            ..base.clone()
        }),
        "audit_append_timeout"
    );
    assert_eq!(
        refused(JetStreamConfig {
            request_timeout: Duration::ZERO,
            ..base
        }),
        "connect_timeout/request_timeout"
    );
}

#[test]
fn wire_names_carry_the_namespace() {
    let names = Names::new("acme-1");
    assert_eq!(names.event_stream(), "ACME-1_EVENTS");
    assert_eq!(names.event_stream_subjects(), ["acme-1.evt.>"]);
    let subject = Subject::new("h1", "grant", "g1").unwrap();
    assert_eq!(names.wire_subject(&subject), "acme-1.evt.h1.grant.g1");
    let filter = SubjectFilter::parse("evt.*.grant.*").unwrap();
    assert_eq!(names.wire_filter(&filter), "acme-1.evt.*.grant.*");
    assert_eq!(
        names.strip_namespace("acme-1.evt.h1.grant.g1"),
        Some("evt.h1.grant.g1")
    );
    assert_eq!(names.strip_namespace("other.evt.h1.grant.g1"), None);
    assert_eq!(
        names.kv_bucket(&Bucket::new("policy").unwrap()),
        "acme-1_policy"
    );
}

#[test]
fn audit_settings_are_checked_and_named() {
    let base = JetStreamConfig::new(["nats://127.0.0.1:4222"]);
    assert_eq!(base.audit_max_age, Duration::from_secs(90 * 24 * 60 * 60));
    assert_eq!(base.audit_time_slack, Duration::from_secs(120));
    let short = JetStreamConfig {
        audit_max_age: Duration::from_secs(60),
        ..base.clone()
    };
    assert_eq!(short.validate().unwrap_err().setting, "audit_max_age");
    let slack = JetStreamConfig {
        audit_time_slack: Duration::from_secs(2 * 24 * 60 * 60),
        ..base
    };
    assert_eq!(slack.validate().unwrap_err().setting, "audit_time_slack");
    let names = Names::new("acme");
    assert_eq!(names.audit_stream(), "ACME_AUDIT");
    assert_eq!(names.audit_subject_prefix(), "acme.audit");
}
