//! Tests of the event stream settings check.

use std::time::Duration;

use super::*;

fn wanted() -> StreamConfig {
    let config = JetStreamConfig::new(["nats://127.0.0.1:4222"]);
    wanted_event_stream(&Names::new("acme"), &config)
}

#[track_caller]
fn check(change: impl FnOnce(&mut StreamConfig), expected: &[&str]) {
    let mut actual = wanted();
    // What a 2.12+ server echoes for "unlimited".
    actual.max_messages = -1;
    actual.max_bytes = -1;
    actual.max_messages_per_subject = -1;
    change(&mut actual);
    let differences = stream_differences(&wanted(), &actual);
    let names: Vec<&str> = differences
        .iter()
        .map(|d| d.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(names, expected, "{differences:?}");
}

#[test]
fn an_identical_echo_has_no_differences() {
    check(|_| {}, &[]);
}

#[test]
fn settings_a_server_dropped_or_someone_changed_are_named() {
    check(|c| c.subjects = vec!["other.>".to_owned()], &["subjects"]);
    check(|c| c.storage = StorageType::Memory, &["storage"]);
    check(|c| c.num_replicas = 3, &["replicas"]);
    check(|c| c.retention = RetentionPolicy::WorkQueue, &["retention"]);
    check(|c| c.deny_delete = false, &["deny_delete"]);
    check(
        |c| {
            c.deny_purge = false;
            c.discard = DiscardPolicy::Old;
        },
        &["discard", "deny_purge"],
    );
    check(
        |c| c.duplicate_window = Duration::from_secs(5),
        &["duplicate_window"],
    );
    check(
        |c| {
            c.max_messages = 10;
            c.max_age = Duration::from_secs(3600);
        },
        &["max_age", "max_messages"],
    );
    check(|c| c.sealed = true, &["sealed"]);
}

#[test]
fn the_wanted_stream_is_append_only_and_namespaced() {
    let wanted = wanted();
    assert_eq!(wanted.name, "ACME_EVENTS");
    assert_eq!(wanted.subjects, ["acme.evt.>"]);
    assert!(wanted.deny_delete && wanted.deny_purge);
    assert_eq!(wanted.discard, DiscardPolicy::New);
    assert_eq!(wanted.storage, StorageType::File);
    assert_eq!(wanted.duplicate_window, Duration::from_secs(120));
}
