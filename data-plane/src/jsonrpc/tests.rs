//! Envelope parsing: every malformed shape gets the right code, good ones keep their bytes.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

fn parse_str(text: &str) -> Result<Message, BadMessage> {
    parse(Bytes::from(text.to_owned()), &Limits::default())
}

#[test]
fn requests_notifications_and_responses_are_told_apart() {
    let call = parse_str(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"a":[1,2]}}}"#,
    )
    .unwrap();
    assert_eq!(call.method(), Some("tools/call"));
    assert_eq!(call.id().unwrap().get(), "7");
    assert_eq!(call.name.as_deref(), Some("echo"));
    assert_eq!(call.arguments.unwrap().get(), r#"{"a":[1,2]}"#);

    let note = parse_str(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert!(
        matches!(&note.kind, Kind::Notification { method } if method == "notifications/initialized")
    );

    let answer = parse_str(r#"{"jsonrpc":"2.0","id":"s-1","result":{"action":"accept"}}"#).unwrap();
    assert!(matches!(answer.kind, Kind::Response));

    let init = parse_str(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}}}}"#,
    )
    .unwrap();
    assert_eq!(init.protocol_version.as_deref(), Some("2025-11-25"));
    assert!(init.capabilities.unwrap().get("sampling").is_some());
}

#[test]
fn malformed_bodies_get_parse_or_invalid_request() {
    for (body, code) in [
        ("", codes::PARSE_ERROR),
        ("{", codes::PARSE_ERROR),
        ("not json", codes::PARSE_ERROR),
        (
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
            codes::INVALID_REQUEST,
        ),
        ("[", codes::PARSE_ERROR),
        ("42", codes::INVALID_REQUEST),
        (r#"{"id":1,"method":"ping"}"#, codes::INVALID_REQUEST),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            codes::INVALID_REQUEST,
        ),
        (r#"{"jsonrpc":"2.0"}"#, codes::INVALID_REQUEST),
        (
            r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#,
            codes::INVALID_REQUEST,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            codes::INVALID_REQUEST,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            codes::INVALID_REQUEST,
        ),
        (r#"{"jsonrpc":"2.0","id":1}"#, codes::INVALID_REQUEST),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
            codes::INVALID_REQUEST,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            codes::INVALID_REQUEST,
        ),
    ] {
        let error = parse_str(body).expect_err(body);
        assert_eq!(error.code(), code, "{body}: {error}");
    }
}

#[test]
fn deep_nesting_is_refused_but_brackets_in_strings_do_not_count() {
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert_eq!(
        check_depth(deep.as_bytes(), 64).unwrap_err().code(),
        codes::PARSE_ERROR
    );
    let shallow = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(check_depth(shallow.as_bytes(), 64).is_ok());
    let quoted = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
    assert!(check_depth(quoted.as_bytes(), 64).is_ok());
}

#[test]
fn error_responses_echo_the_id_and_carry_data() {
    let id = RawValue::from_string("\"abc\"".to_owned()).unwrap();
    let body = error_response(
        Some(&id),
        codes::PERMISSION_DENIED,
        "no",
        Some(json!({"reason":"x"})),
    );
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["id"], "abc");
    assert_eq!(value["error"]["code"], codes::PERMISSION_DENIED);
    assert_eq!(value["error"]["data"]["reason"], "x");
    let anonymous: Value = serde_json::from_slice(&error_response(None, -1, "m", None)).unwrap();
    assert!(anonymous["id"].is_null());
}

#[test]
fn outbound_messages_are_classified() {
    assert!(matches!(
        classify_outbound(br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}}"#),
        Outbound::Request(method, id) if method == "sampling/createMessage" && id.get() == "3"
    ));
    assert!(matches!(
        classify_outbound(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
        Outbound::Response(_)
    ));
    assert!(matches!(
        classify_outbound(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
        Outbound::Other
    ));
    assert!(matches!(classify_outbound(b"garbage"), Outbound::Other));
}
