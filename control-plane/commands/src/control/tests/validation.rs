//! Every validation error names its field, and changes nothing.

use portcullis_domain::server::ToolOverride;

use super::*;

#[tokio::test]
async fn every_invalid_input_names_its_field_and_records_nothing() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    let head = h.head().await;

    let create = |prefix: &str, settings: Option<pb::HostSettings>| CreateHost {
        prefix: prefix.into(),
        settings,
        ..CreateHost::default()
    };
    assert_invalid(
        c.create_host(&alice, &x, None, create("Bad_Prefix", None))
            .await,
        "prefix",
    );
    let origins = pb::HostSettings {
        allowed_origins: vec!["https://ok.example".into(), "https://x.example/path".into()],
        ..pb::HostSettings::default()
    };
    assert_invalid(
        c.create_host(&alice, &x, None, create("acme", Some(origins)))
            .await,
        "allowed_origins[1]",
    );
    let patch = |p: HostSettingsPatch| c.update_host_settings(&alice, &x, None, &host, p);
    assert_invalid(
        patch(HostSettingsPatch {
            session_idle_seconds: Some(10),
            ..HostSettingsPatch::default()
        })
        .await,
        "session_idle_seconds",
    );
    assert_invalid(
        patch(HostSettingsPatch {
            session_absolute_seconds: Some(400 * 86_400),
            ..HostSettingsPatch::default()
        })
        .await,
        "session_absolute_seconds",
    );
    assert_invalid(
        patch(HostSettingsPatch {
            allowed_origins: Some(vec!["*".into()]),
            ..HostSettingsPatch::default()
        })
        .await,
        "allowed_origins[0]",
    );

    let with = |change: &dyn Fn(&mut ImportServer)| {
        let mut request = import(Some("valid-key"));
        change(&mut request);
        request
    };
    let bad_imports: Vec<(ImportServer, &str)> = vec![
        (with(&|r| r.url = "ftp://example.com".into()), "url"),
        (with(&|r| r.key = Some("Not A Key".into())), "key"),
        (with(&|r| r.name = Some(" ".into())), "name"),
        (
            with(&|r| r.description = Some("d".repeat(2001))),
            "description",
        ),
        (with(&|r| r.timeout_seconds = Some(0)), "timeout_seconds"),
        (with(&|r| r.timeout_seconds = Some(3601)), "timeout_seconds"),
        (
            with(&|r| r.discovered.tools.push(tool("bad name", TrustLevel::Low))),
            "discovered.tools[2].name",
        ),
        (
            with(&|r| {
                r.tool_overrides = vec![ToolOverride {
                    name: "ghost".into(),
                    trust_level: None,
                    enabled: Some(false),
                }]
            }),
            "tools[0].name",
        ),
        (
            with(&|r| {
                r.oauth = Some(UpstreamOAuthInput {
                    client_id: " ".into(),
                    client_secret: "s".into(),
                })
            }),
            "oauth.client_id",
        ),
    ];
    for (request, field) in bad_imports {
        assert_invalid(
            c.import_server(&alice, &x, None, &host, request).await,
            field,
        );
    }
    assert_invalid(
        c.update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                name: Some("n".repeat(101)),
                ..ServerDetailsPatch::default()
            },
        )
        .await,
        "name",
    );
    for seconds in [0, 3601] {
        assert_invalid(
            c.update_server(
                &alice,
                &x,
                None,
                &host,
                s,
                ServerDetailsPatch {
                    timeout_seconds: Some(seconds),
                    ..ServerDetailsPatch::default()
                },
            )
            .await,
            "timeout_seconds",
        );
    }
    assert_invalid(
        c.update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                timeout_seconds: Some(30),
                clear_timeout: true,
                ..ServerDetailsPatch::default()
            },
        )
        .await,
        "clear_timeout",
    );
    assert_invalid(
        c.add_tool(
            &alice,
            &x,
            None,
            &host,
            s,
            NewTool {
                name: "".into(),
                description: String::new(),
                input_schema_sha256: vec![],
                trust_level: TrustLevel::Low,
                classification: None,
            },
        )
        .await,
        "name",
    );
    assert_invalid(
        c.refresh_server(
            &alice,
            &x,
            None,
            &host,
            s,
            vec![tool("a b", TrustLevel::Low)],
        )
        .await,
        "tools[0].name",
    );
    for email in ["", "not-an-email", "a@b", "ada@exa mple.com"] {
        assert_invalid(c.add_human(&alice, &x, None, &host, email).await, "email");
    }
    assert_invalid(
        c.create_organization(&alice, &x, None, &"o".repeat(101))
            .await,
        "name",
    );
    assert_eq!(h.head().await, head, "no invalid request recorded anything");
    h.stop().await;
}
