//! Tests of the stored JSON shape of read-model values.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[test]
fn a_tombstone_is_stored_as_deleted_with_its_sequence() {
    let value: Versioned<Human> = Versioned {
        applied_through: 42,
        state: State::Deleted,
    };
    assert_eq!(
        serde_json::to_value(&value).unwrap(),
        json!({"deleted": true, "applied_through": 42})
    );
    assert_eq!(
        serde_json::from_value::<Versioned<Human>>(json!({"deleted": true, "applied_through": 42}))
            .unwrap(),
        value
    );
}

#[test]
fn a_live_value_carries_applied_through_beside_its_fields() {
    let value = Versioned {
        applied_through: 7,
        state: State::Live(Grant {
            human_id: "H1".into(),
            server_id: "S1".into(),
            max_trust_level: TrustLevel::Medium,
            issued_sequence: 5,
        }),
    };
    let stored = json!({
        "applied_through": 7,
        "human_id": "H1",
        "server_id": "S1",
        "max_trust_level": "medium",
        "issued_sequence": 5
    });
    assert_eq!(serde_json::to_value(&value).unwrap(), stored);
    assert_eq!(
        serde_json::from_value::<Versioned<Grant>>(stored).unwrap(),
        value
    );
}

#[test]
fn a_value_without_its_sequence_or_with_a_bad_deleted_flag_is_rejected() {
    assert!(
        serde_json::from_value::<Versioned<Human>>(
            json!({"email": "a@b", "pre_authorized": false})
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<Versioned<Human>>(json!({"deleted": "yes", "applied_through": 1}))
            .is_err()
    );
    assert!(serde_json::from_value::<Versioned<Human>>(json!({"applied_through": 1})).is_err());
}

#[test]
fn a_server_stores_its_upstream_timeout_only_when_set() {
    let stored = json!({
        "applied_through": 3,
        "key": "github",
        "url": "https://mcp.example.com/mcp",
        "name": "GitHub",
        "description": "",
        "upstream_auth": {"kind": "none"},
        "tools": {}
    });
    // Values written before the field existed read as "the global default".
    let value = serde_json::from_value::<Versioned<Server>>(stored.clone()).unwrap();
    assert_eq!(value.live().unwrap().timeout_seconds, None);
    assert_eq!(
        serde_json::to_value(&value).unwrap(),
        stored,
        "absent, not null"
    );

    let mut with_timeout = stored;
    with_timeout["timeout_seconds"] = json!(300);
    let value = serde_json::from_value::<Versioned<Server>>(with_timeout.clone()).unwrap();
    assert_eq!(value.live().unwrap().timeout_seconds, Some(300));
    assert_eq!(serde_json::to_value(&value).unwrap(), with_timeout);
}

#[test]
fn tagged_enums_read_naturally() {
    assert_eq!(
        serde_json::to_value(UpstreamAuth::Oauth {
            client_id: "c".into(),
            key_id: "k".into()
        })
        .unwrap(),
        json!({"kind": "oauth", "client_id": "c", "key_id": "k"})
    );
    assert_eq!(
        serde_json::to_value(Classification::AdminOverride).unwrap(),
        json!({"kind": "admin_override"})
    );
    assert_eq!(
        serde_json::to_value(ToolVisibility::Permitted).unwrap(),
        json!("permitted")
    );
}
