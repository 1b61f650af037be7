//! Tests of `Idp` that need no provider: the checks `start` and `finish` make before any
//! request (configuration, redirect URI, state, provider errors, changed settings).

use portcullis_upstream::UrlPolicy;
use zeroize::Zeroizing;

use super::*;

fn github() -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::GitHub,
        client_id: "Iv1.gateway".to_owned(),
        client_secret: Zeroizing::new("secret".to_owned()),
        issuer: None,
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base: None,
    }
}

const REDIRECT: &str = "https://gw.example.com/consent/idp/callback";

async fn started(idp: &Idp) -> SignInStart {
    idp.start(&github(), REDIRECT, None).await.expect("starts")
}

fn state_of(start: &SignInStart) -> String {
    start.pending.state.as_str().to_owned()
}

#[tokio::test]
async fn start_refuses_a_config_the_policy_refuses() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let config = ProviderConfig {
        authorization_endpoint: Some("http://github.example.com/login/oauth/authorize".into()),
        ..github()
    };
    assert!(matches!(
        idp.start(&config, REDIRECT, None).await,
        Err(IdpError::Config {
            field: "authorization_endpoint",
            ..
        })
    ));
}

#[tokio::test]
async fn start_refuses_a_redirect_uri_that_is_not_an_absolute_url() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    for bad in [
        "/consent/callback",
        "javascript:alert(1)",
        "https://gw.example.com/cb#x",
    ] {
        assert!(
            matches!(
                idp.start(&github(), bad, None).await,
                Err(IdpError::Config {
                    field: "redirect_uri",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn start_drops_a_login_hint_with_control_characters() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let start = idp
        .start(&github(), REDIRECT, Some("alice\r\nSet-Cookie: x"))
        .await
        .expect("starts");
    assert!(!start.authorization_url.contains("login="));
}

#[tokio::test]
async fn the_started_sign_in_prints_no_state_or_verifier() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let start = started(&idp).await;
    let text = format!("{start:?}");
    assert!(!text.contains(&state_of(&start)), "{text}");
    assert!(
        !text.contains(start.pending.pkce_verifier.as_str()),
        "{text}"
    );
    assert!(
        text.contains("https://github.com/login/oauth/authorize"),
        "{text}"
    );
}

#[tokio::test]
async fn finish_refuses_a_callback_with_another_state() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let start = started(&idp).await;
    let callback = Callback::from_query("code=abc&state=forged");
    assert!(matches!(
        idp.finish(&github(), &start.pending, &callback).await,
        Err(IdpError::StateMismatch)
    ));
}

#[tokio::test]
async fn finish_reports_a_provider_refusal_after_checking_the_state() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let start = started(&idp).await;
    let query = format!(
        "error=access_denied&error_description=The+user+has+denied+your+application&state={}",
        state_of(&start)
    );
    match idp
        .finish(&github(), &start.pending, &Callback::from_query(&query))
        .await
    {
        Err(IdpError::Denied { error, description }) => {
            assert_eq!(error, "access_denied");
            assert_eq!(
                description.as_deref(),
                Some("The user has denied your application")
            );
        }
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[tokio::test]
async fn finish_refuses_a_sign_in_started_with_other_settings() {
    let idp = Idp::new(UrlPolicy::DEVELOPMENT);
    let start = started(&idp).await;
    let query = format!("code=abc&state={}", state_of(&start));
    let moved = ProviderConfig {
        authorization_endpoint: Some("http://127.0.0.1:1/login/oauth/authorize".into()),
        ..github()
    };
    let other_client = ProviderConfig {
        client_id: "Iv1.other".to_owned(),
        ..github()
    };
    for config in [moved, other_client] {
        assert!(matches!(
            idp.finish(&config, &start.pending, &Callback::from_query(&query))
                .await,
            Err(IdpError::Protocol(_))
        ));
    }
}

#[tokio::test]
async fn finish_refuses_an_old_sign_in() {
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let mut start = started(&idp).await;
    start.pending.started_at -= SIGN_IN_MAX_AGE_SECONDS + 1;
    let query = format!("code=abc&state={}", state_of(&start));
    assert!(matches!(
        idp.finish(&github(), &start.pending, &Callback::from_query(&query))
            .await,
        Err(IdpError::Expired)
    ));
}

const SIGN_IN_MAX_AGE_SECONDS: u64 = crate::sign_in::SIGN_IN_MAX_AGE.as_secs();

#[tokio::test]
async fn an_unreachable_provider_is_reported_with_what_was_fetched() {
    // Production policy: the discovery URL's loopback address is refused before connecting.
    let idp = Idp::new(UrlPolicy::PRODUCTION);
    let config = ProviderConfig {
        kind: ProviderKind::Oidc,
        issuer: Some("https://localhost/".to_owned()),
        ..github()
    };
    match idp.start(&config, REDIRECT, None).await {
        Err(IdpError::Unreachable { what, source }) => {
            assert_eq!(what, "discovery document");
            assert!(
                matches!(source, portcullis_upstream::HttpFailure::Rejected(_)),
                "{source:?}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
