//! Hosts: ids, settings, deletion, and reading one's own writes.

use portcullis_projector::models::ToolVisibility;

use super::*;

#[tokio::test]
async fn a_new_host_is_named_prefix_word_word_number_and_has_the_default_settings() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h
        .control
        .create_host(
            &alice,
            &ctx(&alice),
            None,
            CreateHost {
                prefix: "acme".into(),
                ..CreateHost::default()
            },
        )
        .await
        .expect("created");
    let parts: Vec<&str> = host.host_id.split('-').collect();
    assert_eq!(parts.len(), 4, "{}", host.host_id);
    assert_eq!(parts[0], "acme");
    assert!(parts[3].len() == 4 && parts[3].bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(host.settings.session_idle_seconds, 30 * 86_400);
    assert_eq!(host.settings.session_absolute_seconds, 90 * 86_400);
    assert_eq!(host.settings.tool_visibility, ToolVisibility::Permitted);
    assert!(!host.settings.dynamic_mcps);
    h.stop().await;
}

#[tokio::test]
async fn a_settings_change_is_visible_to_the_very_next_read() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let patch = HostSettingsPatch {
        dynamic_mcps: Some(true),
        tool_visibility: Some(ToolVisibility::All),
        session_idle_seconds: Some(3600),
        allowed_origins: Some(vec!["HTTPS://App.Acme.example/".into()]),
        ..HostSettingsPatch::default()
    };
    h.control
        .update_host_settings(&alice, &ctx(&alice), None, &host, patch)
        .await
        .expect("updated");
    let read = h.control.get_host(&alice, &host).await.expect("read");
    assert!(read.settings.dynamic_mcps);
    assert_eq!(read.settings.tool_visibility, ToolVisibility::All);
    assert_eq!(read.settings.session_idle_seconds, 3600);
    assert_eq!(read.settings.session_absolute_seconds, 90 * 86_400);
    assert_eq!(read.settings.allowed_origins, ["https://app.acme.example"]);
    h.stop().await;
}

#[tokio::test]
async fn a_write_the_projector_does_not_reach_in_time_is_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).expect("open"));
    // No projector runs: nothing ever reaches the read models.
    let control = Control::new(
        store.clone(),
        store.clone(),
        Arc::new(NoSecretSealer),
        ControlOptions {
            consistency_timeout: std::time::Duration::from_millis(100),
            ..ControlOptions::default()
        },
    )
    .expect("control");
    let result = control
        .ensure_admin_token(
            &Context::system("test", "boot"),
            "pcat_0123456789abcdef0123456789abcdef",
            &[],
            "bootstrap",
        )
        .await;
    assert!(
        matches!(result, Err(ControlError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        store.head().await.expect("head"),
        1,
        "the write itself happened"
    );
}

#[tokio::test]
async fn a_deleted_host_is_gone_from_reads_and_lists() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let kept = h.host(&alice, "kept").await;
    let gone = h.host(&alice, "gone").await;
    h.control
        .delete_host(&alice, &ctx(&alice), None, &gone)
        .await
        .expect("deleted");
    assert_not_found(h.control.get_host(&alice, &gone).await, "host");
    assert_not_found(h.control.list_servers(&alice, &gone).await, "host");
    let listed: Vec<String> = h
        .control
        .list_hosts(&alice, None)
        .await
        .expect("list")
        .into_iter()
        .map(|host| host.host_id)
        .collect();
    assert_eq!(listed, [kept]);
    h.stop().await;
}

#[tokio::test]
async fn an_admin_of_several_organizations_must_name_one() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let labs = h
        .control
        .create_organization(&alice, &ctx(&alice), None, "Labs")
        .await
        .expect("second");
    let alice = h
        .control
        .authenticate("pcat_alice_secret_0123456789abcdef")
        .await
        .expect("auth");
    let request = CreateHost {
        prefix: "lab".into(),
        ..CreateHost::default()
    };
    assert_invalid(
        h.control
            .create_host(&alice, &ctx(&alice), None, request.clone())
            .await,
        "org_id",
    );
    let host = h
        .control
        .create_host(
            &alice,
            &ctx(&alice),
            None,
            CreateHost {
                org_id: Some(labs.org_id.clone()),
                ..request
            },
        )
        .await
        .expect("created");
    assert_eq!(host.org_id, labs.org_id);
    let in_labs = h
        .control
        .list_hosts(&alice, Some(&labs.org_id))
        .await
        .expect("list");
    assert_eq!(in_labs.len(), 1);
    h.stop().await;
}
