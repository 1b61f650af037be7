//! Handles open only as sealed, on any holder of the key ring, and never show upstream ids.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

fn ring() -> KeyRing {
    KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn handle() -> SessionHandle {
    SessionHandle {
        host_id: "h".into(),
        server_id: "s".into(),
        sid: "sid-1".into(),
        upstream_session: Some("upstream-secret-session".into()),
        protocol_version: "2025-11-25".into(),
        capabilities: ClientCapabilities {
            sampling: true,
            elicitation: false,
            roots: true,
        },
    }
}

#[test]
fn a_sealed_handle_opens_on_another_replica_and_hides_the_upstream_id() {
    let sealed = handle().seal(&ring()).unwrap();
    assert!(!sealed.contains("upstream-secret-session"));
    assert!(
        sealed.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "visible ASCII only"
    );
    // A second replica has its own copy of the same key ring.
    assert_eq!(SessionHandle::open(&ring(), &sealed).unwrap(), handle());
    // Two seals of the same handle differ (random nonce).
    assert_ne!(sealed, handle().seal(&ring()).unwrap());
}

#[test]
fn tampered_foreign_and_oversized_handles_do_not_open() {
    let sealed = handle().seal(&ring()).unwrap();
    let mut tampered = sealed.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_ring = KeyRing::parse("k1:HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=").unwrap();
    for bad in [
        tampered.as_str(),
        "",
        "pcs1",
        "pcs1.k1",
        "pcs1.k1.!!!",
        "pcs1.nokey.AAAA",
        &"x".repeat(MAX_SEALED_LEN + 1),
    ] {
        assert_eq!(SessionHandle::open(&ring(), bad), Err(BadHandle), "{bad:?}");
    }
    assert_eq!(SessionHandle::open(&other_ring, &sealed), Err(BadHandle));
    // An event id is not a handle.
    let event = handle().seal_event_id(&ring(), "7").unwrap();
    assert_eq!(SessionHandle::open(&ring(), &event), Err(BadHandle));
}

#[test]
fn event_ids_open_only_for_the_session_that_saw_them() {
    let event = handle().seal_event_id(&ring(), "stream-1/42").unwrap();
    assert!(!event.contains("stream-1"));
    assert_eq!(
        handle().open_event_id(&ring(), &event).unwrap(),
        "stream-1/42"
    );
    let other = SessionHandle {
        upstream_session: Some("another".into()),
        ..handle()
    };
    assert_eq!(other.open_event_id(&ring(), &event), Err(BadHandle));
}

#[test]
fn declared_capabilities_gate_server_requests() {
    let caps = ClientCapabilities::from_declared(Some(&serde_json::json!({
        "sampling": {}, "roots": {"listChanged": true}
    })));
    assert!(caps.allows("sampling/createMessage"));
    assert!(caps.allows("roots/list"));
    assert!(!caps.allows("elicitation/create"));
    assert!(caps.allows("ping"));
    let none = ClientCapabilities::from_declared(None);
    assert!(!none.allows("sampling/createMessage"));
}
