//! Tests of the event envelope codec: what decodes, and the typed error for what does not.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use prost::Message;

use super::*;
use crate::events::v1::{
    Actor, ClearTimeout, EventMeta, GrantIssued, GrantRevoked, ServerDetailsChanged,
    ServerImported, ToolAdded, ToolChanged, actor, server_details_changed,
};
use portcullis_store::{CommandId, Subject};

fn meta() -> Option<EventMeta> {
    Some(EventMeta {
        occurred_at_ms: 1_760_000_000_000,
        actor: Some(Actor {
            kind: Some(actor::Kind::AdminTokenId("T1".to_owned())),
        }),
        correlation_id: "req-1".to_owned(),
    })
}

fn grant_issued(level: i32) -> Event {
    Event {
        meta: meta(),
        body: Some(Body::GrantIssued(GrantIssued {
            human_id: "H1".to_owned(),
            server_id: "S1".to_owned(),
            max_trust_level: level,
        })),
    }
}

/// The record a store would give back for `payload` stored under `event_type`.
fn record(event_type: &str, payload: Bytes) -> RecordedEvent {
    RecordedEvent {
        sequence: 7,
        subject: Subject::new("h1", "grant", "H1-S1").unwrap(),
        event_type: event_type.to_owned(),
        command_id: CommandId::parse("c1").unwrap(),
        recorded_at_ms: 1_760_000_000_001,
        payload,
    }
}

fn recorded(event: Event) -> RecordedEvent {
    let new = encode_event(event);
    record(&new.event_type, new.payload)
}

#[test]
fn an_encoded_event_decodes_back_unchanged() {
    let event = grant_issued(TrustLevel::Medium.into());
    let new = encode_event(event.clone());
    assert_eq!(new.event_type, "GrantIssued");
    assert_eq!(decode_event(&recorded(event.clone())).unwrap(), event);
}

#[test]
fn the_event_type_is_the_body_variant_name() {
    assert_eq!(event_type(&grant_issued(1)), "GrantIssued");
    assert_eq!(event_type(&Event::default()), "Empty");
    assert!(!EVENT_TYPES.contains(&"Empty"));
    assert_eq!(EVENT_TYPES.len(), 49);
}

#[test]
fn a_body_that_disagrees_with_the_stored_type_is_an_error() {
    let new = encode_event(grant_issued(1));
    let err = decode_event(&record("GrantRevoked", new.payload)).unwrap_err();
    assert!(
        matches!(&err, DecodeError::TypeMismatch { event_type, body: "GrantIssued", .. } if event_type == "GrantRevoked"),
        "{err:?}"
    );
}

#[test]
fn a_missing_body_is_an_error() {
    let empty = Event {
        meta: meta(),
        body: None,
    };
    let err = decode_event(&record("GrantIssued", empty.encode_to_vec().into())).unwrap_err();
    assert!(
        matches!(err, DecodeError::MissingBody { sequence: 7, .. }),
        "{err:?}"
    );
}

#[test]
fn a_body_from_a_newer_version_is_an_unknown_type_not_a_skip() {
    // Field 999 of the envelope is a body this build does not know: prost drops it, so the
    // event arrives without a body and the stored type name tells what it was.
    let mut payload = Event {
        meta: meta(),
        body: None,
    }
    .encode_to_vec();
    // Tag of field 999, wire type 2 (length-delimited), then an empty message.
    prost::encoding::encode_key(
        999,
        prost::encoding::WireType::LengthDelimited,
        &mut payload,
    );
    prost::encoding::encode_varint(0, &mut payload);
    let err = decode_event(&record("GrantSuspended", payload.into())).unwrap_err();
    assert!(
        matches!(&err, DecodeError::UnknownEventType { event_type, .. } if event_type == "GrantSuspended"),
        "{err:?}"
    );
}

#[test]
fn garbage_bytes_are_a_payload_error() {
    let err =
        decode_event(&record("GrantIssued", Bytes::from_static(b"\xff\xff\xff"))).unwrap_err();
    assert!(matches!(err, DecodeError::Payload { .. }), "{err:?}");
}

#[test]
fn an_unspecified_trust_level_is_rejected() {
    let err = decode_event(&recorded(grant_issued(0))).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err:?}");
    let err = decode_event(&recorded(grant_issued(17))).unwrap_err();
    assert!(matches!(err, DecodeError::Invalid { .. }), "{err:?}");

    let unset_change = Event {
        meta: meta(),
        body: Some(Body::ToolChanged(ToolChanged {
            name: "read_file".to_owned(),
            trust_level: None,
            enabled: Some(false),
            classification: None,
        })),
    };
    assert!(
        decode_event(&recorded(unset_change)).is_ok(),
        "unset optional level is fine"
    );
    let unspecified_change = Event {
        meta: meta(),
        body: Some(Body::ToolChanged(ToolChanged {
            name: "read_file".to_owned(),
            trust_level: Some(0),
            enabled: None,
            classification: None,
        })),
    };
    assert!(decode_event(&recorded(unspecified_change)).is_err());
}

#[test]
fn required_parts_must_be_present() {
    let no_tool = Event {
        meta: meta(),
        body: Some(Body::ToolAdded(ToolAdded { tool: None })),
    };
    assert!(matches!(
        decode_event(&recorded(no_tool)),
        Err(DecodeError::Invalid { .. })
    ));
    let no_meta = Event {
        meta: None,
        body: Some(Body::GrantRevoked(GrantRevoked {})),
    };
    assert!(matches!(
        decode_event(&recorded(no_meta)),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn an_upstream_timeout_outside_1_to_3600_seconds_is_rejected() {
    let imported = |timeout_seconds| Event {
        meta: meta(),
        body: Some(Body::ServerImported(ServerImported {
            server_id: "S1".to_owned(),
            key: "github".to_owned(),
            timeout_seconds,
            ..ServerImported::default()
        })),
    };
    let changed = |timeout| Event {
        meta: meta(),
        body: Some(Body::ServerDetailsChanged(ServerDetailsChanged {
            name: None,
            description: None,
            timeout,
        })),
    };
    let seconds = server_details_changed::Timeout::TimeoutSeconds;
    let cleared = server_details_changed::Timeout::ClearTimeout(ClearTimeout {});
    for valid in [
        imported(None),
        imported(Some(1)),
        imported(Some(3600)),
        changed(None),
        changed(Some(seconds(30))),
        changed(Some(cleared)),
    ] {
        assert_eq!(decode_event(&recorded(valid.clone())).unwrap(), valid);
    }
    for invalid in [
        imported(Some(0)),
        imported(Some(3601)),
        changed(Some(seconds(0))),
        changed(Some(seconds(u64::MAX))),
    ] {
        let err = decode_event(&recorded(invalid)).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Invalid { reason, .. } if reason.contains("timeout_seconds")),
            "{err:?}"
        );
    }
}
