//! Tests of the issuer rules: exact issuers, Google's bare alias, and Microsoft's tenant
//! issuers and multi-tenant template with the allow-list.

use zeroize::Zeroizing;

use super::*;

const AUTHORITY: &str = "https://login.microsoftonline.com";
const TENANT_A: &str = "11111111-1111-4111-8111-111111111111";
const TENANT_B: &str = "22222222-2222-4222-8222-222222222222";

fn config(kind: ProviderKind) -> ProviderConfig {
    ProviderConfig {
        kind,
        client_id: "gateway".to_owned(),
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

fn microsoft(tenant: &str, allowed: &[&str]) -> IssuerRule {
    let config = ProviderConfig {
        tenant: Some(tenant.to_owned()),
        allowed_tenants: allowed.iter().map(|t| (*t).to_owned()).collect(),
        ..config(ProviderKind::Microsoft)
    };
    IssuerRule::for_config(&config).expect("valid config")
}

fn tenant_issuer(tenant: &str) -> String {
    format!("{AUTHORITY}/{tenant}/v2.0")
}

#[test]
fn a_generic_issuer_must_match_exactly_everywhere() {
    let rule = IssuerRule::for_config(&ProviderConfig {
        issuer: Some("https://idp.example.com/".to_owned()),
        ..config(ProviderKind::Oidc)
    })
    .expect("valid");
    assert_eq!(
        rule.discovery_url(),
        "https://idp.example.com/.well-known/openid-configuration"
    );
    assert!(rule.check_document("https://idp.example.com/").is_ok());
    assert!(matches!(
        rule.check_document("https://idp.example.com"),
        Err(IdpError::IssuerMismatch { .. })
    ));
    assert!(rule.check_callback("https://idp.example.com/").is_ok());
    assert!(rule.check_callback("https://evil.example.com/").is_err());
    assert_eq!(
        rule.check_token("https://idp.example.com/", None)
            .ok()
            .as_deref(),
        Some("https://idp.example.com/")
    );
    assert!(rule.check_token("https://evil.example.com/", None).is_err());
}

#[test]
fn google_tokens_may_name_the_issuer_without_a_scheme() {
    let rule = IssuerRule::for_config(&config(ProviderKind::Google)).expect("valid");
    assert_eq!(
        rule.check_token("accounts.google.com", None)
            .ok()
            .as_deref(),
        Some("https://accounts.google.com")
    );
    assert!(rule.check_token("accounts.google.com.evil", None).is_err());
    // Only for Google's own issuer: an override gets no alias.
    let local = IssuerRule::for_config(&ProviderConfig {
        issuer: Some("http://127.0.0.1:9000/google".to_owned()),
        ..config(ProviderKind::Google)
    })
    .expect("valid");
    assert!(local.check_token("accounts.google.com", None).is_err());
}

#[test]
fn a_microsoft_tenant_issuer_is_the_authority_tenant_and_version() {
    let rule = microsoft(&TENANT_A.to_uppercase(), &[]);
    assert_eq!(rule.expected(), tenant_issuer(TENANT_A));
    assert_eq!(
        rule.discovery_url(),
        format!("{AUTHORITY}/{TENANT_A}/v2.0/.well-known/openid-configuration")
    );
    assert!(rule.check_document(&tenant_issuer(TENANT_A)).is_ok());
    assert!(
        rule.check_document(&format!("{AUTHORITY}/{{tenantid}}/v2.0"))
            .is_err()
    );
}

#[test]
fn a_single_tenant_token_must_carry_that_tenant() {
    let rule = microsoft(TENANT_A, &[]);
    assert_eq!(
        rule.check_token(&tenant_issuer(TENANT_A), Some(TENANT_A))
            .ok(),
        Some(tenant_issuer(TENANT_A))
    );
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_A), Some(TENANT_B)),
        Err(IdpError::TenantNotAllowed { tenant }) if tenant == TENANT_B
    ));
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_A), None),
        Err(IdpError::InvalidIdToken(_))
    ));
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_B), Some(TENANT_A)),
        Err(IdpError::IssuerMismatch { .. })
    ));
}

#[test]
fn a_multi_tenant_document_must_carry_exactly_the_template() {
    let rule = microsoft("common", &[TENANT_A]);
    assert_eq!(
        rule.discovery_url(),
        format!("{AUTHORITY}/common/v2.0/.well-known/openid-configuration")
    );
    assert!(
        rule.check_document(&format!("{AUTHORITY}/{{tenantid}}/v2.0"))
            .is_ok()
    );
    assert!(rule.check_document(&tenant_issuer(TENANT_A)).is_err());
    assert!(
        rule.check_document(&format!("{AUTHORITY}/{{tenant}}/v2.0"))
            .is_err()
    );
    let organizations = microsoft("organizations", &[TENANT_A]);
    assert_eq!(
        organizations.discovery_url(),
        format!("{AUTHORITY}/organizations/v2.0/.well-known/openid-configuration")
    );
}

#[test]
fn a_multi_tenant_token_is_accepted_only_from_an_allowed_tenant() {
    let rule = microsoft("organizations", &[TENANT_A]);
    assert_eq!(
        rule.check_token(&tenant_issuer(TENANT_A), Some(TENANT_A))
            .ok(),
        Some(tenant_issuer(TENANT_A))
    );
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_B), Some(TENANT_B)),
        Err(IdpError::TenantNotAllowed { tenant }) if tenant == TENANT_B
    ));
}

#[test]
fn a_multi_tenant_token_issuer_must_name_its_own_tid() {
    let rule = microsoft("common", &[TENANT_A, TENANT_B]);
    // The tenant of iss and tid differ: a token minted in one tenant claiming another.
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_B), Some(TENANT_A)),
        Err(IdpError::IssuerMismatch { expected, .. }) if expected == tenant_issuer(TENANT_A)
    ));
    // The template itself is never a token issuer.
    assert!(
        rule.check_token(&format!("{AUTHORITY}/{{tenantid}}/v2.0"), Some(TENANT_A))
            .is_err()
    );
    assert!(matches!(
        rule.check_token(&tenant_issuer(TENANT_A), None),
        Err(IdpError::InvalidIdToken(_))
    ));
}

#[test]
fn a_multi_tenant_callback_iss_must_be_an_allowed_tenant_issuer() {
    let rule = microsoft("organizations", &[TENANT_A]);
    assert!(rule.check_callback(&tenant_issuer(TENANT_A)).is_ok());
    assert!(
        rule.check_callback(&tenant_issuer(&TENANT_A.to_uppercase()))
            .is_ok()
    );
    assert!(matches!(
        rule.check_callback(&tenant_issuer(TENANT_B)),
        Err(IdpError::TenantNotAllowed { tenant }) if tenant == TENANT_B
    ));
    for not_a_tenant_issuer in [
        format!("{AUTHORITY}/{{tenantid}}/v2.0"),
        format!("{AUTHORITY}/common/v2.0"),
        format!("https://evil.example.com/{TENANT_A}/v2.0"),
        format!("{AUTHORITY}/{TENANT_A}/v2.0/extra"),
        format!("{AUTHORITY}/{TENANT_A}"),
    ] {
        assert!(
            matches!(
                rule.check_callback(&not_a_tenant_issuer),
                Err(IdpError::IssuerMismatch { .. })
            ),
            "{not_a_tenant_issuer}"
        );
    }
}

#[test]
fn the_authority_override_moves_every_microsoft_issuer() {
    let config = ProviderConfig {
        tenant: Some("common".to_owned()),
        allowed_tenants: vec![TENANT_A.to_owned()],
        authority: Some("http://127.0.0.1:9000/".to_owned()),
        ..config(ProviderKind::Microsoft)
    };
    let rule = IssuerRule::for_config(&config).expect("valid");
    assert_eq!(rule.expected(), "http://127.0.0.1:9000/{tenantid}/v2.0");
    assert_eq!(
        rule.check_token(
            &format!("http://127.0.0.1:9000/{TENANT_A}/v2.0"),
            Some(TENANT_A)
        )
        .ok(),
        Some(format!("http://127.0.0.1:9000/{TENANT_A}/v2.0"))
    );
}

#[test]
fn github_has_no_issuer_rule() {
    assert!(matches!(
        IssuerRule::for_config(&config(ProviderKind::GitHub)),
        Err(IdpError::Config { field: "kind", .. })
    ));
}
