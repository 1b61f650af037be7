//! Tests of the ID-token rules with tokens signed here (Ed25519 test keys), of the identity
//! built from claims (OIDC, Google, Microsoft single and multi-tenant), of the callback checks
//! and of the token endpoint's errors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreHmacKey, CoreJsonWebKeySet};
use openidconnect::{JsonWebKeyId, PrivateSigningKey, SubjectIdentifier};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::*;
use crate::claims::ProviderUserInfo;

/// Test-only keys, generated with `openssl genpkey -algorithm ed25519`.
const KEY_ONE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA/ym2Sbawb2MuPKGEEbHJdVcoO6zFzr7WZv/XbhfnPS\n-----END PRIVATE KEY-----\n";
const KEY_TWO: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIANCP7Xl+APBFcXW7sJM7jrm4arsnQZawA/IiAjpvF7\n-----END PRIVATE KEY-----\n";

const CLIENT: &str = "gateway";
const NONCE: &str = "nonce-from-the-pending-sign-in";
const ISSUER: &str = "https://idp.example.com";
const AUTHORITY: &str = "https://login.microsoftonline.com";
const TENANT_A: &str = "11111111-1111-4111-8111-111111111111";
const TENANT_B: &str = "22222222-2222-4222-8222-222222222222";

fn key(pem: &str, kid: &str) -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(pem, Some(JsonWebKeyId::new(kid.to_owned())))
        .expect("test key")
}

fn key_set(keys: &[&CoreEdDsaPrivateSigningKey]) -> CoreJsonWebKeySet {
    CoreJsonWebKeySet::new(keys.iter().map(|k| k.as_verification_key()).collect())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `payload` with `header`, signed by `sign`.
fn jws(header: &Value, payload: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn signed_with(key: &CoreEdDsaPrivateSigningKey, kid: &str, payload: &Value) -> String {
    jws(
        &json!({"alg": "EdDSA", "kid": kid, "typ": "JWT"}),
        payload,
        |input| {
            key.sign(&CoreJwsSigningAlgorithm::EdDsa, input)
                .expect("signs")
        },
    )
}

fn parse(jwt: &str) -> ProviderIdToken {
    jwt.parse().expect("parses")
}

/// Claims that pass every rule for a generic provider at `now`.
fn claims(now: DateTime<Utc>) -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "alice",
        "exp": (now + TimeDelta::minutes(5)).timestamp(),
        "iat": now.timestamp(),
        "nonce": NONCE,
        "email": "alice@corp.example",
        "email_verified": true,
        "name": "Alice",
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (key, value) in changes.as_object().expect("object") {
        if value.is_null() {
            base.as_object_mut().expect("object").remove(key);
        } else {
            base[key] = value.clone();
        }
    }
    base
}

fn expect(now: DateTime<Utc>) -> TokenExpectations<'static> {
    TokenExpectations {
        client_id: CLIENT,
        nonce: NONCE,
        now,
    }
}

/// Signs `payload` with key one and verifies it; the verified claims as JSON, or the failure.
fn verify(payload: &Value, now: DateTime<Utc>) -> Result<ProviderIdTokenClaims, VerifyFailure> {
    let one = key(KEY_ONE, "one");
    let token = parse(&signed_with(&one, "one", payload));
    verify_id_token(&token, &key_set(&[&one]), expect(now), None).cloned()
}

#[track_caller]
fn assert_invalid(result: Result<ProviderIdTokenClaims, VerifyFailure>, containing: &str) {
    match result {
        Err(VerifyFailure::Invalid(IdpError::InvalidIdToken(detail))) => {
            assert!(
                detail.contains(containing),
                "{detail:?} lacks {containing:?}"
            );
        }
        other => panic!("expected an invalid ID token ({containing}), got {other:?}"),
    }
}

fn generic_rule() -> IssuerRule {
    IssuerRule::Exact {
        issuer: ISSUER.to_owned(),
        alias: None,
    }
}

#[test]
fn a_token_signed_by_the_providers_key_passes() {
    let now = Utc::now();
    let claims = verify(&claims(now), now).expect("valid");
    let identity =
        identity(ProviderKind::Oidc, &generic_rule(), &claims, None, None).expect("identity");
    assert_eq!(
        identity,
        ExternalIdentity {
            issuer: ISSUER.to_owned(),
            subject: "alice".to_owned(),
            verified_emails: vec!["alice@corp.example".to_owned()],
            unverified_email: None,
            display_name: Some("Alice".to_owned()),
        }
    );
}

#[test]
fn an_email_without_email_verified_true_is_not_verified() {
    let now = Utc::now();
    for flag in [json!(false), Value::Null] {
        let claims =
            verify(&with(claims(now), json!({ "email_verified": flag })), now).expect("valid");
        let identity =
            identity(ProviderKind::Google, &generic_rule(), &claims, None, None).expect("identity");
        assert!(identity.verified_emails.is_empty(), "{flag}");
        assert_eq!(
            identity.unverified_email.as_deref(),
            Some("alice@corp.example")
        );
    }
}

#[test]
fn a_string_email_verified_makes_the_token_unreadable_never_verified() {
    // openidconnect's accept-string-booleans feature is off on purpose: "true" is refused.
    let now = Utc::now();
    let one = key(KEY_ONE, "one");
    let jwt = signed_with(
        &one,
        "one",
        &with(claims(now), json!({"email_verified": "true"})),
    );
    assert!(jwt.parse::<ProviderIdToken>().is_err());
    let body = json!({"access_token": "at", "token_type": "Bearer", "id_token": jwt})
        .to_string()
        .into_bytes();
    let parse_error = serde_path_to_error::deserialize::<_, ProviderTokenResponse>(
        &mut serde_json::Deserializer::from_slice(&body),
    )
    .expect_err("refused");
    assert!(matches!(
        token_error(RequestTokenError::Parse(parse_error, body)),
        IdpError::InvalidIdToken(_)
    ));
}

#[test]
fn the_audience_must_contain_the_client() {
    let now = Utc::now();
    assert_invalid(
        verify(&with(claims(now), json!({"aud": "other"})), now),
        "other",
    );
}

#[test]
fn several_audiences_need_this_client_as_authorized_party() {
    let now = Utc::now();
    let several = with(claims(now), json!({"aud": [CLIENT, "other"]}));
    assert_invalid(verify(&several, now), "azp");
    assert_invalid(
        verify(&with(several.clone(), json!({"azp": "other"})), now),
        "azp",
    );
    assert!(verify(&with(several, json!({"azp": CLIENT})), now).is_ok());
}

#[test]
fn an_expired_token_is_refused_beyond_the_clock_skew() {
    let now = Utc::now();
    let exp = |seconds: i64| json!({"exp": (now - TimeDelta::seconds(seconds)).timestamp(), "iat": (now - TimeDelta::minutes(10)).timestamp()});
    assert!(verify(&with(claims(now), exp(30)), now).is_ok());
    assert_invalid(verify(&with(claims(now), exp(120)), now), "expired");
}

#[test]
fn a_token_issued_in_the_future_is_refused_beyond_the_clock_skew() {
    let now = Utc::now();
    let iat = |seconds: i64| json!({"iat": (now + TimeDelta::seconds(seconds)).timestamp()});
    assert!(verify(&with(claims(now), iat(30)), now).is_ok());
    assert_invalid(verify(&with(claims(now), iat(120)), now), "future");
}

#[test]
fn the_nonce_must_be_the_pending_one() {
    let now = Utc::now();
    assert_invalid(
        verify(&with(claims(now), json!({"nonce": "another"})), now),
        "nonce",
    );
    assert_invalid(
        verify(&with(claims(now), json!({"nonce": null})), now),
        "nonce",
    );
}

#[test]
fn a_key_the_set_does_not_have_asks_for_a_refetch() {
    let now = Utc::now();
    let two = key(KEY_TWO, "two");
    let token = parse(&signed_with(&two, "two", &claims(now)));
    let one = key(KEY_ONE, "one");
    assert!(matches!(
        verify_id_token(&token, &key_set(&[&one]), expect(now), None),
        Err(VerifyFailure::UnknownKey)
    ));
    // After the refetch the new key is there.
    assert!(verify_id_token(&token, &key_set(&[&one, &two]), expect(now), None).is_ok());
}

#[test]
fn a_signature_by_another_key_under_a_known_kid_is_refused() {
    let now = Utc::now();
    let two = key(KEY_TWO, "one");
    let token = parse(&signed_with(&two, "one", &claims(now)));
    let one = key(KEY_ONE, "one");
    assert_invalid(
        verify_id_token(&token, &key_set(&[&one]), expect(now), None).cloned(),
        "signature",
    );
}

#[test]
fn hmac_and_unsigned_tokens_are_refused() {
    let now = Utc::now();
    let one = key(KEY_ONE, "one");
    // HS256 keyed with the client secret, as an attacker who knows it (or a confused OP) would.
    let hmac = CoreHmacKey::new("client-secret".as_bytes());
    let hs256 = jws(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims(now),
        |input| {
            hmac.sign(&CoreJwsSigningAlgorithm::HmacSha256, input)
                .expect("signs")
        },
    );
    assert_invalid(
        verify_id_token(&parse(&hs256), &key_set(&[&one]), expect(now), None).cloned(),
        "signature",
    );
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none"}).to_string().as_bytes()),
        b64(claims(now).to_string().as_bytes())
    );
    let token = unsigned
        .parse::<ProviderIdToken>()
        .expect("alg none still parses");
    assert_invalid(
        verify_id_token(&token, &key_set(&[&one]), expect(now), None).cloned(),
        "signature",
    );
}

#[test]
fn at_hash_must_match_the_access_token_when_present() {
    let now = Utc::now();
    let one = key(KEY_ONE, "one");
    let access_token = AccessToken::new("the-access-token".to_owned());
    let right = AccessTokenHash::from_token(
        &access_token,
        &CoreJwsSigningAlgorithm::EdDsa,
        &one.as_verification_key(),
    )
    .expect("hash");
    let keys = key_set(&[&one]);
    let good = parse(&signed_with(
        &one,
        "one",
        &with(claims(now), json!({"at_hash": right.to_string()})),
    ));
    assert!(verify_id_token(&good, &keys, expect(now), Some(&access_token)).is_ok());
    let bad = parse(&signed_with(
        &one,
        "one",
        &with(claims(now), json!({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"})),
    ));
    assert_invalid(
        verify_id_token(&bad, &keys, expect(now), Some(&access_token)).cloned(),
        "at_hash",
    );
}

fn microsoft_claims(now: DateTime<Utc>, tenant: &str) -> Value {
    with(
        claims(now),
        json!({
            "iss": format!("{AUTHORITY}/{tenant}/v2.0"),
            "sub": "pairwise-sub-differs-per-app",
            "tid": tenant,
            "oid": "aaaaaaaa-0000-4000-8000-000000000001",
            "email_verified": null,
            "preferred_username": "alice@corp.example",
        }),
    )
}

fn single(tenant: &str) -> IssuerRule {
    IssuerRule::MicrosoftTenant {
        issuer: format!("{AUTHORITY}/{tenant}/v2.0"),
        tenant: tenant.to_owned(),
    }
}

fn multi(allowed: &[&str]) -> IssuerRule {
    IssuerRule::MicrosoftMulti {
        authority: AUTHORITY.to_owned(),
        segment: "organizations",
        allowed: allowed.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[test]
fn a_microsoft_identity_is_keyed_by_tenant_and_object_id() {
    let now = Utc::now();
    let claims = verify(
        &with(microsoft_claims(now, TENANT_A), json!({"xms_edov": true})),
        now,
    )
    .expect("valid");
    let identity = identity(
        ProviderKind::Microsoft,
        &single(TENANT_A),
        &claims,
        None,
        None,
    )
    .expect("identity");
    assert_eq!(identity.issuer, format!("{AUTHORITY}/{TENANT_A}/v2.0"));
    assert_eq!(identity.subject, "aaaaaaaa-0000-4000-8000-000000000001");
    assert_eq!(
        identity.verified_emails,
        vec!["alice@corp.example".to_owned()]
    );
}

#[test]
fn a_microsoft_email_is_verified_only_by_xms_edov() {
    // nOAuth: Entra does not verify `email`; email_verified (never sent by Entra) is ignored.
    let now = Utc::now();
    for extra in [
        json!({}),
        json!({"xms_edov": false}),
        json!({"email_verified": true}),
    ] {
        let claims =
            verify(&with(microsoft_claims(now, TENANT_A), extra.clone()), now).expect("valid");
        let identity = identity(
            ProviderKind::Microsoft,
            &single(TENANT_A),
            &claims,
            None,
            None,
        )
        .expect("identity");
        assert!(identity.verified_emails.is_empty(), "{extra}");
        assert_eq!(
            identity.unverified_email.as_deref(),
            Some("alice@corp.example")
        );
    }
}

#[test]
fn a_microsoft_token_without_oid_is_refused() {
    let now = Utc::now();
    let claims = verify(
        &with(microsoft_claims(now, TENANT_A), json!({"oid": null})),
        now,
    )
    .expect("valid");
    assert!(matches!(
        identity(
            ProviderKind::Microsoft,
            &single(TENANT_A),
            &claims,
            None,
            None
        ),
        Err(IdpError::InvalidIdToken(_))
    ));
}

#[test]
fn a_multi_tenant_sign_in_from_another_tenant_is_refused() {
    let now = Utc::now();
    let claims = verify(&microsoft_claims(now, TENANT_B), now).expect("valid");
    assert!(matches!(
        identity(ProviderKind::Microsoft, &multi(&[TENANT_A]), &claims, None, None),
        Err(IdpError::TenantNotAllowed { tenant }) if tenant == TENANT_B
    ));
    let allowed = identity(
        ProviderKind::Microsoft,
        &multi(&[TENANT_A, TENANT_B]),
        &claims,
        None,
        Some(&format!("{AUTHORITY}/{TENANT_B}/v2.0")),
    )
    .expect("identity");
    assert_eq!(allowed.issuer, format!("{AUTHORITY}/{TENANT_B}/v2.0"));
}

#[test]
fn a_multi_tenant_token_must_come_from_the_tenant_the_callback_named() {
    let now = Utc::now();
    let claims = verify(&microsoft_claims(now, TENANT_B), now).expect("valid");
    assert!(matches!(
        identity(
            ProviderKind::Microsoft,
            &multi(&[TENANT_A, TENANT_B]),
            &claims,
            None,
            Some(&format!("{AUTHORITY}/{TENANT_A}/v2.0")),
        ),
        Err(IdpError::IssuerMismatch { .. })
    ));
}

#[test]
fn a_token_from_another_issuer_is_refused() {
    let now = Utc::now();
    let claims = verify(
        &with(claims(now), json!({"iss": "https://evil.example.com"})),
        now,
    )
    .expect("signature and claims are fine");
    assert!(matches!(
        identity(ProviderKind::Oidc, &generic_rule(), &claims, None, None),
        Err(IdpError::IssuerMismatch { .. })
    ));
}

fn userinfo(value: Value) -> ProviderUserInfo {
    ProviderUserInfo::from_json::<std::io::Error>(
        value.to_string().as_bytes(),
        Some(&SubjectIdentifier::new("alice".to_owned())),
    )
    .expect("userinfo")
}

#[test]
fn userinfo_fills_the_email_a_code_flow_id_token_lacks() {
    let now = Utc::now();
    let claims = verify(
        &with(
            claims(now),
            json!({"email": null, "email_verified": null, "name": null}),
        ),
        now,
    )
    .expect("valid");
    let info = userinfo(json!({
        "sub": "alice", "email": "alice@corp.example", "email_verified": true, "name": "Alice"
    }));
    let identity = identity(
        ProviderKind::Oidc,
        &generic_rule(),
        &claims,
        Some(&info),
        None,
    )
    .expect("identity");
    assert_eq!(
        identity.verified_emails,
        vec!["alice@corp.example".to_owned()]
    );
    assert_eq!(identity.display_name.as_deref(), Some("Alice"));
    assert_eq!(identity.subject, "alice");
}

#[test]
fn userinfo_about_another_subject_is_refused() {
    let result = ProviderUserInfo::from_json::<std::io::Error>(
        json!({"sub": "mallory"}).to_string().as_bytes(),
        Some(&SubjectIdentifier::new("alice".to_owned())),
    );
    assert!(matches!(
        result,
        Err(UserInfoError::ClaimsVerification(
            ClaimsVerificationError::InvalidSubject(_)
        ))
    ));
}

fn document(extra: Value) -> ProviderDocument {
    serde_json::from_value(with(
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/auth"),
            "token_endpoint": format!("{ISSUER}/token"),
            "userinfo_endpoint": format!("{ISSUER}/me"),
            "jwks_uri": format!("{ISSUER}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        }),
        extra,
    ))
    .expect("document")
}

#[test]
fn the_token_endpoint_uses_basic_auth_unless_only_post_is_listed() {
    let auth = |methods: Value| {
        token_auth_type(&document(
            json!({ "token_endpoint_auth_methods_supported": methods }),
        ))
    };
    assert!(matches!(auth(Value::Null), AuthType::BasicAuth));
    assert!(matches!(
        auth(json!(["client_secret_basic", "client_secret_post"])),
        AuthType::BasicAuth
    ));
    assert!(matches!(
        auth(json!(["client_secret_post", "private_key_jwt"])),
        AuthType::RequestBody
    ));
}

fn oidc_config() -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Oidc,
        client_id: CLIENT.to_owned(),
        client_secret: Zeroizing::new("secret".to_owned()),
        issuer: Some(ISSUER.to_owned()),
        tenant: None,
        allowed_tenants: Vec::new(),
        authority: None,
        authorization_endpoint: None,
        token_endpoint: None,
        api_base: None,
    }
}

#[test]
fn the_authorization_url_asks_for_code_with_pkce_nonce_and_scopes() {
    let document = document(json!({"authorization_response_iss_parameter_supported": true}));
    let (url, pending) = authorization(
        &oidc_config(),
        &generic_rule(),
        &document,
        "https://gw.example.com/cb",
        Some("alice@corp.example"),
        7,
    )
    .expect("url");
    let url = url::Url::parse(&url).expect("url");
    assert_eq!(
        url.as_str().split('?').next(),
        Some("https://idp.example.com/auth")
    );
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("client_id").as_deref(), Some(CLIENT));
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some("https://gw.example.com/cb")
    );
    assert_eq!(param("scope").as_deref(), Some("openid email profile"));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("login_hint").as_deref(), Some("alice@corp.example"));
    assert_eq!(param("state").as_deref(), Some(pending.state.as_str()));
    assert_eq!(
        param("nonce").as_deref(),
        pending.nonce.as_ref().map(|n| n.as_str())
    );
    assert!(pending.iss_required);
    assert_eq!(pending.issuer, ISSUER);
    assert_eq!(pending.started_at, 7);
}

fn pending_with(iss_required: bool) -> PendingSignIn {
    let (_, mut pending) = authorization(
        &oidc_config(),
        &generic_rule(),
        &document(json!({})),
        "https://gw.example.com/cb",
        None,
        0,
    )
    .expect("url");
    pending.iss_required = iss_required;
    pending
}

fn callback(query: &str) -> Callback {
    Callback::from_query(query)
}

#[test]
fn the_callback_is_checked_for_iss_then_error_then_code() {
    let rule = generic_rule();
    let iss = "iss=https%3A%2F%2Fidp.example.com";
    assert_eq!(
        check_callback(
            &rule,
            &pending_with(true),
            &callback(&format!("code=c&{iss}"))
        )
        .ok(),
        Some("c")
    );
    assert_eq!(
        check_callback(&rule, &pending_with(false), &callback("code=c")).ok(),
        Some("c")
    );
    assert!(matches!(
        check_callback(&rule, &pending_with(true), &callback("code=c")),
        Err(IdpError::IssuerMissing { .. })
    ));
    assert!(matches!(
        check_callback(
            &rule,
            &pending_with(false),
            &callback("code=c&iss=https%3A%2F%2Fevil.example.com")
        ),
        Err(IdpError::IssuerMismatch { .. })
    ));
    // A forged error from a mixed-up provider is caught by iss before it is shown.
    assert!(matches!(
        check_callback(
            &rule,
            &pending_with(false),
            &callback("error=access_denied&iss=https%3A%2F%2Fevil.example.com")
        ),
        Err(IdpError::IssuerMismatch { .. })
    ));
    assert!(matches!(
        check_callback(
            &rule,
            &pending_with(false),
            &callback("error=access_denied&error_description=no%0Athanks")
        ),
        Err(IdpError::Denied { error, description })
            if error == "access_denied" && description.as_deref() == Some("no thanks")
    ));
    assert!(matches!(
        check_callback(&rule, &pending_with(false), &callback("code=")),
        Err(IdpError::Protocol(_))
    ));
}

#[test]
fn token_endpoint_errors_become_refusals() {
    let server: StandardErrorResponse<CoreErrorResponseType> = serde_json::from_value(
        json!({"error": "invalid_grant", "error_description": "code reused"}),
    )
    .expect("error response");
    assert!(matches!(
        token_error(RequestTokenError::ServerResponse(server)),
        IdpError::Denied { error, .. } if error == "invalid_grant"
    ));
    // An error object where a token response was expected (GitHub style, HTTP 200).
    let body = br#"{"error":"bad_verification_code"}"#.to_vec();
    let parse_error = serde_path_to_error::deserialize::<_, ProviderTokenResponse>(
        &mut serde_json::Deserializer::from_slice(&body),
    )
    .expect_err("not a token response");
    assert!(matches!(
        token_error(RequestTokenError::Parse(parse_error, body)),
        IdpError::Denied { error, .. } if error == "bad_verification_code"
    ));
}
