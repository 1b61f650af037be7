//! Humans and grants: emails, uniqueness, deletion, grant idempotency.

use super::*;

#[tokio::test]
async fn a_human_is_added_by_normalized_email_and_found_by_it() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let ada = h.human(&alice, &host, "  Ada@ACME.example ").await;
    assert_eq!(ada.email, "ada@acme.example");
    assert!(ada.pre_authorized);
    let found = h
        .control
        .find_human_by_email(&alice, &host, "ADA@acme.example")
        .await
        .expect("found");
    assert_eq!(found, ada);
    let listed = h.control.list_humans(&alice, &host).await.expect("list");
    assert_eq!(listed, [ada]);
    let again = h
        .control
        .add_human(&alice, &ctx(&alice), None, &host, "ada@acme.example")
        .await;
    assert!(
        matches!(again, Err(ControlError::Conflict { what: "human", .. })),
        "{again:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_same_email_in_another_host_is_another_human() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let one = h.host(&alice, "one").await;
    let two = h.host(&alice, "two").await;
    let a = h.human(&alice, &one, "ada@acme.example").await;
    let b = h.human(&alice, &two, "ada@acme.example").await;
    assert_ne!(a.human_id, b.human_id);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_adds_with_one_email_exactly_one_wins() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let control = h.control.clone();
            let alice = alice.clone();
            let host = host.clone();
            // Differently written, one normalized email.
            let email = if i % 2 == 0 {
                "ada@acme.example"
            } else {
                " ADA@acme.example"
            };
            tokio::spawn(async move {
                control
                    .add_human(&alice, &ctx(&alice), None, &host, email)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => won += 1,
            Err(ControlError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        h.control
            .list_humans(&alice, &host)
            .await
            .expect("list")
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn putting_a_grant_issues_changes_and_the_same_level_records_nothing() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let (c, x, u, s) = (
        &h.control,
        ctx(&alice),
        ada.human_id.as_str(),
        server.server_id.as_str(),
    );
    let issued = c
        .put_grant(&alice, &x, None, &host, u, s, TrustLevel::Medium)
        .await
        .expect("issued");
    assert_eq!(issued.max_trust_level, TrustLevel::Medium);
    let head = h.head().await;
    c.put_grant(&alice, &x, None, &host, u, s, TrustLevel::Medium)
        .await
        .expect("same level");
    assert_eq!(h.head().await, head, "the same level records nothing");
    let changed = c
        .put_grant(&alice, &x, None, &host, u, s, TrustLevel::High)
        .await
        .expect("changed");
    assert_eq!(changed.max_trust_level, TrustLevel::High);
    c.delete_grant(&alice, &x, None, &host, u, s)
        .await
        .expect("revoked");
    assert_not_found(c.get_grant(&alice, &host, u, s).await, "grant");
    assert_not_found(c.delete_grant(&alice, &x, None, &host, u, s).await, "grant");
    assert_not_found(
        c.put_grant(
            &alice,
            &x,
            None,
            &host,
            u,
            "01NOSUCHSERVER",
            TrustLevel::Low,
        )
        .await,
        "server",
    );
    assert_not_found(
        c.put_grant(&alice, &x, None, &host, "01NOSUCHHUMAN", s, TrustLevel::Low)
            .await,
        "human",
    );
    h.stop().await;
}

#[tokio::test]
async fn deleting_a_human_revokes_their_grants_sessions_and_upstream_tokens_and_frees_the_email() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let server = h.server(&alice, &host, "github").await;
    let ada = h.human(&alice, &host, "ada@acme.example").await;
    let bob = h.human(&alice, &host, "bob@acme.example").await;
    let (c, x, s) = (&h.control, ctx(&alice), server.server_id.as_str());
    for human in [&ada, &bob] {
        c.put_grant(
            &alice,
            &x,
            None,
            &host,
            &human.human_id,
            s,
            TrustLevel::High,
        )
        .await
        .expect("grant");
    }
    let agent = c
        .test_register_agent(&x, &host, "claude", Some(&ada.human_id))
        .await
        .expect("agent");
    let ada_session = c
        .test_start_session(&x, &host, &ada.human_id, &agent, s, TrustLevel::Medium)
        .await
        .expect("session");
    let bob_session = c
        .test_start_session(&x, &host, &bob.human_id, &agent, s, TrustLevel::Low)
        .await
        .expect("session");
    for human in [&ada, &bob] {
        c.store_upstream_credential(&x, &host, &human.human_id, s, vec![1, 2, 3], 0)
            .await
            .expect("upstream credential");
    }
    let detail = c
        .get_human(&alice, &host, &ada.human_id)
        .await
        .expect("detail");
    assert_eq!(detail.grants.len(), 1);
    assert_eq!(detail.agent_ids, std::slice::from_ref(&agent));

    c.delete_human(&alice, &x, None, &host, &ada.human_id)
        .await
        .expect("deleted");
    for (human, kept) in [(&ada, false), (&bob, true)] {
        let held = c
            .upstream_credential(&host, &human.human_id, s)
            .await
            .expect("read");
        assert_eq!(held.is_some(), kept, "only ada's upstream tokens go");
    }
    assert_not_found(c.get_human(&alice, &host, &ada.human_id).await, "human");
    assert_not_found(c.get_grant(&alice, &host, &ada.human_id, s).await, "grant");
    for (id, revoked) in [(ada_session, true), (bob_session, false)] {
        let stored: portcullis_projector::models::Session = c
            .live(ModelKind::Session, &[&host, &id])
            .await
            .expect("read")
            .expect("session");
        assert_eq!(stored.revoked.is_some(), revoked, "only ada's sessions end");
    }
    c.get_grant(&alice, &host, &bob.human_id, s)
        .await
        .expect("bob's grant stays");

    assert_not_found(
        c.delete_human(&alice, &x, None, &host, &ada.human_id).await,
        "human",
    );
    let again = h.human(&alice, &host, "ada@acme.example").await;
    assert_ne!(again.human_id, ada.human_id);
    let fresh = c
        .get_human(&alice, &host, &again.human_id)
        .await
        .expect("detail");
    assert!(fresh.grants.is_empty());
    h.stop().await;
}
