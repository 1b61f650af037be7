//! `OAuthService`: the authorization server's operations over `Control` (reads, events),
//! the key ring (codes, signing keys) and the code ledger, for the HTTP routes to call.
//!
//! Every operation names the host the HTTP layer resolved from the `Host` header; nothing
//! here crosses into another host. Time comes from the caller's `Context` (`now_ms`).

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_commands::Context;
use portcullis_commands::control::{
    Control, ControlError, NewOAuthClient, OAuthHostView, RefreshOutcome, TokenSession,
};
use portcullis_secrets::KeyRing;
use portcullis_tokens::{AccessClaims, PublicUrls, SigningKey};
use serde_json::Value;

use crate::authorize::{
    self, AuthorizationRequest, AuthorizeError, ClientInfo, HostResources, PageError,
};
use crate::code::{self, CodeError, CodeGrant, CodeLedger, Redemption};
use crate::metadata::{self, PublicKeyHex};
use crate::params::Params;
use crate::registration::{self, RegistrationError, RegistrationLimiter, Unlimited};
use crate::token::{self, TokenError, TokenRequest, TokenResponse};

/// The revocation reason when an authorization code comes back a second time.
pub const CODE_REUSED: &str = "authorization code reused";

/// Client ID Metadata Documents (`client_id` is an HTTPS URL the server fetches,
/// draft-ietf-oauth-client-id-metadata-document): the HTTP layer's fetcher, which fetches
/// through the SSRF guard with size and time limits, checks that the document's `client_id`
/// is its URL, validates its `redirect_uris` with `redirect::validate`, records the client as
/// an agent of the host, and caches. `OAuthService::authorize` calls it for an HTTPS
/// `client_id` that is not registered.
#[async_trait]
pub trait ClientMetadataFetcher: Send + Sync + std::fmt::Debug {
    /// The client described by the document at `client_id`, as a client of `host_id`.
    async fn fetch(&self, host_id: &str, client_id: &str) -> Result<ClientInfo, PageError>;
}

/// The authorization server of every host.
#[derive(Debug)]
pub struct OAuthService {
    control: Arc<Control>,
    /// Seals codes and opens hosts' signing keys.
    ring: KeyRing,
    /// Where hosts answer: each host's issuer and resource URLs.
    urls: PublicUrls,
    codes: Arc<dyn CodeLedger>,
    limiter: Arc<dyn RegistrationLimiter>,
    metadata: Option<Arc<dyn ClientMetadataFetcher>>,
}

impl OAuthService {
    /// A service without a registration limit (see `with_limiter`).
    pub fn new(
        control: Arc<Control>,
        ring: KeyRing,
        urls: PublicUrls,
        codes: Arc<dyn CodeLedger>,
    ) -> Self {
        Self {
            control,
            ring,
            urls,
            codes,
            limiter: Arc::new(Unlimited),
            metadata: None,
        }
    }

    /// Accepts Client ID Metadata Documents through `fetcher` (without one, URL client ids
    /// must be registered like any other).
    pub fn with_metadata_fetcher(mut self, fetcher: Arc<dyn ClientMetadataFetcher>) -> Self {
        self.metadata = Some(fetcher);
        self
    }

    /// Limits registrations with `limiter` (the HTTP layer's, per client address and host).
    pub fn with_limiter(mut self, limiter: Arc<dyn RegistrationLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The host and its issuer.
    async fn host(&self, host_id: &str) -> Result<(OAuthHostView, String), ControlError> {
        let host = self.control.oauth_host(host_id).await?;
        let issuer = self.urls.host_base(host_id, host.is_default);
        Ok((host, issuer))
    }

    /// The RFC 8414 metadata of a host.
    pub async fn metadata(&self, host_id: &str) -> Result<Value, ControlError> {
        let (_, issuer) = self.host(host_id).await?;
        Ok(metadata::authorization_server_metadata(&issuer))
    }

    /// The OpenID Connect discovery document of a host.
    pub async fn openid_configuration(&self, host_id: &str) -> Result<Value, ControlError> {
        let (_, issuer) = self.host(host_id).await?;
        Ok(metadata::openid_configuration(&issuer))
    }

    /// The JWKS of a host.
    pub async fn jwks(&self, host_id: &str) -> Result<Value, ControlError> {
        let (host, _) = self.host(host_id).await?;
        Ok(metadata::jwks(host.signing_keys.iter().map(|key| {
            PublicKeyHex {
                kid: &key.kid,
                public_key: &key.public_key,
            }
        })))
    }

    /// Registers a client (RFC 7591); the response body.
    #[tracing::instrument(name = "oauth.register", skip_all, fields(%host_id))]
    pub async fn register(
        &self,
        context: &Context,
        host_id: &str,
        client_ip: Option<IpAddr>,
        body: &[u8],
    ) -> Result<Value, RegistrationError> {
        if !self.limiter.allow(host_id, client_ip) {
            return Err(RegistrationError::RateLimited);
        }
        let registration = registration::parse(body)?;
        let client = self
            .control
            .register_client(
                context,
                host_id,
                NewOAuthClient {
                    name: registration.client_name.clone(),
                    uri: registration.client_uri.clone().unwrap_or_default(),
                    agent_type: registration.agent_type.clone(),
                    redirect_uris: registration.redirect_uris.clone(),
                },
            )
            .await
            .map_err(|error| match error {
                ControlError::NotFound { .. } => RegistrationError::HostNotFound,
                other => {
                    tracing::warn!(%host_id, error = %other, "Client registration failed.");
                    RegistrationError::Unavailable
                }
            })?;
        let issued_at = u64::try_from(context.now_ms / 1000).unwrap_or(0);
        Ok(registration::response(
            &registration,
            &client.client_id,
            issued_at,
        ))
    }

    /// Validates an authorization request (the raw query string).
    #[tracing::instrument(name = "oauth.authorize", skip_all, fields(%host_id))]
    pub async fn authorize(
        &self,
        host_id: &str,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = AuthorizeError::Page;
        let params = Params::parse(query.as_bytes()).map_err(|e| page(PageError::Params(e)))?;
        let (host, issuer) = self.host(host_id).await.map_err(|error| match error {
            ControlError::NotFound { .. } => page(PageError::UnknownHost),
            other => {
                tracing::warn!(%host_id, error = %other, "Authorization request failed.");
                page(PageError::Unavailable)
            }
        })?;
        let client = match authorize::client_id_of(&params) {
            // A URL client id is a Client ID Metadata Document: its current document
            // decides (even for a client seen before, so its redirect URIs stay current).
            Some(client_id) if client_id.starts_with("https://") && self.metadata.is_some() => {
                match &self.metadata {
                    Some(fetcher) => Some(fetcher.fetch(host_id, client_id).await.map_err(page)?),
                    None => None,
                }
            }
            Some(client_id) => self
                .control
                .oauth_client(host_id, client_id)
                .await
                .map_err(|_| page(PageError::Unavailable))?
                .map(|client| ClientInfo {
                    agent_id: client.agent_id,
                    client_id: client.client_id,
                    name: client.name,
                    redirect_uris: client.redirect_uris,
                }),
            None => None,
        };
        let resources = HostResources {
            host_id: host.host_id,
            issuer,
            server_keys: host.server_keys,
        };
        authorize::validate(&params, &resources, client.as_ref())
    }

    /// Seals a code for a request the human approved, in `session_id` (which the consent
    /// flow started for `human_id`); returns the redirect location.
    #[tracing::instrument(name = "oauth.issue_code", skip_all, fields(host_id = %request.host_id, %session_id))]
    pub fn issue_code(
        &self,
        context: &Context,
        request: &AuthorizationRequest,
        session_id: &str,
        human_id: &str,
    ) -> Result<String, CodeError> {
        let grant = CodeGrant {
            host_id: request.host_id.clone(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            resource: request.resource.clone(),
            scope: request.scope.clone(),
            session_id: session_id.to_owned(),
            human_id: human_id.to_owned(),
            expires_at_ms: context.now_ms.saturating_add(code::CODE_TTL_MS),
        };
        let code = code::seal(&self.ring, &grant)?;
        Ok(request.success_location(&code))
    }

    /// The token endpoint: a form-encoded request, the response or an RFC 6749 error.
    #[tracing::instrument(name = "oauth.token", skip_all, fields(%host_id))]
    pub async fn token(
        &self,
        context: &Context,
        host_id: &str,
        body: &[u8],
    ) -> Result<TokenResponse, TokenError> {
        match token::parse_request(body)? {
            TokenRequest::AuthorizationCode {
                code,
                client_id,
                code_verifier,
                redirect_uri,
                resource,
            } => {
                self.exchange_code(
                    context,
                    host_id,
                    &code,
                    &client_id,
                    code_verifier.as_deref(),
                    redirect_uri.as_deref(),
                    resource.as_deref(),
                )
                .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                client_id,
                resource,
            } => {
                self.refresh(
                    context,
                    host_id,
                    &refresh_token,
                    client_id.as_deref(),
                    resource.as_deref(),
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange_code(
        &self,
        context: &Context,
        host_id: &str,
        code: &str,
        client_id: &str,
        code_verifier: Option<&str>,
        redirect_uri: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let grant = code::open(&self.ring, host_id, code, context.now_ms)
            .map_err(|e| TokenError::InvalidGrant(e.to_string()))?;
        token::check_code_grant(&grant, client_id, code_verifier, redirect_uri, resource)?;
        // Before anything is spent: a failure to sign must not cost the client its code.
        let (signer, issuer) = self.signer(context, host_id).await?;
        let redemption = self
            .codes
            .redeem(
                host_id,
                &code::code_sha256_hex(code),
                &grant,
                context.now_ms,
            )
            .await
            .map_err(|error| unavailable("code ledger", &error))?;
        if redemption == Redemption::Again {
            tracing::warn!(%host_id, session_id = %grant.session_id, "Authorization code reused; revoking its session.");
            self.control
                .revoke_oauth_session(context, host_id, &grant.session_id, CODE_REUSED)
                .await
                .map_err(|error| unavailable("revoke session", &error))?;
            return Err(TokenError::InvalidGrant(
                "the authorization code was already used; its session is revoked".to_owned(),
            ));
        }
        let refresh = token::new_refresh_token(&grant.session_id);
        let session = self
            .control
            .issue_refresh_token(
                context,
                host_id,
                &grant.session_id,
                client_id,
                refresh.sha256,
                &grant.resource,
            )
            .await
            .map_err(|error| unavailable("issue refresh token", &error))?
            .map_err(|rejected| TokenError::InvalidGrant(rejected.to_string()))?;
        self.respond(context, &signer, &issuer, &session, refresh.token)
    }

    async fn refresh(
        &self,
        context: &Context,
        host_id: &str,
        refresh_token: &str,
        client_id: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let invalid = || TokenError::InvalidGrant("the refresh token is invalid".to_owned());
        let session_id = token::refresh_token_session(refresh_token).ok_or_else(invalid)?;
        let (signer, issuer) = self.signer(context, host_id).await?;
        let next = token::new_refresh_token(session_id);
        let outcome = self
            .control
            .rotate_refresh_token(
                context,
                host_id,
                session_id,
                client_id,
                resource,
                token::refresh_token_sha256(refresh_token),
                next.sha256,
            )
            .await
            .map_err(|error| unavailable("rotate refresh token", &error))?
            .map_err(|rejected| match rejected {
                portcullis_domain::session::SessionRejected::WrongResource => {
                    TokenError::InvalidTarget(rejected.to_string())
                }
                portcullis_domain::session::SessionRejected::UnknownRefreshToken
                | portcullis_domain::session::SessionRejected::NotFound => invalid(),
                other => TokenError::InvalidGrant(other.to_string()),
            })?;
        match outcome {
            RefreshOutcome::Rotated(session) => {
                self.respond(context, &signer, &issuer, &session, next.token)
            }
            RefreshOutcome::Reused => Err(TokenError::InvalidGrant(
                "the refresh token was already used; its session is revoked".to_owned(),
            )),
        }
    }

    /// The host's newest signing key, opened, and its issuer.
    async fn signer(
        &self,
        context: &Context,
        host_id: &str,
    ) -> Result<(SigningKey, String), TokenError> {
        let (_, issuer) = self.host(host_id).await.map_err(|error| match error {
            ControlError::NotFound { .. } => {
                TokenError::InvalidGrant("unknown authorization server".to_owned())
            }
            other => unavailable("host", &other),
        })?;
        let key = self
            .control
            .ensure_signing_key(context, host_id)
            .await
            .map_err(|error| unavailable("signing key", &error))?;
        let signer = SigningKey::open(&self.ring, host_id, &key)
            .map_err(|error| unavailable("open signing key", &error))?;
        Ok((signer, issuer))
    }

    fn respond(
        &self,
        context: &Context,
        signer: &SigningKey,
        issuer: &str,
        session: &TokenSession,
        refresh_token: String,
    ) -> Result<TokenResponse, TokenError> {
        let iat = u64::try_from(context.now_ms / 1000).unwrap_or(0);
        let claims = AccessClaims {
            iss: issuer.to_owned(),
            aud: crate::authorize::audience_of(&session.resource).to_owned(),
            sub: session.human_id.clone(),
            client_id: session.client_id.clone(),
            sid: session.session_id.clone(),
            iat,
            exp: iat.saturating_add(token::ACCESS_TOKEN_TTL_SECONDS),
            jti: token::new_jti(),
        };
        let access_token = portcullis_tokens::access::mint(signer, &claims)
            .map_err(|error| unavailable("mint access token", &error))?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: token::ACCESS_TOKEN_TTL_SECONDS,
            refresh_token,
            scope: crate::SCOPE.to_owned(),
        })
    }
}

/// Logs an infrastructure failure and answers `server_error`.
fn unavailable(what: &str, error: &dyn std::fmt::Display) -> TokenError {
    tracing::warn!(%what, error = %error, "Token request failed.");
    TokenError::Unavailable
}

#[cfg(test)]
mod tests;
