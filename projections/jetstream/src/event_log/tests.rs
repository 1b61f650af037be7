//! Tests of decoding stored messages: a record the store cannot read back is corrupt, never
//! skipped or guessed at.
#![allow(clippy::unwrap_used)] // a failed unwrap is the test failure

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, *value);
    }
    headers
}

fn good_headers() -> HeaderMap {
    headers(&[
        (EVENT_TYPE_HEADER, "portcullis.v1.GrantIssued"),
        (COMMAND_ID_HEADER, "cmd-1"),
    ])
}

#[track_caller]
fn check(wire_subject: &str, headers: Option<HeaderMap>, expected: Result<(), &str>) {
    let names = Names::new("acme");
    let stored_at = async_nats::datetime::from_nanos(1_760_000_000_123_456_789).unwrap();
    let decoded = decode(
        &names,
        7,
        wire_subject,
        headers.as_ref(),
        Bytes::from_static(b"payload"),
        stored_at,
    );
    match (decoded, expected) {
        (Ok(event), Ok(())) => {
            assert_eq!(event.sequence, 7);
            assert_eq!(event.subject.as_str(), "evt.h1.grant.g1");
            assert_eq!(event.event_type, "portcullis.v1.GrantIssued");
            assert_eq!(event.command_id.as_str(), "cmd-1");
            assert_eq!(event.recorded_at_ms, 1_760_000_000_123);
            assert_eq!(event.payload, Bytes::from_static(b"payload"));
        }
        (Err(LogError::Corrupt { sequence, reason }), Err(wanted)) => {
            assert_eq!(sequence, 7);
            assert!(
                reason.contains(wanted),
                "{reason:?} should mention {wanted:?}"
            );
        }
        (other, wanted) => panic!("got {other:?}, wanted {wanted:?}"),
    }
}

#[test]
fn a_complete_record_decodes_with_the_namespace_stripped() {
    check("acme.evt.h1.grant.g1", Some(good_headers()), Ok(()));
}

#[test]
fn a_record_missing_our_headers_is_corrupt() {
    check("acme.evt.h1.grant.g1", None, Err(EVENT_TYPE_HEADER));
    check(
        "acme.evt.h1.grant.g1",
        Some(headers(&[(COMMAND_ID_HEADER, "cmd-1")])),
        Err(EVENT_TYPE_HEADER),
    );
    // `Nats-Msg-Id` is the server's; our own header must be there.
    check(
        "acme.evt.h1.grant.g1",
        Some(headers(&[
            (EVENT_TYPE_HEADER, "portcullis.v1.GrantIssued"),
            ("Nats-Msg-Id", "cmd-1"),
        ])),
        Err(COMMAND_ID_HEADER),
    );
    check(
        "acme.evt.h1.grant.g1",
        Some(headers(&[
            (EVENT_TYPE_HEADER, "portcullis.v1.GrantIssued"),
            (COMMAND_ID_HEADER, "has space"),
        ])),
        Err("bad command id"),
    );
}

#[test]
fn a_record_with_a_foreign_or_malformed_subject_is_corrupt() {
    check(
        "other.evt.h1.grant.g1",
        Some(good_headers()),
        Err("outside the namespace"),
    );
    check(
        "acme.evt.h1.grant",
        Some(good_headers()),
        Err("bad subject"),
    );
    check(
        "acme.evt.h1.grant.g1.extra",
        Some(good_headers()),
        Err("bad subject"),
    );
}
