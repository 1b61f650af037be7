//! Tests of `WWW-Authenticate` parsing on the shapes real MCP servers send.

use super::*;

#[test]
fn the_ts_sdk_challenge_yields_its_resource_metadata() {
    check(
        &[
            r#"Bearer error="invalid_token", error_description="Missing Authorization header", resource_metadata="http://localhost:3200/.well-known/oauth-protected-resource/mcp""#,
        ],
        Some(BearerChallenge {
            resource_metadata: Some(
                "http://localhost:3200/.well-known/oauth-protected-resource/mcp".into(),
            ),
            scope: None,
            error: Some("invalid_token".into()),
            error_description: Some("Missing Authorization header".into()),
        }),
    );
}

#[test]
fn scope_and_unquoted_values_are_read() {
    check(
        &[r#"Bearer error=insufficient_scope, scope="notes:read notes:write""#],
        Some(BearerChallenge {
            scope: Some("notes:read notes:write".into()),
            error: Some("insufficient_scope".into()),
            ..BearerChallenge::default()
        }),
    );
}

#[test]
fn the_bearer_challenge_is_found_among_others_and_case_insensitively() {
    check(
        &[r#"Basic realm="x, y", bearer resource_metadata="https://a/b""#],
        Some(BearerChallenge {
            resource_metadata: Some("https://a/b".into()),
            ..BearerChallenge::default()
        }),
    );
    check(
        &["Basic realm=\"x\"", "Bearer"],
        Some(BearerChallenge::default()),
    );
}

#[test]
fn escaped_quotes_inside_values_are_unescaped() {
    check(
        &[r#"Bearer error_description="say \"hi\", then go""#],
        Some(BearerChallenge {
            error_description: Some(r#"say "hi", then go"#.into()),
            ..BearerChallenge::default()
        }),
    );
}

#[test]
fn no_bearer_challenge_means_none() {
    check(&[r#"Basic realm="x""#], None);
    check(&[], None);
    check(&[""], None);
}

#[track_caller]
fn check(headers: &[&str], expected: Option<BearerChallenge>) {
    assert_eq!(parse_bearer_challenge(headers.iter().copied()), expected);
}
