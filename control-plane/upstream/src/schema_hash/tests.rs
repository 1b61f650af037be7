//! Tests of the canonical schema hash.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use serde_json::json;

use super::*;

#[test]
fn key_order_does_not_change_the_hash() {
    let a: Value = serde_json::from_str(
        r#"{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"integer"}}}"#,
    )
    .unwrap();
    let b: Value = serde_json::from_str(r#"{ "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "type": "object" }"#).unwrap();
    check(
        &a,
        r#"{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}"#,
    );
    assert_eq!(schema_sha256(&a), schema_sha256(&b));
}

#[test]
fn array_order_and_values_do_change_the_hash() {
    assert_ne!(
        schema_sha256(&json!({"required": ["a", "b"]})),
        schema_sha256(&json!({"required": ["b", "a"]}))
    );
    assert_ne!(
        schema_sha256(&json!({"type": "object"})),
        schema_sha256(&json!({"type": "string"}))
    );
}

#[test]
fn strings_are_escaped_and_the_hash_is_hex_sha256() {
    check(
        &json!({"k\"ey": "line\nbreak"}),
        r#"{"k\"ey":"line\nbreak"}"#,
    );
    assert_eq!(
        schema_sha256(&json!({})),
        // sha256("{}")
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
}

#[track_caller]
fn check(value: &Value, canonical: &str) {
    assert_eq!(canonical_json(value), canonical);
}
