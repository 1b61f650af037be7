//! Tests of the SSE framing helpers.

use super::*;

#[test]
fn a_priming_event_has_no_data() {
    check(b"id: 1\ndata:\n\n", None);
    check(b": keep-alive comment\n\n", None);
}

#[test]
fn data_lines_are_joined_and_the_leading_space_dropped() {
    check(
        b"event: message\nid: 7\ndata: {\"a\":\ndata: 1}\n\n",
        Some("{\"a\":\n1}"),
    );
    check(b"data:{}\n\n", Some("{}"));
}

#[test]
fn events_of_other_types_are_skipped() {
    check(b"event: endpoint\ndata: /x\n\n", None);
}

#[test]
fn an_event_ends_at_the_first_blank_line() {
    assert_eq!(find_event_end(b"data: 1\n\ndata: 2\n\n"), Some(7));
    assert_eq!(find_event_end(b"data: 1\n"), None);
}

#[track_caller]
fn check(event: &[u8], data: Option<&str>) {
    assert_eq!(event_data(event).as_deref(), data);
}
