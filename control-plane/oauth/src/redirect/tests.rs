//! Redirect URIs of real clients, and the ones that must never pass.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

#[track_caller]
fn check_valid(uri: &str, expected: Result<RedirectKind, RedirectUriError>) {
    assert_eq!(validate(uri), expected, "{uri}");
}

#[test]
fn cursor_vscode_claude_code_and_mcp_remote_uris_are_valid() {
    for (uri, kind) in [
        (
            "cursor://anysphere.cursor-mcp/oauth/callback",
            RedirectKind::PrivateUse,
        ),
        (
            "https://www.cursor.com/agents/mcp/oauth/callback",
            RedirectKind::Https,
        ),
        ("http://localhost:8787/callback", RedirectKind::Loopback),
        ("http://127.0.0.1/", RedirectKind::Loopback),
        ("http://127.0.0.1:33418/", RedirectKind::Loopback),
        ("https://vscode.dev/redirect", RedirectKind::Https),
        ("https://insiders.vscode.dev/redirect", RedirectKind::Https),
        ("http://localhost:54321/callback", RedirectKind::Loopback),
        (
            "http://localhost:33419/oauth/callback",
            RedirectKind::Loopback,
        ),
        ("http://[::1]:8080/cb", RedirectKind::Loopback),
        ("com.example.app:/oauth2redirect", RedirectKind::PrivateUse),
    ] {
        check_valid(uri, Ok(kind));
    }
}

#[test]
fn dangerous_schemes_are_refused() {
    for (uri, scheme) in [
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(1)", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("file:///etc/passwd", "file"),
        ("vbscript:msgbox", "vbscript"),
        ("about:blank", "about"),
        ("blob:https://evil.example/uuid", "blob"),
    ] {
        check_valid(uri, Err(RedirectUriError::ForbiddenScheme(scheme.into())));
    }
}

#[test]
fn fragments_userinfo_remote_http_and_garbage_are_refused() {
    check_valid(
        "https://app.example/cb#frag",
        Err(RedirectUriError::Fragment),
    );
    check_valid("https://app.example/cb#", Err(RedirectUriError::Fragment));
    check_valid(
        "https://user:pw@app.example/cb",
        Err(RedirectUriError::Userinfo),
    );
    check_valid("http://user@127.0.0.1/cb", Err(RedirectUriError::Userinfo));
    check_valid(
        "http://app.example/cb",
        Err(RedirectUriError::InsecureHttp("app.example".into())),
    );
    check_valid(
        "http://127.0.0.2/cb",
        Err(RedirectUriError::InsecureHttp("127.0.0.2".into())),
    );
    check_valid(
        "http://localhost.evil.example/cb",
        Err(RedirectUriError::InsecureHttp(
            "localhost.evil.example".into(),
        )),
    );
    check_valid("/relative/callback", Err(RedirectUriError::Unparsable));
    check_valid("not a uri", Err(RedirectUriError::Unparsable));
    check_valid(
        "https://app.example/cb\n",
        Err(RedirectUriError::Unparsable),
    );
    check_valid("https://app.example/é", Err(RedirectUriError::Unparsable));
    check_valid("", Err(RedirectUriError::Empty));
    check_valid(
        &format!("https://app.example/{}", "a".repeat(MAX_REDIRECT_URI_BYTES)),
        Err(RedirectUriError::TooLong),
    );
}

#[track_caller]
fn check_match(registered: &str, presented: &str, expected: bool) {
    assert_eq!(
        matches(registered, presented),
        expected,
        "{registered} vs {presented}"
    );
}

#[test]
fn loopback_uris_match_on_any_port_and_nothing_else_varies() {
    // VS Code registers port-less and 33418, then listens on a random port.
    check_match("http://127.0.0.1/", "http://127.0.0.1:51234/", true);
    check_match("http://127.0.0.1:33418/", "http://127.0.0.1:40000/", true);
    // Claude Code's metadata document registers port-less localhost URIs.
    check_match(
        "http://localhost/callback",
        "http://localhost:61000/callback",
        true,
    );
    check_match("http://[::1]/cb", "http://[::1]:9999/cb", true);
    check_match(
        "http://localhost/callback",
        "http://localhost:61000/callback/x",
        false,
    );
    check_match(
        "http://localhost/callback",
        "http://127.0.0.1:61000/callback",
        false,
    );
    check_match(
        "http://localhost/callback?a=1",
        "http://localhost:1/callback?a=2",
        false,
    );
    check_match(
        "http://localhost/callback",
        "https://localhost:1/callback",
        false,
    );
}

#[test]
fn https_and_private_use_uris_match_exactly() {
    let cursor = "cursor://anysphere.cursor-mcp/oauth/callback";
    check_match(cursor, cursor, true);
    check_match(
        cursor,
        "cursor://anysphere.cursor-mcp/oauth/callback/",
        false,
    );
    check_match(
        cursor,
        "cursor://anysphere.cursor-mcp:1/oauth/callback",
        false,
    );
    check_match(
        "https://vscode.dev/redirect",
        "https://vscode.dev/redirect",
        true,
    );
    check_match(
        "https://vscode.dev/redirect",
        "https://vscode.dev:8443/redirect",
        false,
    );
    check_match(
        "https://vscode.dev/redirect",
        "https://VSCODE.dev/redirect",
        false,
    );
    check_match(
        "https://vscode.dev/redirect",
        "https://vscode.dev/redirect?x=1",
        false,
    );
}

#[test]
fn a_presented_uri_must_itself_be_valid_and_registered() {
    let registered = vec![
        "cursor://anysphere.cursor-mcp/oauth/callback".to_owned(),
        "http://localhost:8787/callback".to_owned(),
    ];
    assert_eq!(
        find_match(&registered, "http://localhost:9000/callback"),
        Ok("http://localhost:8787/callback")
    );
    assert_eq!(
        find_match(&registered, "https://evil.example/callback"),
        Err(RedirectUriError::NotRegistered)
    );
    assert_eq!(
        find_match(&registered, "javascript:alert(1)"),
        Err(RedirectUriError::ForbiddenScheme("javascript".into()))
    );
}
