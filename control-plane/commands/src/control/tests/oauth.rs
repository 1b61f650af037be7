//! The authorization server's operations: clients stay in their host, server keys are the
//! host's resources, and the session's refresh tokens follow the aggregate.

use portcullis_domain::session::SessionRejected;

use super::*;

fn new_client(name: &str) -> NewOAuthClient {
    NewOAuthClient {
        name: name.to_owned(),
        uri: String::new(),
        agent_type: "dcr".to_owned(),
        redirect_uris: vec!["http://127.0.0.1/".to_owned()],
    }
}

#[tokio::test]
async fn a_registered_client_is_found_by_its_id_in_its_own_host_only() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let acme = h.host(&alice, "acme").await;
    let other = h.host(&alice, "other").await;
    h.server(&alice, &acme, "github").await;
    let x = ctx(&alice);
    let client = h
        .control
        .register_client(&x, &acme, new_client("Cursor"))
        .await
        .expect("register");
    let found = h
        .control
        .oauth_client(&acme, &client.client_id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found, client);
    assert_eq!(found.redirect_uris, ["http://127.0.0.1/"]);
    assert_eq!(
        h.control
            .oauth_client(&other, &client.client_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        h.control.oauth_client(&acme, "nobody").await.expect("read"),
        None
    );
    // The admin sees it as an agent.
    let agent = h
        .control
        .get_agent(&alice, &acme, &client.agent_id)
        .await
        .expect("agent");
    assert_eq!(agent.client_id, client.client_id);
    let host = h.control.oauth_host(&acme).await.expect("host");
    assert_eq!(host.server_keys, ["github"]);
    assert!(matches!(
        h.control
            .register_client(&x, "no-such-host-0000", new_client("x"))
            .await,
        Err(ControlError::NotFound { .. })
    ));
    // A deleted agent's client id is found no more.
    h.control
        .delete_agent(&alice, &x, None, &acme, &client.agent_id)
        .await
        .expect("delete");
    assert_eq!(
        h.control
            .oauth_client(&acme, &client.client_id)
            .await
            .expect("read"),
        None
    );
    h.stop().await;
}

#[tokio::test]
async fn refresh_tokens_are_issued_once_rotated_and_reuse_revokes() {
    let h = Harness::start().await;
    let alice = h.admin("pcat_alice_secret_0123456789abcdef", "Acme").await;
    let host = h.host(&alice, "acme").await;
    let x = ctx(&alice);
    let agent = h
        .control
        .test_register_agent(&x, &host, "claude", Some("H1"))
        .await
        .expect("agent");
    let session = h
        .control
        .test_start_session(&x, &host, "H1", &agent, "S1", TrustLevel::Low)
        .await
        .expect("session");
    let client_id = format!("client-{agent}");
    let resource = "http://acme.localhost/mcp";
    let issued = h
        .control
        .issue_refresh_token(&x, &host, &session, &client_id, [1; 32], resource)
        .await
        .expect("store")
        .expect("issued");
    assert_eq!(issued.human_id, "H1");
    assert_eq!(issued.resource, resource);
    assert_eq!(
        h.control
            .issue_refresh_token(&x, &host, &session, &client_id, [2; 32], resource)
            .await
            .expect("store"),
        Err(SessionRejected::RefreshTokenAlreadyIssued)
    );
    let rotate = |presented: u8, next: u8| {
        h.control.rotate_refresh_token(
            &x,
            &host,
            &session,
            Some(&client_id),
            None,
            [presented; 32],
            [next; 32],
        )
    };
    assert!(matches!(
        rotate(1, 3).await.expect("store"),
        Ok(RefreshOutcome::Rotated(_))
    ));
    assert_eq!(
        rotate(9, 4).await.expect("store"),
        Err(SessionRejected::UnknownRefreshToken)
    );
    assert_eq!(
        rotate(1, 4).await.expect("store"),
        Ok(RefreshOutcome::Reused)
    );
    let revoked = h
        .control
        .live::<portcullis_projector::models::Session>(ModelKind::Session, &[&host, &session])
        .await
        .expect("read")
        .expect("session");
    assert_eq!(
        revoked.revoked.map(|r| r.reason).as_deref(),
        Some(portcullis_domain::session::REFRESH_TOKEN_REUSED)
    );
    assert_eq!(
        rotate(3, 5).await.expect("store"),
        Err(SessionRejected::Revoked)
    );
    h.stop().await;
}
