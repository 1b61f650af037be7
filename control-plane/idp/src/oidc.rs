//! Sign-in with an OpenID Connect provider (generic, Google, Microsoft Entra ID): the
//! authorization URL, the code exchange, ID-token verification, userinfo, and the claims that
//! make the `ExternalIdentity`.
//!
//! Owns the ID-token rules: signature by a key of the provider's key set with an asymmetric
//! algorithm (never `none` or HMAC), `aud` containing the client id (and `azp` equal to it when
//! there are several audiences), `exp`/`iat` with [`CLOCK_SKEW`], the nonce, `at_hash` when
//! present, and the issuer/tenant rules of [`IssuerRule`]. Must not fetch anything except
//! through the caller's `EgressClient` and caches, nor read an unverified claim into an
//! identity.

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthenticationFlow, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenVerifier, IssuerUrl, LoginHint, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, TokenResponse, UserInfoError,
};
use portcullis_upstream::HttpFailure;
use zeroize::Zeroizing;

use crate::claims::{
    EmailClaim, ProviderClaims, ProviderDocument, ProviderIdToken, ProviderIdTokenClaims,
    ProviderTokenResponse, ProviderUserInfo,
};
use crate::config::{ProviderConfig, ProviderKind};
use crate::egress_client::EgressClient;
use crate::error::{IdpError, denied, sanitize_text};
use crate::issuer::IssuerRule;
use crate::sign_in::{Callback, ExternalIdentity, PendingSignIn};

/// How far the provider's clock may be from ours for `exp` and `iat`.
pub(crate) const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);

/// The signature algorithms accepted for ID tokens: asymmetric only.
const ALLOWED_ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// openidconnect's client, typed for [`ProviderClaims`] and built from a discovery document.
type ProviderClient = openidconnect::Client<
    ProviderClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    ProviderTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Builds the client for one exchange: the document's endpoints, the redirect URI, and
/// client_secret_basic unless the document lists only client_secret_post.
pub(crate) fn client(
    config: &ProviderConfig,
    document: &ProviderDocument,
    redirect_uri: &str,
) -> Result<ProviderClient, IdpError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|error| IdpError::Config {
        field: "redirect_uri",
        reason: format!("is not an absolute URL ({error})"),
    })?;
    Ok(ProviderClient::from_provider_metadata(
        document.clone(),
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.to_string())),
    )
    .set_redirect_uri(redirect)
    .set_auth_type(token_auth_type(document)))
}

/// client_secret_basic, unless the provider lists client_secret_post and not basic.
pub(crate) fn token_auth_type(document: &ProviderDocument) -> AuthType {
    match document.token_endpoint_auth_methods_supported() {
        Some(methods)
            if methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic) =>
        {
            AuthType::RequestBody
        }
        _ => AuthType::BasicAuth,
    }
}

/// The authorization URL and the pending sign-in.
pub(crate) fn authorization(
    config: &ProviderConfig,
    rule: &IssuerRule,
    document: &ProviderDocument,
    redirect_uri: &str,
    login_hint: Option<&str>,
    started_at: u64,
) -> Result<(String, PendingSignIn), IdpError> {
    let client = client(config, document, redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .set_pkce_challenge(challenge);
    if let Some(hint) = login_hint {
        request = request.set_login_hint(LoginHint::new(hint.to_owned()));
    }
    let (url, state, nonce) = request.url();
    let pending = PendingSignIn {
        kind: config.kind,
        client_id: config.client_id.clone(),
        state: Zeroizing::new(state.secret().clone()),
        nonce: Some(Zeroizing::new(nonce.secret().clone())),
        pkce_verifier: Zeroizing::new(verifier.secret().clone()),
        redirect_uri: redirect_uri.to_owned(),
        issuer: rule.expected(),
        iss_required: document.additional_metadata().iss_parameter_supported(),
        started_at,
    };
    Ok((url.to_string(), pending))
}

/// The code exchange: the token response (with an ID token) or why not.
pub(crate) async fn exchange_code(
    client: &ProviderClient,
    http: &EgressClient,
    code: &str,
    pending: &PendingSignIn,
) -> Result<ProviderTokenResponse, IdpError> {
    let request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| {
            IdpError::Protocol("the discovery document names no token endpoint".to_owned())
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.to_string()));
    request.request_async(http).await.map_err(token_error)
}

fn token_error(
    error: RequestTokenError<HttpFailure, StandardErrorResponse<CoreErrorResponseType>>,
) -> IdpError {
    match error {
        RequestTokenError::ServerResponse(response) => denied(
            response.error().as_ref(),
            response.error_description().map(String::as_str),
        ),
        RequestTokenError::Request(source) => IdpError::Unreachable {
            what: "token endpoint",
            source,
        },
        RequestTokenError::Parse(error, body) => {
            if let Some(refusal) = oauth_error_in(&body) {
                return refusal;
            }
            if let Some(unreadable) = unreadable_id_token(&body) {
                return unreadable;
            }
            // Only the path: the message could quote a token.
            IdpError::Protocol(format!(
                "the token response is not valid (at {})",
                error.path()
            ))
        }
        RequestTokenError::Other(detail) => IdpError::Protocol(format!(
            "the token endpoint's answer is not usable: {}",
            sanitize_text(&detail, 200)
        )),
    }
}

/// `InvalidIdToken` when the body's `id_token` is what could not be read (for example a
/// non-boolean `email_verified`); the path of a flattened field does not say so.
fn unreadable_id_token(body: &[u8]) -> Option<IdpError> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id_token = json.get("id_token")?.as_str()?;
    let error = id_token.parse::<ProviderIdToken>().err()?;
    Some(IdpError::InvalidIdToken(format!(
        "it could not be read: {}",
        sanitize_text(&error.to_string(), 200)
    )))
}

/// An OAuth error object (`{"error": …}`) in a body, as `Denied`.
pub(crate) fn oauth_error_in(body: &[u8]) -> Option<IdpError> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error")?.as_str()?;
    Some(denied(
        error,
        json.get("error_description")
            .and_then(serde_json::Value::as_str),
    ))
}

/// What an ID token must satisfy besides the issuer rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenExpectations<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) now: DateTime<Utc>,
}

/// Why verification failed: a key the set does not have (worth one refetch of the set), or
/// anything else.
#[derive(Debug)]
pub(crate) enum VerifyFailure {
    UnknownKey,
    Invalid(IdpError),
}

impl From<IdpError> for VerifyFailure {
    fn from(error: IdpError) -> Self {
        VerifyFailure::Invalid(error)
    }
}

/// Verifies `token` with `keys`: signature and algorithm, audience and `azp`, `exp`/`iat`,
/// nonce, and `at_hash` when present. The issuer is checked by the caller with
/// [`IssuerRule::check_token`] on the verified claims.
pub(crate) fn verify_id_token<'t>(
    token: &'t ProviderIdToken,
    keys: &CoreJsonWebKeySet,
    expect: TokenExpectations<'_>,
    access_token: Option<&AccessToken>,
) -> Result<&'t ProviderIdTokenClaims, VerifyFailure> {
    let now = expect.now;
    // The issuer given here is not compared (require_issuer_match(false)); IssuerRule does it.
    let unused_issuer = IssuerUrl::new("https://issuer.invalid/".to_owned())
        .map_err(|error| IdpError::Protocol(error.to_string()))?;
    let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = IdTokenVerifier::new_public_client(
        ClientId::new(expect.client_id.to_owned()),
        unused_issuer,
        keys.clone(),
    )
    .require_issuer_match(false)
    .set_allowed_algs(ALLOWED_ALGORITHMS)
    // Other audiences are allowed when azp names this client (checked below).
    .set_other_audience_verifier_fn(|_| true)
    .set_time_fn(move || now - CLOCK_SKEW)
    .set_issue_time_verifier_fn(move |issued_at| {
        if issued_at > now + CLOCK_SKEW {
            Err(format!("the token is issued in the future ({issued_at})"))
        } else {
            Ok(())
        }
    });
    let nonce = Nonce::new(expect.nonce.to_owned());
    let claims = token
        .claims(&verifier, &nonce)
        .map_err(|error| match error {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => VerifyFailure::UnknownKey,
            other => VerifyFailure::Invalid(IdpError::InvalidIdToken(sanitize_text(
                &claims_error_text(&other),
                300,
            ))),
        })?;
    if claims.audiences().len() > 1 {
        let azp_is_client = claims
            .authorized_party()
            .is_some_and(|azp| azp.as_str() == expect.client_id);
        if !azp_is_client {
            return Err(IdpError::InvalidIdToken(
                "the token has several audiences and its authorized party (azp) is not this client"
                    .to_owned(),
            )
            .into());
        }
    }
    if let (Some(expected), Some(access_token)) = (claims.access_token_hash(), access_token) {
        let invalid = |detail: String| VerifyFailure::Invalid(IdpError::InvalidIdToken(detail));
        let algorithm = token
            .signing_alg()
            .map_err(|error| invalid(error.to_string()))?;
        let key = token
            .signing_key(&verifier)
            .map_err(|error| invalid(error.to_string()))?;
        let actual = AccessTokenHash::from_token(access_token, algorithm, key)
            .map_err(|error| invalid(error.to_string()))?;
        if actual != *expected {
            return Err(invalid(
                "its at_hash does not match the access token".to_owned(),
            ));
        }
    }
    Ok(claims)
}

fn claims_error_text(error: &ClaimsVerificationError) -> String {
    match error {
        ClaimsVerificationError::SignatureVerification(inner) => {
            format!("signature: {inner}")
        }
        other => other.to_string(),
    }
}

/// Fetches userinfo with the access token; its `sub` must be the ID token's.
pub(crate) async fn user_info(
    client: &ProviderClient,
    http: &EgressClient,
    access_token: &AccessToken,
    subject: &openidconnect::SubjectIdentifier,
) -> Result<Option<ProviderUserInfo>, IdpError> {
    let Ok(request) = client.user_info(access_token.clone(), Some(subject.clone())) else {
        return Ok(None);
    };
    let info = request
        .request_async::<ProviderClaims, _, CoreGenderClaim>(http)
        .await
        .map_err(|error| match error {
            UserInfoError::ClaimsVerification(ClaimsVerificationError::InvalidSubject(_)) => {
                IdpError::Protocol(
                    "the userinfo answer is about another subject than the ID token".to_owned(),
                )
            }
            UserInfoError::ClaimsVerification(other) => IdpError::Protocol(format!(
                "the userinfo answer could not be verified: {}",
                sanitize_text(&claims_error_text(&other), 200)
            )),
            UserInfoError::Request(source) => IdpError::Unreachable {
                what: "userinfo endpoint",
                source,
            },
            UserInfoError::Response(status, body, _) => IdpError::Unreachable {
                what: "userinfo endpoint",
                source: HttpFailure::Status {
                    status,
                    body_excerpt: sanitize_text(&String::from_utf8_lossy(&body), 200),
                },
            },
            UserInfoError::Parse(error) => IdpError::Protocol(format!(
                "the userinfo answer is not valid (at {}): {}",
                error.path(),
                sanitize_text(&error.inner().to_string(), 200)
            )),
            other => IdpError::Protocol(sanitize_text(&other.to_string(), 200)),
        })?;
    Ok(Some(info))
}

/// The identity from verified ID-token claims and the userinfo answer: issuer and tenant
/// rules, the subject (`oid` for Microsoft), the email rules, the display name.
pub(crate) fn identity(
    kind: ProviderKind,
    rule: &IssuerRule,
    claims: &ProviderIdTokenClaims,
    userinfo: Option<&ProviderUserInfo>,
    callback_iss: Option<&str>,
) -> Result<ExternalIdentity, IdpError> {
    let extra = claims.additional_claims();
    let issuer = rule.check_token(claims.issuer().as_str(), extra.tid())?;
    if let (IssuerRule::MicrosoftMulti { .. }, Some(iss)) = (rule, callback_iss)
        && iss != issuer
    {
        return Err(IdpError::IssuerMismatch {
            expected: iss.to_owned(),
            found: issuer,
        });
    }
    let subject = match kind {
        ProviderKind::Microsoft => extra
            .oid()
            .filter(|oid| !oid.is_empty())
            .ok_or_else(|| {
                IdpError::InvalidIdToken("the token has no object id (oid claim)".to_owned())
            })?
            .to_owned(),
        _ => claims.subject().as_str().to_owned(),
    };
    let from_token = email_claim(
        kind,
        claims.email().map(|e| e.as_str()),
        claims.email_verified(),
        extra,
    );
    let from_userinfo = userinfo.map(|info| {
        email_claim(
            kind,
            info.email().map(|e| e.as_str()),
            info.email_verified(),
            info.additional_claims(),
        )
    });
    let (verified_emails, unverified_email) =
        EmailClaim::merge(from_token, from_userinfo).into_emails();
    let name_of = |name: Option<String>, username: Option<String>| {
        name.or(username).filter(|n| !n.trim().is_empty())
    };
    let display_name = name_of(
        claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        claims.preferred_username().map(|n| n.to_string()),
    )
    .or_else(|| {
        userinfo.and_then(|info| {
            name_of(
                info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                info.preferred_username().map(|n| n.to_string()),
            )
        })
    });
    Ok(ExternalIdentity {
        issuer,
        subject,
        verified_emails,
        unverified_email,
        display_name,
    })
}

/// The email and what vouches for it: `xms_edov` for Microsoft, `email_verified` otherwise.
pub(crate) fn email_claim(
    kind: ProviderKind,
    email: Option<&str>,
    email_verified: Option<bool>,
    extra: &ProviderClaims,
) -> EmailClaim {
    EmailClaim {
        email: email.map(str::to_owned),
        vouched: match kind {
            ProviderKind::Microsoft => extra.email_domain_owner_verified(),
            _ => email_verified,
        },
    }
}

/// The access token of a token response, for userinfo and `at_hash`.
pub(crate) fn access_token(response: &ProviderTokenResponse) -> &AccessToken {
    response.access_token()
}

/// The ID token of a token response; OpenID Connect requires one.
pub(crate) fn id_token(response: &ProviderTokenResponse) -> Result<&ProviderIdToken, IdpError> {
    response
        .id_token()
        .ok_or_else(|| IdpError::Protocol("the token response has no ID token".to_owned()))
}

/// Checks the callback before the exchange: RFC 9207 `iss`, then a provider `error`, then
/// the code. (State is checked by the caller first.)
pub(crate) fn check_callback<'c>(
    rule: &IssuerRule,
    pending: &PendingSignIn,
    callback: &'c Callback,
) -> Result<&'c str, IdpError> {
    match &callback.iss {
        Some(iss) => rule.check_callback(iss)?,
        None if pending.iss_required => {
            return Err(IdpError::IssuerMissing {
                expected: pending.issuer.clone(),
            });
        }
        None => {}
    }
    if let Some(error) = &callback.error {
        return Err(denied(error, callback.error_description.as_deref()));
    }
    callback
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| IdpError::Protocol("the sign-in response has no code".to_owned()))
}

#[cfg(test)]
mod tests;
