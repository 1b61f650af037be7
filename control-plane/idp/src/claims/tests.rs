//! Tests of the email rules: which flag vouches for an address, how userinfo fills what the
//! ID token lacks, and the leniency of provider-specific claims.

use serde_json::json;

use super::*;

fn claim(email: Option<&str>, vouched: Option<bool>) -> EmailClaim {
    EmailClaim {
        email: email.map(str::to_owned),
        vouched,
    }
}

#[test]
fn only_an_address_flagged_true_is_verified() {
    assert_eq!(
        claim(Some("a@corp.example"), Some(true)).into_emails(),
        (vec!["a@corp.example".to_owned()], None)
    );
    for flag in [Some(false), None] {
        assert_eq!(
            claim(Some("a@corp.example"), flag).into_emails(),
            (Vec::new(), Some("a@corp.example".to_owned())),
            "{flag:?}"
        );
    }
    assert_eq!(claim(None, Some(true)).into_emails(), (Vec::new(), None));
    assert_eq!(
        claim(Some(""), Some(true)).into_emails(),
        (Vec::new(), None)
    );
}

#[test]
fn userinfo_supplies_the_email_when_the_id_token_has_none() {
    let merged = EmailClaim::merge(
        claim(None, None),
        Some(claim(Some("a@corp.example"), Some(true))),
    );
    assert_eq!(merged, claim(Some("a@corp.example"), Some(true)));
}

#[test]
fn userinfo_supplies_the_flag_only_for_the_same_address() {
    let same = EmailClaim::merge(
        claim(Some("a@corp.example"), None),
        Some(claim(Some("a@corp.example"), Some(true))),
    );
    assert_eq!(same, claim(Some("a@corp.example"), Some(true)));
    let other = EmailClaim::merge(
        claim(Some("a@corp.example"), None),
        Some(claim(Some("b@corp.example"), Some(true))),
    );
    assert_eq!(other, claim(Some("a@corp.example"), None));
}

#[test]
fn the_id_tokens_flag_wins_over_userinfo() {
    let merged = EmailClaim::merge(
        claim(Some("a@corp.example"), Some(false)),
        Some(claim(Some("a@corp.example"), Some(true))),
    );
    assert_eq!(merged, claim(Some("a@corp.example"), Some(false)));
}

#[test]
fn provider_claims_of_unexpected_types_do_not_break_parsing() {
    let claims: ProviderClaims = serde_json::from_value(json!({
        "tid": 42, "oid": ["x"], "xms_edov": "true", "hd": "corp.example"
    }))
    .expect("lenient");
    assert_eq!(claims.tid(), None);
    assert_eq!(claims.oid(), None);
    assert_eq!(claims.email_domain_owner_verified(), Some(false));
}

#[test]
fn xms_edov_vouches_only_when_it_is_json_true() {
    let of = |value: serde_json::Value| {
        serde_json::from_value::<ProviderClaims>(json!({ "xms_edov": value }))
            .expect("lenient")
            .email_domain_owner_verified()
    };
    assert_eq!(of(json!(true)), Some(true));
    assert_eq!(of(json!(false)), Some(false));
    assert_eq!(of(json!(1)), Some(false));
    assert_eq!(of(json!("1")), Some(false));
    assert_eq!(
        ProviderClaims::default().email_domain_owner_verified(),
        None
    );
}

#[test]
fn the_iss_parameter_is_required_only_when_announced_as_true() {
    let of = |value: serde_json::Value| {
        serde_json::from_value::<IssParameterMetadata>(value)
            .expect("lenient")
            .iss_parameter_supported()
    };
    assert!(of(
        json!({"authorization_response_iss_parameter_supported": true})
    ));
    assert!(!of(
        json!({"authorization_response_iss_parameter_supported": false})
    ));
    assert!(!of(
        json!({"authorization_response_iss_parameter_supported": "true"})
    ));
    assert!(!of(json!({})));
}
