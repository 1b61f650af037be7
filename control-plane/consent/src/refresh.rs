//! Refreshing humans' upstream credentials before they expire, without the human: every
//! control-plane replica runs the refresher; a credential is refreshed only by the replica
//! that won its refresh claim (compare-and-set on the credential's version), so a rotating
//! refresh token is spent exactly once. An upstream that refuses the refresh gets the
//! credential revoked: data planes then tell the client to reconnect and sign in again.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use portcullis_commands::Context;
use portcullis_commands::control::{Control, HeldCredential};
use portcullis_secrets::KeyRing;
use portcullis_upstream::UrlPolicy;
use portcullis_upstream::oauth::{
    self, AuthorizationOptions, OAuthError, StoredCredential, credential_aad,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::now_ms;

/// When and how far ahead the refresher works.
#[derive(Clone, Debug)]
pub struct RefreshSettings {
    /// How often it looks for credentials to refresh.
    pub every: Duration,
    /// How long before expiry a credential is refreshed.
    pub ahead: Duration,
    /// How long a claim holds (a replica that dies mid-refresh gives way after it).
    pub claim: Duration,
    /// Which upstream addresses may be reached.
    pub url_policy: UrlPolicy,
    /// This replica's name in claims.
    pub replica: String,
}

impl RefreshSettings {
    /// Every 30 s, 5 minutes ahead, claims of 60 s.
    pub fn new(url_policy: UrlPolicy, replica: impl Into<String>) -> Self {
        Self {
            every: Duration::from_secs(30),
            ahead: Duration::from_secs(300),
            claim: Duration::from_secs(60),
            url_policy,
            replica: replica.into(),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefreshPass {
    /// Credentials refreshed by this replica.
    pub refreshed: usize,
    /// Credentials another replica was refreshing.
    pub claimed_elsewhere: usize,
    /// Credentials revoked because the upstream refused the refresh.
    pub revoked: usize,
    /// Credentials without a refresh token (they lapse; the human signs in again).
    pub not_refreshable: usize,
    /// Failures left for the next pass (network, store).
    pub failed: usize,
}

/// Runs passes every `settings.every` until `shutdown`.
pub fn spawn_refresher(
    control: Arc<Control>,
    ring: KeyRing,
    settings: RefreshSettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(settings.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let pass = refresh_pass(&control, &ring, &settings).await;
            if pass != RefreshPass::default() {
                tracing::info!(?pass, "Upstream credential refresh pass.");
            }
        }
    })
}

/// One pass over the credentials expiring within `settings.ahead`.
pub async fn refresh_pass(
    control: &Control,
    ring: &KeyRing,
    settings: &RefreshSettings,
) -> RefreshPass {
    let mut pass = RefreshPass::default();
    let ahead = i64::try_from(settings.ahead.as_millis()).unwrap_or(i64::MAX);
    let due = match control
        .upstream_credentials_expiring(now_ms().saturating_add(ahead))
        .await
    {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "Cannot list upstream credentials to refresh.");
            pass.failed += 1;
            return pass;
        }
    };
    for held in due {
        match refresh_one(control, ring, settings, &held).await {
            Outcome::Refreshed => pass.refreshed += 1,
            Outcome::ClaimedElsewhere => pass.claimed_elsewhere += 1,
            Outcome::Revoked => pass.revoked += 1,
            Outcome::NotRefreshable => pass.not_refreshable += 1,
            Outcome::Failed => pass.failed += 1,
        }
    }
    pass
}

enum Outcome {
    Refreshed,
    ClaimedElsewhere,
    Revoked,
    NotRefreshable,
    Failed,
}

async fn refresh_one(
    control: &Control,
    ring: &KeyRing,
    settings: &RefreshSettings,
    held: &HeldCredential,
) -> Outcome {
    let aad = credential_aad(&held.host_id, &held.human_id, &held.server_id);
    let stored = base64::engine::general_purpose::STANDARD
        .decode(&held.credential.credential_sealed)
        .ok()
        .and_then(|sealed| ring.open_from_bytes(&sealed, aad.as_bytes()).ok())
        .and_then(|json| serde_json::from_slice::<StoredCredential>(&json).ok());
    let Some(stored) = stored else {
        tracing::warn!(host_id = %held.host_id, server_id = %held.server_id, "An upstream credential cannot be opened; left alone.");
        return Outcome::Failed;
    };
    if stored.tokens.refresh_token.is_none() {
        return Outcome::NotRefreshable;
    }
    let context = Context::system("upstream-refresh", &crate::ulid_like());
    let claim = i64::try_from(settings.claim.as_millis()).unwrap_or(i64::MAX);
    match control
        .claim_upstream_refresh(
            &context,
            held,
            &settings.replica,
            context.now_ms.saturating_add(claim),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => return Outcome::ClaimedElsewhere,
        Err(error) => {
            tracing::warn!(%error, "Cannot claim an upstream credential's refresh.");
            return Outcome::Failed;
        }
    }
    let tokens = match oauth::refresh_credential(
        &stored,
        settings.url_policy,
        &AuthorizationOptions::default(),
    )
    .await
    {
        Ok(tokens) => tokens,
        Err(OAuthError::TokenRequestFailed { detail, .. }) => {
            // The upstream answered and said no (invalid_grant and the like): the human must
            // sign in again.
            tracing::info!(host_id = %held.host_id, server_id = %held.server_id, %detail, "The upstream refused to refresh a credential; revoking it.");
            return match control
                .revoke_upstream_credential(
                    &context,
                    held,
                    "the upstream refused to refresh the sign-in; reconnect to sign in again",
                )
                .await
            {
                Ok(()) => Outcome::Revoked,
                Err(error) => {
                    tracing::warn!(%error, "Cannot revoke an upstream credential.");
                    Outcome::Failed
                }
            };
        }
        Err(error) => {
            tracing::warn!(host_id = %held.host_id, server_id = %held.server_id, %error, "Upstream credential refresh failed; retrying later.");
            return Outcome::Failed;
        }
    };
    let expires_at_ms = tokens
        .expires_at
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let renewed = StoredCredential { tokens, ..stored };
    let Ok(json) = serde_json::to_vec(&renewed).map(zeroize::Zeroizing::new) else {
        return Outcome::Failed;
    };
    let Ok(sealed) = ring.seal_to_bytes(&json, aad.as_bytes()) else {
        return Outcome::Failed;
    };
    match control
        .store_upstream_credential(
            &context,
            &held.host_id,
            &held.human_id,
            &held.server_id,
            sealed,
            expires_at_ms,
        )
        .await
    {
        Ok(()) => Outcome::Refreshed,
        Err(error) => {
            // The new refresh token is lost if this write never lands; the claim lapses and
            // the next pass tries the old one (which a rotating upstream may refuse: then the
            // human signs in again).
            tracing::warn!(%error, "Refreshed upstream tokens could not be stored.");
            Outcome::Failed
        }
    }
}
