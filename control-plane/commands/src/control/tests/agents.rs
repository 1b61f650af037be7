//! Agents: their servers and levels, caps, revocation, deletion.

use super::*;

#[tokio::test]
async fn an_agent_shows_its_servers_with_consent_grant_cap_and_effective_level() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    c.put_grant(
        &alice,
        &x,
        None,
        &host,
        &ada.human_id,
        s,
        TrustLevel::Medium,
    )
    .await
    .expect("grant");
    let agent = c
        .test_register_agent(&x, &host, "claude", Some(&ada.human_id))
        .await
        .expect("agent");
    c.test_start_session(&x, &host, &ada.human_id, &agent, s, TrustLevel::High)
        .await
        .expect("session");

    let view = c.get_agent(&alice, &host, &agent).await.expect("agent");
    assert_eq!(view.human_email.as_deref(), Some("ada@acme.example"));
    assert_eq!(view.servers.len(), 1);
    let on = &view.servers[0];
    assert_eq!(on.server_key.as_deref(), Some("github"));
    assert_eq!(on.consented, TrustLevel::High);
    assert_eq!(on.grant, Some(TrustLevel::Medium));
    assert_eq!(
        on.effective,
        Some(TrustLevel::Medium),
        "the grant is the ceiling"
    );

    let capped = c
        .put_agent_cap(&alice, &x, None, &host, &agent, s, TrustLevel::Low)
        .await
        .expect("capped");
    assert_eq!(capped.caps.get(s), Some(&TrustLevel::Low));
    assert_eq!(capped.servers[0].effective, Some(TrustLevel::Low));
    let uncapped = c
        .delete_agent_cap(&alice, &x, None, &host, &agent, s)
        .await
        .expect("uncapped");
    assert!(uncapped.caps.is_empty());
    assert_eq!(uncapped.servers[0].effective, Some(TrustLevel::Medium));

    let listed = c
        .list_agents(&alice, &host, Some(&ada.human_id))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        c.list_agents(&alice, &host, Some("01SOMEONEELSE"))
            .await
            .expect("list")
            .is_empty()
    );
    h.stop().await;
}

#[tokio::test]
async fn revoking_an_agent_on_a_server_ends_its_sessions_there() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    let agent = c
        .test_register_agent(&x, &host, "claude", Some(&ada.human_id))
        .await
        .expect("agent");
    c.test_start_session(&x, &host, &ada.human_id, &agent, s, TrustLevel::Low)
        .await
        .expect("session");
    let revoked = c
        .revoke_agent_server(&alice, &x, None, &host, &agent, s)
        .await
        .expect("revoked");
    assert!(revoked.servers.is_empty(), "{revoked:?}");
    // The human may consent again afterwards.
    c.test_start_session(&x, &host, &ada.human_id, &agent, s, TrustLevel::Low)
        .await
        .expect("new session");
    let view = c.get_agent(&alice, &host, &agent).await.expect("agent");
    assert_eq!(view.servers.len(), 1);
    assert_eq!(view.servers[0].effective, None, "no grant, no access");
    h.stop().await;
}

#[tokio::test]
async fn a_deleted_agent_is_gone_with_its_sessions() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    let agent = c
        .test_register_agent(&x, &host, "claude", Some(&ada.human_id))
        .await
        .expect("agent");
    let session = c
        .test_start_session(&x, &host, &ada.human_id, &agent, s, TrustLevel::Low)
        .await
        .expect("session");
    c.delete_agent(&alice, &x, None, &host, &agent)
        .await
        .expect("deleted");
    assert_not_found(c.get_agent(&alice, &host, &agent).await, "agent");
    assert_not_found(
        c.put_agent_cap(&alice, &x, None, &host, &agent, s, TrustLevel::Low)
            .await,
        "agent",
    );
    let stored: portcullis_projector::models::Session = c
        .live(ModelKind::Session, &[&host, &session])
        .await
        .expect("read")
        .expect("session");
    assert!(stored.revoked.is_some());
    h.stop().await;
}
