//! Servers and tools: keys, concurrent imports, overrides, refresh, deletion.

use portcullis_projector::models::{Classification, UpstreamAuth};
use portcullis_store::EventLog;

use super::*;

#[tokio::test]
async fn an_import_without_a_key_derives_one_and_numbers_it_when_taken() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let first = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, import(None))
        .await
        .expect("first");
    let second = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, import(None))
        .await
        .expect("second");
    assert_eq!(first.key, "github");
    assert_eq!(first.name, "GitHub");
    assert_eq!(first.description, "Issues and pull requests");
    assert_eq!(second.key, "github-2");
    assert_eq!(first.tools.len(), 2);
    assert_eq!(first.upstream_auth, UpstreamAuth::None);
    let listed = h.control.list_servers(&alice, &host).await.expect("list");
    assert_eq!(listed.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn an_explicit_key_that_is_taken_is_a_conflict() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    h.server(&alice, &host, "github").await;
    let again = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, import(Some("github")))
        .await;
    assert!(
        matches!(
            again,
            Err(ControlError::Conflict {
                what: "server key",
                ..
            })
        ),
        "{again:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_imports_with_one_key_exactly_one_wins() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let control = h.control.clone();
            let alice = alice.clone();
            let host = host.clone();
            tokio::spawn(async move {
                control
                    .import_server(&alice, &ctx(&alice), None, &host, import(Some("shared")))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(server) => {
                assert_eq!(server.key, "shared");
                won += 1;
            }
            Err(ControlError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let listed = h.control.list_servers(&alice, &host).await.expect("list");
    assert_eq!(listed.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn import_overrides_apply_and_must_name_discovered_tools() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let mut request = import(Some("github"));
    request.tool_overrides = vec![portcullis_domain::server::ToolOverride {
        name: "delete_repo".into(),
        trust_level: Some(TrustLevel::Medium),
        enabled: Some(false),
    }];
    let server = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, request.clone())
        .await
        .expect("imported");
    let tool = &server.tools["delete_repo"];
    assert_eq!(tool.trust_level, TrustLevel::Medium);
    assert!(!tool.enabled);
    assert_eq!(tool.classification, Classification::AdminOverride);

    request.key = Some("other".into());
    request.tool_overrides[0].name = "no_such_tool".into();
    assert_invalid(
        h.control
            .import_server(&alice, &ctx(&alice), None, &host, request)
            .await,
        "tools[0].name",
    );
    h.stop().await;
}

#[tokio::test]
async fn an_oauth_secret_is_sealed_and_never_shown() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let mut request = import(Some("github"));
    request.oauth = Some(UpstreamOAuthInput {
        client_id: "portcullis".into(),
        client_secret: "s3cret-value".into(),
    });
    let server = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, request)
        .await
        .expect("imported");
    assert_eq!(
        server.upstream_auth,
        UpstreamAuth::Oauth {
            client_id: "portcullis".into(),
            key_id: "test-key".into()
        }
    );
    let shown = serde_json::to_string(&server).expect("json");
    assert!(!shown.contains("s3cret"), "{shown}");
    h.stop().await;
}

#[tokio::test]
async fn without_a_master_key_an_oauth_import_is_unavailable_and_holds_no_key() {
    let h = Harness::with_sealer(Arc::new(NoSecretSealer)).await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let mut request = import(Some("github"));
    request.oauth = Some(UpstreamOAuthInput {
        client_id: "portcullis".into(),
        client_secret: "s3cret".into(),
    });
    let result = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, request)
        .await;
    assert!(
        matches!(result, Err(ControlError::Unavailable(_))),
        "{result:?}"
    );
    let server = h.server(&alice, &host, "github").await;
    assert_eq!(server.key, "github", "the failed import gave its key back");
    h.stop().await;
}

#[tokio::test]
async fn a_key_claimed_by_an_import_that_never_finished_is_taken_over_once_stale() {
    use portcullis_domain::reservation::{ReservationCommand, ServerKey};
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    // Crashed imports: each claimed a key and never recorded its server.
    let hour_ago = Context {
        now_ms: ctx(&alice).now_ms - 3_600_000,
        ..ctx(&alice)
    };
    for (key, context) in [("stale", hour_ago), ("recent", ctx(&alice))] {
        let subject = portcullis_proto::subjects::server_key(&host, key).expect("subject");
        crate::execute::<ServerKey>(
            h.store.as_ref(),
            &context,
            &subject,
            &portcullis_store::CommandId::parse(&format!("crash-{key}")).expect("id"),
            &ReservationCommand::Claim {
                owner: "01CRASHEDSERVER".into(),
            },
        )
        .await
        .expect("claimed");
    }
    let taken_over = h.server(&alice, &host, "stale").await;
    assert_eq!(taken_over.key, "stale");
    let recent = h
        .control
        .import_server(&alice, &ctx(&alice), None, &host, import(Some("recent")))
        .await;
    assert!(
        matches!(recent, Err(ControlError::Conflict { .. })),
        "a claim that may still be in progress is respected: {recent:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn tools_are_added_overridden_and_removed_by_name() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    let added = c
        .add_tool(
            &alice,
            &x,
            None,
            &host,
            s,
            NewTool {
                name: "create_issue".into(),
                description: "Creates an issue".into(),
                input_schema_sha256: vec![],
                trust_level: TrustLevel::Medium,
                classification: None,
            },
        )
        .await
        .expect("added");
    assert_eq!(
        added.tools["create_issue"].classification,
        Classification::AdminOverride
    );
    let changed = c
        .update_tool(
            &alice,
            &x,
            None,
            &host,
            s,
            "list_issues",
            Some(TrustLevel::High),
            Some(false),
        )
        .await
        .expect("changed");
    assert_eq!(changed.tools["list_issues"].trust_level, TrustLevel::High);
    assert!(!changed.tools["list_issues"].enabled);
    let removed = c
        .remove_tool(&alice, &x, None, &host, s, "delete_repo")
        .await
        .expect("removed");
    assert!(!removed.tools.contains_key("delete_repo"));
    assert_not_found(
        c.update_tool(&alice, &x, None, &host, s, "delete_repo", None, Some(true))
            .await,
        "tool",
    );
    assert_not_found(
        c.remove_tool(&alice, &x, None, &host, s, "nope").await,
        "tool",
    );
    let renamed = c
        .update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                name: Some("GitHub Enterprise".into()),
                ..ServerDetailsPatch::default()
            },
        )
        .await
        .expect("renamed");
    assert_eq!(renamed.name, "GitHub Enterprise");
    assert_eq!(renamed.description, "Issues and pull requests");
    h.stop().await;
}

#[tokio::test]
async fn an_upstream_timeout_is_imported_changed_and_cleared() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let (c, x) = (&h.control, ctx(&alice));

    let default = h.server(&alice, &host, "github").await;
    assert_eq!(default.timeout_seconds, None, "unset: the global default");
    let imported = c
        .import_server(
            &alice,
            &x,
            None,
            &host,
            ImportServer {
                timeout_seconds: Some(900),
                ..import(Some("slow"))
            },
        )
        .await
        .expect("imported");
    assert_eq!(imported.timeout_seconds, Some(900));
    let s = imported.server_id.as_str();

    let changed = c
        .update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                timeout_seconds: Some(5),
                ..ServerDetailsPatch::default()
            },
        )
        .await
        .expect("changed");
    assert_eq!(changed.timeout_seconds, Some(5));
    let renamed = c
        .update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                name: Some("Slow".into()),
                ..ServerDetailsPatch::default()
            },
        )
        .await
        .expect("renamed");
    assert_eq!(renamed.timeout_seconds, Some(5), "kept by a rename");
    let listed = c.list_servers(&alice, &host).await.expect("list");
    let slow = listed.iter().find(|v| v.server_id == s).expect("listed");
    assert_eq!(slow.timeout_seconds, Some(5));

    let cleared = c
        .update_server(
            &alice,
            &x,
            None,
            &host,
            s,
            ServerDetailsPatch {
                clear_timeout: true,
                ..ServerDetailsPatch::default()
            },
        )
        .await
        .expect("cleared");
    assert_eq!(cleared.timeout_seconds, None);
    assert_eq!(
        c.get_server(&alice, &host, s)
            .await
            .expect("get")
            .timeout_seconds,
        None
    );
    h.stop().await;
}

#[tokio::test]
async fn a_refresh_reports_changes_and_keeps_admin_overrides() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    c.update_tool(
        &alice,
        &x,
        None,
        &host,
        s,
        "delete_repo",
        Some(TrustLevel::Low),
        Some(false),
    )
    .await
    .expect("override");
    // Upstream now: list_issues with a new schema, delete_repo reclassified, a new tool;
    // nothing else.
    let mut list_issues = tool("list_issues", TrustLevel::Low);
    list_issues.input_schema_sha256 = vec![9; 32];
    let mut delete_repo = tool("delete_repo", TrustLevel::High);
    delete_repo.description = "Deletes a repository for good".into();
    delete_repo.classification = Some(auto("delete"));
    let report = c
        .refresh_server(
            &alice,
            &x,
            None,
            &host,
            s,
            vec![list_issues, delete_repo, tool("search", TrustLevel::Low)],
        )
        .await
        .expect("refreshed");
    assert_eq!(report.added, ["search"]);
    assert_eq!(report.changed, ["delete_repo", "list_issues"]);
    assert!(report.removed.is_empty());
    let kept = &report.server.tools["delete_repo"];
    assert_eq!(
        kept.trust_level,
        TrustLevel::Low,
        "the admin's level survives"
    );
    assert!(!kept.enabled, "the admin's disable survives");
    assert_eq!(kept.description, "Deletes a repository for good");

    let report = c
        .refresh_server(
            &alice,
            &x,
            None,
            &host,
            s,
            vec![tool("search", TrustLevel::Low)],
        )
        .await
        .expect("refreshed again");
    assert_eq!(report.removed, ["delete_repo", "list_issues"]);
    assert_eq!(report.server.tools.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn deleting_a_server_revokes_its_grants_and_sessions_and_a_reimport_starts_clean() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let other = h.server(&alice, &host, "linear").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x) = (&h.control, ctx(&alice));
    for server_id in [&server.server_id, &other.server_id] {
        c.put_grant(
            &alice,
            &x,
            None,
            &host,
            &ada.human_id,
            server_id,
            TrustLevel::High,
        )
        .await
        .expect("grant");
    }
    let agent = c
        .test_register_agent(&x, &host, "claude", Some(&ada.human_id))
        .await
        .expect("agent");
    let session = c
        .test_start_session(
            &x,
            &host,
            &ada.human_id,
            &agent,
            &server.server_id,
            TrustLevel::High,
        )
        .await
        .expect("session");

    c.delete_server(&alice, &x, None, &host, &server.server_id)
        .await
        .expect("deleted");
    assert_not_found(
        c.get_server(&alice, &host, &server.server_id).await,
        "server",
    );
    assert_not_found(
        c.get_grant(&alice, &host, &ada.human_id, &server.server_id)
            .await,
        "grant",
    );
    c.get_grant(&alice, &host, &ada.human_id, &other.server_id)
        .await
        .expect("the other server's grant stays");
    let stored: portcullis_projector::models::Session = c
        .live(ModelKind::Session, &[&host, &session])
        .await
        .expect("read")
        .expect("session model");
    assert!(stored.revoked.is_some(), "the session on it is revoked");
    let grant_log = h
        .store
        .load(&subjects_grant(&host, &ada.human_id, &server.server_id))
        .await
        .expect("load");
    assert_eq!(
        grant_log.events.last().map(|e| e.event_type.as_str()),
        Some("GrantRevoked")
    );

    assert_not_found(
        c.delete_server(&alice, &x, None, &host, &server.server_id)
            .await,
        "server",
    );
    let again = h.server(&alice, &host, "github").await;
    assert_ne!(again.server_id, server.server_id);
    let detail = c
        .get_human(&alice, &host, &ada.human_id)
        .await
        .expect("human");
    let on_new: Vec<_> = detail
        .grants
        .iter()
        .filter(|g| g.server_id == again.server_id)
        .collect();
    assert!(on_new.is_empty(), "{detail:?}");
    assert_eq!(detail.grants.len(), 1, "only the other server's grant");
    h.stop().await;
}

#[tokio::test]
async fn a_delete_that_crashed_after_the_first_step_is_finished_by_the_next_one() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x) = (&h.control, ctx(&alice));
    c.put_grant(
        &alice,
        &x,
        None,
        &host,
        &ada.human_id,
        &server.server_id,
        TrustLevel::High,
    )
    .await
    .expect("grant");
    // The crash: only the deletion itself was recorded.
    crate::execute::<portcullis_domain::server::Server>(
        h.store.as_ref(),
        &x,
        &portcullis_proto::subjects::server(&host, &server.server_id).expect("subject"),
        &portcullis_store::CommandId::parse("crashed-delete").expect("id"),
        &portcullis_domain::server::ServerCommand::Delete,
    )
    .await
    .expect("deleted");
    assert_not_found(
        c.delete_server(&alice, &x, None, &host, &server.server_id)
            .await,
        "server",
    );
    let grant_log = h
        .store
        .load(&subjects_grant(&host, &ada.human_id, &server.server_id))
        .await
        .expect("load");
    assert_eq!(
        grant_log.events.last().map(|e| e.event_type.as_str()),
        Some("GrantRevoked")
    );
    let again = h.server(&alice, &host, "github").await;
    assert_eq!(again.key, "github", "the key was released");
    h.stop().await;
}

fn subjects_grant(host: &str, human: &str, server: &str) -> portcullis_store::Subject {
    portcullis_proto::subjects::grant(host, human, server).expect("subject")
}
