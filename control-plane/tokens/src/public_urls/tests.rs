//! Tests of public URLs and snippets.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use super::*;

#[test]
fn dev_serves_its_default_host_on_the_listen_address_and_others_on_localhost() {
    let urls = PublicUrls::dev("127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(
        urls.mcp_url("default-x-y-1", true),
        "http://127.0.0.1:8080/mcp"
    );
    assert_eq!(
        urls.mcp_url("acme-x-y-1", false),
        "http://acme-x-y-1.localhost:8080/mcp"
    );
    assert_eq!(
        urls.server_mcp_url("acme-x-y-1", false, "github"),
        "http://acme-x-y-1.localhost:8080/mcp/github"
    );
}

#[test]
fn a_deployment_uses_its_wildcard_domain_without_default_ports() {
    let urls = PublicUrls {
        scheme: "https".into(),
        base_domain: Some("gw.example.com".into()),
        port: Some(443),
        default_host_base: None,
    };
    assert_eq!(
        urls.mcp_url("acme-x-y-1", false),
        "https://acme-x-y-1.gw.example.com/mcp"
    );
    assert_eq!(
        urls.upstream_mcp_url("acme-x-y-1", false, "https://up.example/mcp?a=1"),
        "https://acme-x-y-1.gw.example.com/mcp?upstream_mcp=https%3A%2F%2Fup.example%2Fmcp%3Fa%3D1"
    );
}

#[test]
fn snippets_run_mcp_remote_and_claude_code_gets_a_safe_command() {
    let snippets = client_snippets("my server; rm -rf /", "http://h/mcp");
    assert_eq!(
        snippets["cursor"]["config"]["mcpServers"]["my server; rm -rf /"]["args"][2],
        "http://h/mcp"
    );
    assert_eq!(
        snippets["claude_code"]["command"],
        "claude mcp add my-server--rm--rf-- --transport http http://h/mcp"
    );
}

#[test]
fn the_control_plane_is_at_the_listen_address_in_dev_and_at_the_base_domain_otherwise() {
    let dev = PublicUrls::dev("127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(dev.control_base().as_deref(), Some("http://127.0.0.1:8080"));
    let deployed = PublicUrls {
        scheme: "https".into(),
        base_domain: Some("gw.example.com".into()),
        port: None,
        default_host_base: None,
    };
    assert_eq!(
        deployed.control_base().as_deref(),
        Some("https://gw.example.com")
    );
    let unset = PublicUrls {
        scheme: "http".into(),
        base_domain: None,
        port: Some(8080),
        default_host_base: None,
    };
    assert_eq!(unset.control_base(), None);
}

#[test]
fn the_host_header_names_the_default_host_a_named_host_or_nothing() {
    let dev = PublicUrls::dev("127.0.0.1:8080".parse().unwrap());
    assert_eq!(dev.resolve_host("127.0.0.1:8080"), Some(HostRef::Default));
    assert_eq!(dev.resolve_host("127.0.0.1:9999"), Some(HostRef::Default));
    assert_eq!(dev.resolve_host("localhost"), Some(HostRef::Default));
    assert_eq!(dev.resolve_host("[::1]:8080"), Some(HostRef::Default));
    assert_eq!(
        dev.resolve_host("acme-pink-panda-6942.localhost:8080"),
        Some(HostRef::Named("acme-pink-panda-6942".to_owned()))
    );
    for foreign in [
        "evil.example",
        "evil.example:8080",
        "",
        "a:b:c",
        "x.localhost.evil",
        "UP_per.localhost",
    ] {
        assert_eq!(dev.resolve_host(foreign), None, "{foreign:?}");
    }
    let deployed = PublicUrls {
        scheme: "https".to_owned(),
        base_domain: Some("gw.example.com".to_owned()),
        port: None,
        default_host_base: None,
    };
    assert_eq!(
        deployed.resolve_host("gw.example.com"),
        Some(HostRef::Default)
    );
    assert_eq!(
        deployed.resolve_host("Acme-a-b-1.GW.example.com:443"),
        Some(HostRef::Named("acme-a-b-1".to_owned()))
    );
    assert_eq!(deployed.resolve_host("localhost"), None);
    assert_eq!(deployed.resolve_host("a.b.gw.example.com"), None);
}
