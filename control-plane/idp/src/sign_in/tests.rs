//! Tests of callback parsing, the state comparison, the pending sign-in's age, and that no
//! secret reaches `Debug`.

use std::time::{Duration, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::*;

fn pending(started_at: u64) -> PendingSignIn {
    PendingSignIn {
        kind: ProviderKind::Oidc,
        client_id: "gateway".to_owned(),
        state: Zeroizing::new("state-value-123".to_owned()),
        nonce: Some(Zeroizing::new("nonce-value-456".to_owned())),
        pkce_verifier: Zeroizing::new("verifier-value-789".to_owned()),
        redirect_uri: "https://gw.example.com/consent/idp/callback".to_owned(),
        issuer: "https://idp.example.com".to_owned(),
        iss_required: false,
        started_at,
    }
}

fn with_state(state: Option<&str>) -> Callback {
    Callback {
        state: state.map(str::to_owned),
        ..Callback::default()
    }
}

#[test]
fn a_callback_query_is_read_parameter_by_parameter() {
    let callback =
        Callback::from_query("code=abc&state=xyz&iss=https%3A%2F%2Fidp.example.com&other=1");
    assert_eq!(
        callback,
        Callback {
            code: Some("abc".to_owned()),
            state: Some("xyz".to_owned()),
            iss: Some("https://idp.example.com".to_owned()),
            error: None,
            error_description: None,
        }
    );
}

#[test]
fn a_leading_question_mark_is_ignored() {
    assert_eq!(
        Callback::from_query("?code=abc").code.as_deref(),
        Some("abc")
    );
}

#[test]
fn an_error_callback_keeps_its_code_and_description() {
    let callback =
        Callback::from_query("error=access_denied&error_description=User+said+no&state=s");
    assert_eq!(callback.error.as_deref(), Some("access_denied"));
    assert_eq!(callback.error_description.as_deref(), Some("User said no"));
    assert_eq!(callback.code, None);
}

#[test]
fn a_parameter_given_twice_counts_as_absent() {
    let callback = Callback::from_query("code=a&state=s1&code=b&state=s1&iss=x&iss=x&error=e");
    assert_eq!(callback.code, None);
    assert_eq!(callback.state, None);
    assert_eq!(callback.iss, None);
    assert_eq!(callback.error.as_deref(), Some("e"));
    // Three times is still absent.
    assert_eq!(Callback::from_query("code=a&code=a&code=a").code, None);
}

#[test]
fn the_state_must_be_present_and_equal() {
    let pending = pending(0);
    assert!(
        pending
            .check_state(&with_state(Some("state-value-123")))
            .is_ok()
    );
    for wrong in [
        None,
        Some(""),
        Some("state-value-12"),
        Some("state-value-1234"),
    ] {
        assert!(
            matches!(
                pending.check_state(&with_state(wrong)),
                Err(IdpError::StateMismatch)
            ),
            "{wrong:?}"
        );
    }
}

#[test]
fn a_pending_sign_in_expires_after_ten_minutes() {
    let started = 1_700_000_000;
    let pending = pending(started);
    let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
    assert!(pending.check_age(at(started)).is_ok());
    assert!(pending.check_age(at(started + 600)).is_ok());
    assert!(matches!(
        pending.check_age(at(started + 601)),
        Err(IdpError::Expired)
    ));
    // Dated in the future beyond the skew: refused too.
    assert!(matches!(
        pending.check_age(at(started - 120)),
        Err(IdpError::Expired)
    ));
}

#[test]
fn debug_output_shows_no_secret() {
    let text = format!("{:?}", pending(0));
    for secret in ["state-value-123", "nonce-value-456", "verifier-value-789"] {
        assert!(!text.contains(secret), "{text}");
    }
    let callback = Callback::from_query("code=the-code&state=the-state");
    let text = format!("{callback:?}");
    assert!(
        !text.contains("the-code") && !text.contains("the-state"),
        "{text}"
    );
}

#[test]
fn a_pending_sign_in_survives_a_serde_round_trip() {
    let original = pending(42);
    let json = serde_json::to_string(&original).expect("serializes");
    let back: PendingSignIn = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back.state.as_str(), "state-value-123");
    assert_eq!(back.pkce_verifier.as_str(), "verifier-value-789");
    assert_eq!(back.kind(), ProviderKind::Oidc);
    assert_eq!(back.redirect_uri(), original.redirect_uri());
    assert_eq!(back.started_at, 42);
}
