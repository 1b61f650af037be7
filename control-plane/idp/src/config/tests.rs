//! Tests of `ProviderConfig::check` and `check_for`: required fields, fields that do not apply,
//! URL syntax, the policy's https rule and the Microsoft tenant rules.

use portcullis_upstream::UrlPolicy;
use zeroize::Zeroizing;

use super::*;

const TENANT_A: &str = "11111111-1111-4111-8111-111111111111";
const TENANT_B: &str = "22222222-2222-4222-8222-222222222222";

fn base(kind: ProviderKind) -> ProviderConfig {
    ProviderConfig {
        kind,
        client_id: "gateway".to_owned(),
        client_secret: Zeroizing::new("s3cret-value".to_owned()),
        issuer: None,
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base: None,
    }
}

fn oidc(issuer: &str) -> ProviderConfig {
    ProviderConfig {
        issuer: Some(issuer.to_owned()),
        ..base(ProviderKind::Oidc)
    }
}

fn microsoft(tenant: &str, allowed: &[&str]) -> ProviderConfig {
    ProviderConfig {
        tenant: Some(tenant.to_owned()),
        allowed_tenants: allowed.iter().map(|t| (*t).to_owned()).collect(),
        ..base(ProviderKind::Microsoft)
    }
}

/// `Ok` or the field the check named.
#[track_caller]
fn check(config: &ProviderConfig, expected: Result<(), &str>) {
    let got = config.check().map_err(|error| match error {
        IdpError::Config { field, .. } => field,
        other => panic!("expected a Config error, got {other:?}"),
    });
    assert_eq!(got, expected, "{config:?}");
}

#[test]
fn a_complete_generic_oidc_config_passes() {
    check(&oidc("https://idp.example.com"), Ok(()));
    check(&oidc("https://idp.example.com/realms/corp/"), Ok(()));
}

#[test]
fn a_generic_oidc_config_needs_an_issuer() {
    check(&base(ProviderKind::Oidc), Err("issuer"));
}

#[test]
fn client_id_and_secret_are_required() {
    check(
        &ProviderConfig {
            client_id: " ".to_owned(),
            ..oidc("https://idp.example.com")
        },
        Err("client_id"),
    );
    check(
        &ProviderConfig {
            client_secret: Zeroizing::new(String::new()),
            ..oidc("https://idp.example.com")
        },
        Err("client_secret"),
    );
}

#[test]
fn issuer_urls_must_be_plain_absolute_http_urls() {
    for bad in [
        "idp.example.com",
        "ftp://idp.example.com",
        "https://user:pw@idp.example.com",
        "https://idp.example.com#frag",
        "https://idp.example.com?tenant=1",
        " https://idp.example.com",
        "",
    ] {
        check(&oidc(bad), Err("issuer"));
    }
}

#[test]
fn fields_of_other_kinds_are_refused() {
    check(
        &ProviderConfig {
            tenant: Some(TENANT_A.to_owned()),
            ..oidc("https://idp.example.com")
        },
        Err("tenant"),
    );
    check(
        &ProviderConfig {
            api_base: Some("https://api.example.com".to_owned()),
            ..base(ProviderKind::Google)
        },
        Err("api_base"),
    );
    check(
        &ProviderConfig {
            issuer: Some("https://login.example.com".to_owned()),
            ..microsoft(TENANT_A, &[])
        },
        Err("issuer"),
    );
    check(
        &ProviderConfig {
            authority: Some("https://login.example.com".to_owned()),
            ..base(ProviderKind::GitHub)
        },
        Err("authority"),
    );
}

#[test]
fn google_and_github_need_nothing_but_credentials() {
    check(&base(ProviderKind::Google), Ok(()));
    check(&base(ProviderKind::GitHub), Ok(()));
}

#[test]
fn github_endpoints_may_carry_a_query_but_the_api_base_may_not() {
    check(
        &ProviderConfig {
            authorization_endpoint: Some(
                "https://ghe.example.com/login/oauth/authorize?x=1".into(),
            ),
            ..base(ProviderKind::GitHub)
        },
        Ok(()),
    );
    check(
        &ProviderConfig {
            api_base: Some("https://ghe.example.com/api/v3?x=1".into()),
            ..base(ProviderKind::GitHub)
        },
        Err("api_base"),
    );
}

#[test]
fn a_microsoft_config_needs_a_tenant() {
    check(&base(ProviderKind::Microsoft), Err("tenant"));
}

#[test]
fn a_microsoft_tenant_is_a_guid_common_or_organizations() {
    check(&microsoft(TENANT_A, &[]), Ok(()));
    check(&microsoft(&TENANT_A.to_uppercase(), &[]), Ok(()));
    check(&microsoft("common", &[TENANT_A]), Ok(()));
    check(&microsoft("organizations", &[TENANT_A, TENANT_B]), Ok(()));
    check(&microsoft("consumers", &[TENANT_A]), Err("tenant"));
    check(&microsoft("contoso.onmicrosoft.com", &[]), Err("tenant"));
    check(
        &microsoft("11111111-1111-4111-8111-11111111111", &[]),
        Err("tenant"),
    );
    check(
        &microsoft("1111111g-1111-4111-8111-111111111111", &[]),
        Err("tenant"),
    );
}

#[test]
fn a_multi_tenant_microsoft_config_must_list_allowed_tenants() {
    check(&microsoft("common", &[]), Err("allowed_tenants"));
    check(&microsoft("organizations", &[]), Err("allowed_tenants"));
    check(&microsoft("common", &["contoso"]), Err("allowed_tenants"));
}

#[test]
fn a_single_tenant_microsoft_config_allows_only_its_own_tenant() {
    check(&microsoft(TENANT_A, &[TENANT_A]), Ok(()));
    check(&microsoft(TENANT_A, &[&TENANT_A.to_uppercase()]), Ok(()));
    check(&microsoft(TENANT_A, &[TENANT_B]), Err("allowed_tenants"));
    check(
        &microsoft(TENANT_A, &[TENANT_A, TENANT_B]),
        Err("allowed_tenants"),
    );
}

#[test]
fn the_microsoft_tenant_is_lowercased_for_issuers() {
    let config = microsoft(&TENANT_A.to_uppercase(), &[]);
    assert_eq!(
        config.microsoft_tenant().ok(),
        Some(MicrosoftTenant::Single(TENANT_A.to_owned()))
    );
}

#[test]
fn check_for_requires_https_outside_development() {
    let plain = oidc("http://idp.example.com");
    assert!(plain.check().is_ok());
    assert!(matches!(
        plain.check_for(UrlPolicy::PRODUCTION),
        Err(IdpError::Config {
            field: "issuer",
            ..
        })
    ));
    assert!(plain.check_for(UrlPolicy::DEVELOPMENT).is_ok());
}

#[test]
fn check_for_refuses_a_private_address_literal_in_production() {
    let config = ProviderConfig {
        authority: Some("https://127.0.0.1:8443".to_owned()),
        ..microsoft(TENANT_A, &[])
    };
    assert!(matches!(
        config.check_for(UrlPolicy::PRODUCTION),
        Err(IdpError::Config {
            field: "authority",
            ..
        })
    ));
    assert!(config.check_for(UrlPolicy::DEVELOPMENT).is_ok());
}

#[test]
fn check_for_checks_the_github_defaults_too() {
    assert!(
        base(ProviderKind::GitHub)
            .check_for(UrlPolicy::PRODUCTION)
            .is_ok()
    );
    let config = ProviderConfig {
        token_endpoint: Some("http://169.254.169.254/token".to_owned()),
        ..base(ProviderKind::GitHub)
    };
    assert!(matches!(
        config.check_for(UrlPolicy::DEVELOPMENT),
        Err(IdpError::Config {
            field: "token_endpoint",
            ..
        })
    ));
}

#[test]
fn debug_output_redacts_the_client_secret() {
    let text = format!("{:?}", oidc("https://idp.example.com"));
    assert!(!text.contains("s3cret-value"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}

#[test]
fn defaults_fill_the_presets() {
    assert_eq!(
        base(ProviderKind::Google).oidc_issuer().as_deref(),
        Some(GOOGLE_ISSUER)
    );
    let config = ProviderConfig {
        authority: Some("http://127.0.0.1:9000/".to_owned()),
        ..microsoft(TENANT_A, &[])
    };
    assert_eq!(config.microsoft_authority(), "http://127.0.0.1:9000");
    assert_eq!(
        microsoft(TENANT_A, &[]).microsoft_authority(),
        MICROSOFT_AUTHORITY
    );
    let github = base(ProviderKind::GitHub);
    assert_eq!(
        github.github_authorization_endpoint(),
        GITHUB_AUTHORIZATION_ENDPOINT
    );
    assert_eq!(github.github_token_endpoint(), GITHUB_TOKEN_ENDPOINT);
    assert_eq!(github.github_api_base(), GITHUB_API_BASE);
}
