//! Idempotency keys: a retried request records nothing twice and answers the same.

use super::*;

#[tokio::test]
async fn a_retried_import_returns_the_same_server_and_records_nothing() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let k = key("import-1");
    let first = h
        .control
        .import_server(&alice, &ctx(&alice), Some(&k), &host, import(None))
        .await
        .expect("first");
    let head = h.head().await;
    let retried = h
        .control
        .import_server(&alice, &ctx(&alice), Some(&k), &host, import(None))
        .await
        .expect("retried");
    assert_eq!(retried, first);
    assert_eq!(h.head().await, head);
    assert_eq!(
        h.control
            .list_servers(&alice, &host)
            .await
            .expect("list")
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test]
async fn a_retried_host_creation_returns_the_same_host() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let k = key("host-1");
    let request = CreateHost {
        prefix: "acme".into(),
        ..CreateHost::default()
    };
    let first = h
        .control
        .create_host(&alice, &ctx(&alice), Some(&k), request.clone())
        .await
        .expect("first");
    let head = h.head().await;
    let retried = h
        .control
        .create_host(&alice, &ctx(&alice), Some(&k), request.clone())
        .await
        .expect("retried");
    assert_eq!(retried, first);
    assert_eq!(h.head().await, head);
    let other = h
        .control
        .create_host(&alice, &ctx(&alice), Some(&key("host-2")), request)
        .await
        .expect("another key, another host");
    assert_ne!(other.host_id, first.host_id);
    h.stop().await;
}

#[tokio::test]
async fn a_retried_human_add_returns_the_same_human_instead_of_a_conflict() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let k = key("human-1");
    let first = h
        .control
        .add_human(&alice, &ctx(&alice), Some(&k), &host, "ada@acme.example")
        .await
        .expect("first");
    let retried = h
        .control
        .add_human(&alice, &ctx(&alice), Some(&k), &host, "ada@acme.example")
        .await
        .expect("retried");
    assert_eq!(retried, first);
    h.stop().await;
}

#[tokio::test]
async fn a_retried_organization_creation_returns_the_same_organization() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let k = key("org-1");
    let first = h
        .control
        .create_organization(&alice, &ctx(&alice), Some(&k), "Labs")
        .await
        .expect("first");
    let head = h.head().await;
    let retried = h
        .control
        .create_organization(&alice, &ctx(&alice), Some(&k), "Labs")
        .await
        .expect("retried");
    assert_eq!(retried, first);
    assert_eq!(h.head().await, head);
    h.stop().await;
}

#[tokio::test]
async fn the_same_key_from_two_admins_is_two_requests() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let bob = h.admin("pcat_bob_secret_0123456789abcdef00", "Bobco").await;
    let k = key("same");
    let a = h
        .control
        .create_host(
            &alice,
            &ctx(&alice),
            Some(&k),
            CreateHost {
                prefix: "x".into(),
                ..CreateHost::default()
            },
        )
        .await
        .expect("alice's");
    let b = h
        .control
        .create_host(
            &bob,
            &ctx(&bob),
            Some(&k),
            CreateHost {
                prefix: "x".into(),
                ..CreateHost::default()
            },
        )
        .await
        .expect("bob's");
    assert_ne!(a.host_id, b.host_id);
    assert_ne!(a.org_id, b.org_id);
    h.stop().await;
}

#[test]
fn an_idempotency_key_is_printable_and_bounded() {
    assert!(IdempotencyKey::parse("abc-123:x/y").is_ok());
    for bad in ["", "has space", &"k".repeat(129), "tab\t"] {
        assert_invalid(IdempotencyKey::parse(bad), "idempotency_key");
    }
}
