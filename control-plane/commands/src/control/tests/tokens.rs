//! Admin tokens and organizations.

use super::*;

const SECRET: &str = "pcat_0123456789abcdef0123456789abcdef";

#[test]
fn generated_tokens_are_recognizable_and_carry_256_bits() {
    let a = generate_admin_token();
    let b = generate_admin_token();
    assert!(a.starts_with(ADMIN_TOKEN_PREFIX), "{a}");
    assert_eq!(a.len(), ADMIN_TOKEN_PREFIX.len() + 64);
    assert_ne!(a, b);
    assert_eq!(admin_token_id(&a).len(), 32);
}

#[tokio::test]
async fn a_bootstrap_token_authenticates_for_its_organizations() {
    let h = Harness::start().await;
    let context = Context::system("test", "boot");
    let token_id = h
        .control
        .ensure_admin_token(&context, SECRET, &["default".to_owned()], "bootstrap")
        .await
        .expect("ensured");
    assert_eq!(token_id, admin_token_id(SECRET));
    let principal = h.control.authenticate(SECRET).await.expect("authenticated");
    assert_eq!(principal.token_id(), token_id);
    assert_eq!(principal.org_ids(), ["default".to_owned()]);
    h.stop().await;
}

#[tokio::test]
async fn ensuring_the_bootstrap_token_again_records_nothing_but_a_new_organization() {
    let h = Harness::start().await;
    let context = Context::system("test", "boot");
    let orgs = ["default".to_owned()];
    h.control
        .ensure_admin_token(&context, SECRET, &orgs, "bootstrap")
        .await
        .expect("first");
    let head = h.head().await;
    h.control
        .ensure_admin_token(&context, SECRET, &orgs, "bootstrap")
        .await
        .expect("again");
    assert_eq!(h.head().await, head, "nothing recorded twice");
    let both = ["default".to_owned(), "other".to_owned()];
    h.control
        .ensure_admin_token(&context, SECRET, &both, "bootstrap")
        .await
        .expect("with another organization");
    let principal = h.control.authenticate(SECRET).await.expect("auth");
    assert_eq!(principal.org_ids(), both);
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_unknown_or_empty_secret_is_unauthenticated() {
    let h = Harness::start().await;
    let context = Context::system("test", "boot");
    h.control
        .ensure_admin_token(&context, SECRET, &[], "bootstrap")
        .await
        .expect("ensured");
    for secret in ["", "pcat_nope", &format!("{SECRET}x"), &"x".repeat(600)] {
        assert!(
            matches!(
                h.control.authenticate(secret).await,
                Err(ControlError::Unauthenticated)
            ),
            "{secret}"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_short_bootstrap_secret_is_refused() {
    let h = Harness::start().await;
    let context = Context::system("test", "boot");
    assert_invalid(
        h.control
            .ensure_admin_token(&context, "short", &[], "bootstrap")
            .await,
        "admin_token",
    );
    h.stop().await;
}

#[tokio::test]
async fn an_admin_belongs_to_every_organization_it_creates() {
    let h = Harness::start().await;
    let principal = h.admin(SECRET, "Acme").await;
    let second = h
        .control
        .create_organization(&principal, &ctx(&principal), None, " Acme Labs ")
        .await
        .expect("second organization");
    assert_eq!(second.name, "Acme Labs");
    let principal = h.control.authenticate(SECRET).await.expect("auth");
    let names: Vec<String> = h
        .control
        .list_organizations(&principal)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["Acme", "Acme Labs"]);
    h.stop().await;
}
