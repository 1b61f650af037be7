//! Tests of the sanitizing of provider text in errors.

use super::*;

#[test]
fn an_error_code_keeps_only_the_characters_rfc_6749_allows() {
    assert_eq!(sanitize_error_code("access_denied"), "access_denied");
    assert_eq!(sanitize_error_code("bad\"code\\\n<x>"), "badcode<x>");
    assert_eq!(sanitize_error_code("ünicode"), "nicode");
    assert_eq!(sanitize_error_code("\u{7}\u{1b}"), "unknown_error");
    assert_eq!(
        sanitize_error_code(&"e".repeat(500)).len(),
        MAX_ERROR_CODE_CHARS
    );
}

#[test]
fn a_description_loses_control_characters_and_is_cut() {
    assert_eq!(
        sanitize_text("line one\r\nline two\u{0}", 100),
        "line one  line two"
    );
    let long = "x".repeat(MAX_DESCRIPTION_CHARS + 50);
    let cut = sanitize_text(&long, MAX_DESCRIPTION_CHARS);
    assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS + 1);
    assert!(cut.ends_with('…'));
}

#[test]
fn a_denial_shows_the_code_and_the_sanitized_description() {
    let error = denied("access_denied", Some("The user\ncancelled"));
    assert_eq!(
        error.to_string(),
        "the identity provider refused the sign-in (access_denied): The user cancelled"
    );
    let error = denied("server_error", Some("  "));
    assert!(matches!(
        &error,
        IdpError::Denied {
            description: None,
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "the identity provider refused the sign-in (server_error)"
    );
}

#[test]
fn an_unreachable_provider_message_leaves_transport_details_to_the_source() {
    let error = IdpError::Unreachable {
        what: "token endpoint",
        source: HttpFailure::TooLarge { limit: 10 },
    };
    assert_eq!(
        error.to_string(),
        "the identity provider's token endpoint could not be reached or did not answer properly"
    );
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some("the response is larger than 10 bytes")
    );
}
