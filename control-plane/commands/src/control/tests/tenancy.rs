//! Tenant isolation: another organization's host and everything in it is `NotFound`, and
//! lists never include it.

use super::*;

#[tokio::test]
async fn another_organizations_host_is_not_found_for_every_operation() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let bob = h.admin("pcat_bob_secret_0123456789abcdef00", "Bobco").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let human = h.human(&alice, &host, "ada@acme.example").await;
    h.control
        .put_grant(
            &alice,
            &ctx(&alice),
            None,
            &host,
            &human.human_id,
            &server.server_id,
            TrustLevel::Medium,
        )
        .await
        .expect("grant");
    let c = &h.control;
    let bob_ctx = ctx(&bob);
    let s = server.server_id.as_str();
    let u = human.human_id.as_str();

    assert_not_found(c.get_host(&bob, &host).await, "host");
    assert_not_found(
        c.update_host_settings(&bob, &bob_ctx, None, &host, HostSettingsPatch::default())
            .await,
        "host",
    );
    assert_not_found(c.delete_host(&bob, &bob_ctx, None, &host).await, "host");
    assert_not_found(c.list_servers(&bob, &host).await, "host");
    assert_not_found(c.get_server(&bob, &host, s).await, "host");
    assert_not_found(
        c.import_server(&bob, &bob_ctx, None, &host, import(Some("mine")))
            .await,
        "host",
    );
    assert_not_found(
        c.update_server(
            &bob,
            &bob_ctx,
            None,
            &host,
            s,
            ServerDetailsPatch {
                name: Some("x".into()),
                ..ServerDetailsPatch::default()
            },
        )
        .await,
        "host",
    );
    assert_not_found(
        c.delete_server(&bob, &bob_ctx, None, &host, s).await,
        "host",
    );
    assert_not_found(
        c.update_tool(
            &bob,
            &bob_ctx,
            None,
            &host,
            s,
            "delete_repo",
            None,
            Some(false),
        )
        .await,
        "host",
    );
    assert_not_found(
        c.refresh_server(&bob, &bob_ctx, None, &host, s, vec![])
            .await,
        "host",
    );
    assert_not_found(c.list_humans(&bob, &host).await, "host");
    assert_not_found(c.get_human(&bob, &host, u).await, "host");
    assert_not_found(
        c.add_human(&bob, &bob_ctx, None, &host, "eve@bob.example")
            .await,
        "host",
    );
    assert_not_found(c.delete_human(&bob, &bob_ctx, None, &host, u).await, "host");
    assert_not_found(
        c.put_grant(&bob, &bob_ctx, None, &host, u, s, TrustLevel::High)
            .await,
        "host",
    );
    assert_not_found(
        c.delete_grant(&bob, &bob_ctx, None, &host, u, s).await,
        "host",
    );
    assert_not_found(c.list_agents(&bob, &host, None).await, "host");
    assert_not_found(
        c.find_human_by_email(&bob, &host, "ada@acme.example").await,
        "host",
    );

    // Lists exclude it, and nothing of Alice's changed.
    assert!(c.list_hosts(&bob, None).await.expect("list").is_empty());
    let alices = c.list_hosts(&alice, None).await.expect("list");
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].host_id, host);
    assert_eq!(
        c.get_grant(&alice, &host, u, s)
            .await
            .expect("grant")
            .max_trust_level,
        TrustLevel::Medium
    );
    assert_not_found(
        c.list_hosts(&bob, Some(&alices[0].org_id)).await,
        "organization",
    );
    h.stop().await;
}

#[tokio::test]
async fn a_host_cannot_be_created_in_another_organization() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let bob = h.admin("pcat_bob_secret_0123456789abcdef00", "Bobco").await;
    let result = h
        .control
        .create_host(
            &bob,
            &ctx(&bob),
            None,
            CreateHost {
                org_id: Some(alice.org_ids()[0].clone()),
                prefix: "evil".into(),
                settings: None,
            },
        )
        .await;
    assert_not_found(result, "organization");
    h.stop().await;
}

#[tokio::test]
async fn ids_that_are_not_one_token_are_not_found() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    for bad in ["", "a.b", "*", ">", "x y", &"a".repeat(65)] {
        assert_not_found(h.control.get_host(&alice, bad).await, "host");
        assert_not_found(h.control.get_server(&alice, &host, bad).await, "server");
        assert_not_found(h.control.get_human(&alice, &host, bad).await, "human");
        assert_not_found(h.control.get_agent(&alice, &host, bad).await, "agent");
    }
    h.stop().await;
}
