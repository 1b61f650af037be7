//! Sign-in with GitHub (an OAuth App): the authorization URL, the code exchange, and the
//! identity from `GET /user` and `GET /user/emails`.
//!
//! Owns GitHub's quirks: token errors arrive as HTTP 200 with `{"error": …}`, the token
//! endpoint answers form-encoded unless asked for JSON, the identity key is the numeric `id`,
//! and only entries of `/user/emails` with `verified: true` count (never the `/user` `email`
//! field, never `*@users.noreply.github.com`). Must not take an unverified or primary-only
//! address as verified, nor log the access token.
//!
//! The code exchange is a hand-written form POST through `EgressClient` rather than oauth2's
//! `BasicClient`: openidconnect does not re-export it (it would mean a direct oauth2
//! dependency to keep in step), and GitHub's HTTP-200 error bodies come back from it as parse
//! failures that need the raw body anyway.

use openidconnect::{CsrfToken, PkceCodeChallenge};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use crate::config::ProviderConfig;
use crate::egress_client::EgressClient;
use crate::error::{IdpError, denied, sanitize_text};
use crate::oidc::oauth_error_in;
use crate::sign_in::{Callback, ExternalIdentity, PendingSignIn};

/// The scopes asked for: the profile and the email addresses.
pub(crate) const SCOPES: &str = "read:user user:email";

/// Addresses GitHub makes up to hide the real one; never an email to link by.
const NOREPLY_SUFFIX: &str = "@users.noreply.github.com";

/// The identity issuer: the authorization endpoint's origin ("https://github.com" by default).
pub(crate) fn issuer(config: &ProviderConfig) -> Result<String, IdpError> {
    let url = endpoint(
        "authorization_endpoint",
        config.github_authorization_endpoint(),
    )?;
    Ok(url.origin().ascii_serialization())
}

fn endpoint(field: &'static str, value: &str) -> Result<Url, IdpError> {
    Url::parse(value).map_err(|error| IdpError::Config {
        field,
        reason: format!("is not an absolute URL ({error})"),
    })
}

/// The authorization URL and the pending sign-in. `login_hint` becomes GitHub's `login`.
pub(crate) fn authorization(
    config: &ProviderConfig,
    redirect_uri: &str,
    login_hint: Option<&str>,
    started_at: u64,
) -> Result<(String, PendingSignIn), IdpError> {
    let mut url = endpoint(
        "authorization_endpoint",
        config.github_authorization_endpoint(),
    )?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", state.secret())
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", challenge.method().as_str());
        if let Some(hint) = login_hint {
            query.append_pair("login", hint);
        }
    }
    let pending = PendingSignIn {
        kind: config.kind,
        client_id: config.client_id.clone(),
        state: Zeroizing::new(state.secret().clone()),
        nonce: None,
        pkce_verifier: Zeroizing::new(verifier.secret().clone()),
        redirect_uri: redirect_uri.to_owned(),
        issuer: issuer(config)?,
        iss_required: false,
        started_at,
    };
    Ok((url.to_string(), pending))
}

/// Checks the callback (after the state), exchanges the code, reads the user and the emails.
pub(crate) async fn finish(
    config: &ProviderConfig,
    http: &EgressClient,
    pending: &PendingSignIn,
    callback: &Callback,
) -> Result<ExternalIdentity, IdpError> {
    if let Some(iss) = &callback.iss
        && iss != &pending.issuer
    {
        return Err(IdpError::IssuerMismatch {
            expected: pending.issuer.clone(),
            found: crate::issuer::shown(iss),
        });
    }
    if let Some(error) = &callback.error {
        return Err(denied(error, callback.error_description.as_deref()));
    }
    let code = callback
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| IdpError::Protocol("the sign-in response has no code".to_owned()))?;
    let access_token = exchange_code(config, http, pending, code).await?;
    let api_base = config.github_api_base();
    let user = get_api(http, &api_base, "/user", &access_token).await?;
    let emails = get_api(http, &api_base, "/user/emails", &access_token).await?;
    identity(&pending.issuer, &user, &emails)
}

async fn exchange_code(
    config: &ProviderConfig,
    http: &EgressClient,
    pending: &PendingSignIn,
    code: &str,
) -> Result<Zeroizing<String>, IdpError> {
    let url = endpoint("token_endpoint", config.github_token_endpoint())?;
    let body = Zeroizing::new(
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("client_id", &config.client_id)
            .append_pair("client_secret", &config.client_secret)
            .append_pair("code", code)
            .append_pair("redirect_uri", &pending.redirect_uri)
            .append_pair("code_verifier", &pending.pkce_verifier)
            .finish(),
    );
    let mut headers = HeaderMap::new();
    // Without it GitHub answers form-encoded.
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let fetched = http
        .fetch(Method::POST, &url, headers, Some(body.as_bytes().to_vec()))
        .await
        .map_err(|source| IdpError::Unreachable {
            what: "token endpoint",
            source,
        })?;
    parse_token_response(fetched.status, &fetched.body)
}

/// GitHub's token answer: an OAuth error object (at any status, HTTP 200 included) is a
/// refusal; otherwise a bearer `access_token` is required.
pub(crate) fn parse_token_response(
    status: StatusCode,
    body: &[u8],
) -> Result<Zeroizing<String>, IdpError> {
    if let Some(refusal) = oauth_error_in(body) {
        return Err(refusal);
    }
    if !status.is_success() {
        return Err(IdpError::Unreachable {
            what: "token endpoint",
            source: portcullis_upstream::HttpFailure::Status {
                status,
                body_excerpt: String::new(),
            },
        });
    }
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| IdpError::Protocol("the token endpoint's answer is not JSON".to_owned()))?;
    if let Some(token_type) = json.get("token_type").and_then(Value::as_str)
        && !token_type.eq_ignore_ascii_case("bearer")
    {
        return Err(IdpError::Protocol(format!(
            "the token type is {:?}, not bearer",
            sanitize_text(token_type, 40)
        )));
    }
    json.get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(|token| Zeroizing::new(token.to_owned()))
        .ok_or_else(|| IdpError::Protocol("the token response has no access token".to_owned()))
}

async fn get_api(
    http: &EgressClient,
    api_base: &str,
    path: &str,
    access_token: &str,
) -> Result<Value, IdpError> {
    let url = endpoint("api_base", &format!("{api_base}{path}"))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.github+json"),
    );
    headers.insert(
        "x-github-api-version",
        HeaderValue::from_static("2022-11-28"),
    );
    let mut bearer = HeaderValue::from_str(&format!("Bearer {access_token}"))
        .map_err(|_| IdpError::Protocol("the access token is not a valid header".to_owned()))?;
    bearer.set_sensitive(true);
    headers.insert(AUTHORIZATION, bearer);
    let body = http
        .get_ok(&url, headers)
        .await
        .map_err(|source| IdpError::Unreachable {
            what: "GitHub API",
            source,
        })?;
    serde_json::from_slice(&body)
        .map_err(|_| IdpError::Protocol(format!("GitHub's {path} answer is not JSON")))
}

/// The identity from `/user` and `/user/emails`.
pub(crate) fn identity(
    issuer: &str,
    user: &Value,
    emails: &Value,
) -> Result<ExternalIdentity, IdpError> {
    let id = user
        .get("id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            IdpError::Protocol("GitHub's /user answer has no positive numeric id".to_owned())
        })?;
    let entries = emails.as_array().ok_or_else(|| {
        IdpError::Protocol("GitHub's /user/emails answer is not a list".to_owned())
    })?;
    let text = |value: &Value, key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let entries: Vec<GitHubEmail> = entries
        .iter()
        .filter_map(|entry| {
            Some(GitHubEmail {
                email: text(entry, "email")?,
                primary: entry.get("primary") == Some(&Value::Bool(true)),
                verified: entry.get("verified") == Some(&Value::Bool(true)),
            })
        })
        .collect();
    let (verified_emails, unverified_email) =
        select_emails(text(user, "email").as_deref(), &entries);
    Ok(ExternalIdentity {
        issuer: issuer.to_owned(),
        subject: id.to_string(),
        verified_emails,
        unverified_email,
        display_name: text(user, "name").or_else(|| text(user, "login")),
    })
}

/// One entry of `GET /user/emails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GitHubEmail {
    pub(crate) email: String,
    pub(crate) primary: bool,
    pub(crate) verified: bool,
}

/// `(verified, unverified)`: the verified entries, primary first, without noreply addresses;
/// and the address GitHub showed but did not verify (the primary one first, then the
/// profile's `email`), for the refusal message.
pub(crate) fn select_emails(
    profile_email: Option<&str>,
    entries: &[GitHubEmail],
) -> (Vec<String>, Option<String>) {
    let usable = |email: &str| !email.to_ascii_lowercase().ends_with(NOREPLY_SUFFIX);
    let mut ordered: Vec<&GitHubEmail> = entries.iter().filter(|e| usable(&e.email)).collect();
    // Stable: primary first, then GitHub's order.
    ordered.sort_by_key(|entry| !entry.primary);
    let mut verified: Vec<String> = Vec::new();
    for entry in ordered.iter().filter(|e| e.verified) {
        if !verified.contains(&entry.email) {
            verified.push(entry.email.clone());
        }
    }
    let unverified = ordered
        .iter()
        .filter(|e| !e.verified)
        .map(|e| e.email.as_str())
        .chain(profile_email.filter(|email| usable(email)))
        .find(|email| !verified.iter().any(|v| v == email))
        .map(str::to_owned);
    (verified, unverified)
}

#[cfg(test)]
mod tests;
