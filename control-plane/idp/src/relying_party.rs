//! `Idp`: the entry point. Starts and finishes sign-ins for any configured provider, and
//! caches discovery documents and key sets for five minutes.
//!
//! Owns the order of checks in `finish` (configuration, age, state, issuer, error, code, then
//! the exchange), the caches, and the one refetch of a key set on an unknown key. Must not
//! store sign-ins (the caller keeps `PendingSignIn`), reach a URL the policy refuses, or log
//! secrets or email addresses.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::future::Cache;
use openidconnect::core::CoreJsonWebKeySet;
use portcullis_upstream::UrlPolicy;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use url::Url;

use crate::claims::ProviderDocument;
use crate::config::{ProviderConfig, ProviderKind};
use crate::egress_client::EgressClient;
use crate::error::{IdpError, sanitize_text};
use crate::github;
use crate::issuer::IssuerRule;
use crate::oidc::{self, TokenExpectations, VerifyFailure};
use crate::sign_in::{Callback, ExternalIdentity, PendingSignIn, SignInStart, unix_seconds};

/// How long discovery documents and key sets are reused.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Entries per cache; a deployment has a handful of providers.
const CACHE_CAPACITY: u64 = 256;

/// Longest `login_hint` passed on; a longer one (or one with control characters) is dropped.
const MAX_LOGIN_HINT_CHARS: usize = 320;

/// The gateway as a relying party of external identity providers. Cheap to clone; clones
/// share the caches.
#[derive(Clone)]
pub struct Idp {
    inner: Arc<Inner>,
}

struct Inner {
    policy: UrlPolicy,
    http: tokio::sync::OnceCell<EgressClient>,
    documents: Cache<String, Arc<ProviderDocument>>,
    key_sets: Cache<String, Arc<CoreJsonWebKeySet>>,
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("policy", &self.inner.policy)
            .field("cached_documents", &self.inner.documents.entry_count())
            .field("cached_key_sets", &self.inner.key_sets.entry_count())
            .finish()
    }
}

impl Idp {
    /// A relying party whose every outbound request is checked against `policy`.
    pub fn new(policy: UrlPolicy) -> Self {
        Idp {
            inner: Arc::new(Inner {
                policy,
                http: tokio::sync::OnceCell::new(),
                documents: new_cache(),
                key_sets: new_cache(),
            }),
        }
    }

    /// Builds the provider's authorization URL (PKCE S256 always, random state, nonce for OIDC
    /// kinds, scopes: OIDC kinds "openid email profile"; GitHub "read:user user:email";
    /// `login_hint` passed when given).
    #[tracing::instrument(name = "idp.sign_in.start", skip_all, fields(kind = %config.kind))]
    pub async fn start(
        &self,
        config: &ProviderConfig,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<SignInStart, IdpError> {
        config.check_for(self.inner.policy)?;
        check_redirect_uri(redirect_uri)?;
        let login_hint = login_hint.filter(|hint| {
            !hint.is_empty()
                && hint.chars().count() <= MAX_LOGIN_HINT_CHARS
                && !hint.chars().any(char::is_control)
        });
        let started_at = unix_seconds(SystemTime::now());
        let (url, pending) = match config.kind {
            ProviderKind::GitHub => {
                github::authorization(config, redirect_uri, login_hint, started_at)?
            }
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Microsoft => {
                let rule = IssuerRule::for_config(config)?;
                let document = self.document(&rule).await?;
                self.inner
                    .policy
                    .check_parsed(document.authorization_endpoint().url())
                    .map_err(|rejected| {
                        IdpError::Protocol(format!(
                            "the discovery document's authorization endpoint is refused: {rejected}"
                        ))
                    })?;
                oidc::authorization(
                    config,
                    &rule,
                    &document,
                    redirect_uri,
                    login_hint,
                    started_at,
                )?
            }
        };
        Ok(SignInStart {
            authorization_url: url,
            pending,
        })
    }

    /// Checks the callback against `pending` (state compared in constant time; provider
    /// `error` → `IdpError::Denied` with the error code and a sanitized, length-limited
    /// description), exchanges the code, validates, and returns who signed in.
    #[tracing::instrument(name = "idp.sign_in.finish", skip_all, fields(kind = %config.kind))]
    pub async fn finish(
        &self,
        config: &ProviderConfig,
        pending: &PendingSignIn,
        callback: &Callback,
    ) -> Result<ExternalIdentity, IdpError> {
        config.check_for(self.inner.policy)?;
        if pending.kind != config.kind || pending.client_id != config.client_id {
            return Err(changed_settings());
        }
        pending.check_age(SystemTime::now())?;
        pending.check_state(callback)?;
        let identity = match config.kind {
            ProviderKind::GitHub => {
                if pending.issuer != github::issuer(config)? {
                    return Err(changed_settings());
                }
                github::finish(config, self.http()?, pending, callback).await?
            }
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Microsoft => {
                self.finish_oidc(config, pending, callback).await?
            }
        };
        tracing::info!(kind = %config.kind, issuer = %identity.issuer, "External sign-in finished.");
        Ok(identity)
    }

    async fn finish_oidc(
        &self,
        config: &ProviderConfig,
        pending: &PendingSignIn,
        callback: &Callback,
    ) -> Result<ExternalIdentity, IdpError> {
        let rule = IssuerRule::for_config(config)?;
        if pending.issuer != rule.expected() {
            return Err(changed_settings());
        }
        let code = oidc::check_callback(&rule, pending, callback)?;
        let nonce = pending
            .nonce
            .as_deref()
            .ok_or_else(|| IdpError::Protocol("the pending sign-in has no nonce".to_owned()))?;
        let document = self.document(&rule).await?;
        let http = self.http()?;
        let client = oidc::client(config, &document, &pending.redirect_uri)?;
        let response = oidc::exchange_code(&client, http, code, pending).await?;
        let id_token = oidc::id_token(&response)?;
        let access_token = oidc::access_token(&response);
        let expect = TokenExpectations {
            client_id: &config.client_id,
            nonce,
            now: chrono::Utc::now(),
        };
        let jwks_url = document.jwks_uri().url().to_string();
        let (keys, fresh) = self.key_set(&jwks_url, false).await?;
        let claims = match oidc::verify_id_token(id_token, &keys, expect, Some(access_token)) {
            Ok(claims) => claims,
            Err(VerifyFailure::UnknownKey) if !fresh => {
                // The provider may have rotated its keys since the set was cached.
                let (keys, _) = self.key_set(&jwks_url, true).await?;
                oidc::verify_id_token(id_token, &keys, expect, Some(access_token))
                    .map_err(into_error)?
            }
            Err(failure) => return Err(into_error(failure)),
        };
        let userinfo = oidc::user_info(&client, http, access_token, claims.subject()).await?;
        oidc::identity(
            config.kind,
            &rule,
            claims,
            userinfo.as_ref(),
            callback.iss.as_deref(),
        )
    }

    fn http(&self) -> Result<&EgressClient, IdpError> {
        if let Some(client) = self.inner.http.get() {
            return Ok(client);
        }
        let client =
            EgressClient::new(self.inner.policy).map_err(|source| IdpError::Unreachable {
                what: "network client",
                source,
            })?;
        // A concurrent caller may have set it first; either client is equivalent.
        let _ = self.inner.http.set(client);
        self.inner.http.get().ok_or_else(|| {
            IdpError::Protocol("the outbound client could not be initialized".to_owned())
        })
    }

    /// The discovery document (cached), with its issuer checked against `rule`.
    async fn document(&self, rule: &IssuerRule) -> Result<Arc<ProviderDocument>, IdpError> {
        let url = rule.discovery_url();
        let document = match self.inner.documents.get(&url).await {
            Some(document) => document,
            None => {
                let parsed = parse_url(&url, "discovery document")?;
                let body = self
                    .http()?
                    .get_ok(&parsed, json_accept())
                    .await
                    .map_err(|source| IdpError::Unreachable {
                        what: "discovery document",
                        source,
                    })?;
                let document: ProviderDocument =
                    serde_json::from_slice(&body).map_err(|error| {
                        IdpError::Protocol(format!(
                            "the discovery document at {url} is not valid: {}",
                            sanitize_text(&error.to_string(), 200)
                        ))
                    })?;
                let document = Arc::new(document);
                self.inner
                    .documents
                    .insert(url.clone(), document.clone())
                    .await;
                document
            }
        };
        rule.check_document(document.issuer().as_str())?;
        Ok(document)
    }

    /// The key set at `url`, from the cache unless `refresh`; `true` when it was just fetched.
    async fn key_set(
        &self,
        url: &str,
        refresh: bool,
    ) -> Result<(Arc<CoreJsonWebKeySet>, bool), IdpError> {
        if !refresh && let Some(keys) = self.inner.key_sets.get(url).await {
            return Ok((keys, false));
        }
        let parsed = parse_url(url, "key set")?;
        let body = self
            .http()?
            .get_ok(&parsed, json_accept())
            .await
            .map_err(|source| IdpError::Unreachable {
                what: "key set",
                source,
            })?;
        let keys: CoreJsonWebKeySet = serde_json::from_slice(&body).map_err(|error| {
            IdpError::Protocol(format!(
                "the key set at {url} is not valid: {}",
                sanitize_text(&error.to_string(), 200)
            ))
        })?;
        let keys = Arc::new(keys);
        self.inner
            .key_sets
            .insert(url.to_owned(), keys.clone())
            .await;
        Ok((keys, true))
    }
}

fn new_cache<V: Clone + Send + Sync + 'static>() -> Cache<String, V> {
    Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(CACHE_TTL)
        .build()
}

fn into_error(failure: VerifyFailure) -> IdpError {
    match failure {
        VerifyFailure::UnknownKey => IdpError::InvalidIdToken(
            "no key of the provider's key set matches its signature".to_owned(),
        ),
        VerifyFailure::Invalid(error) => error,
    }
}

fn changed_settings() -> IdpError {
    IdpError::Protocol(
        "the identity provider's settings changed during the sign-in; start again".to_owned(),
    )
}

fn parse_url(url: &str, what: &'static str) -> Result<Url, IdpError> {
    Url::parse(url)
        .map_err(|error| IdpError::Protocol(format!("the {what} URL is not valid: {error}")))
}

fn json_accept() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers
}

/// The gateway's callback URL: absolute http(s), no fragment (RFC 6749 section 3.1.2).
fn check_redirect_uri(redirect_uri: &str) -> Result<(), IdpError> {
    let bad = |reason: &str| IdpError::Config {
        field: "redirect_uri",
        reason: reason.to_owned(),
    };
    let url = Url::parse(redirect_uri).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("must be an http(s) URL"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
