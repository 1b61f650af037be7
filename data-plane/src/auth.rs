//! Who is calling: the host a request is for, and the caller's access token, checked against
//! that host's own keys and issuer, its resources, and the consent session it names.
//!
//! Verified tokens are cached by the SHA-256 of host and token (never the token itself) until
//! they expire; a cached token is still checked against the session on every request, so a
//! revoked session stops the token at once, and against the host's current keys, so a retired
//! signing key stops every token it signed at once.

use std::sync::Arc;
use std::time::Duration;

use portcullis_projector::models::Host;
use portcullis_tokens::{AccessClaims, TokenError, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::metrics::{CacheLabels, Metrics};

/// Most verified tokens kept.
const TOKEN_CACHE_ENTRIES: u64 = 100_000;
/// Longest a verified token stays cached (it is dropped earlier when it expires).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);

/// Token and verifier caches.
#[derive(Clone)]
pub struct TokenCache {
    /// Verified claims with the id of the key that verified them.
    tokens: moka::sync::Cache<[u8; 32], (Arc<AccessClaims>, Arc<str>)>,
    verifiers: moka::sync::Cache<String, (Arc<Host>, Arc<Verifier>)>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("tokens", &self.tokens.entry_count())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self {
            tokens: moka::sync::Cache::builder()
                .max_capacity(TOKEN_CACHE_ENTRIES)
                .time_to_live(TOKEN_CACHE_TTL)
                .build(),
            verifiers: moka::sync::Cache::new(10_000),
        }
    }
}

impl TokenCache {
    fn verifier(&self, host_id: &str, host: &Arc<Host>, issuer: &str) -> Arc<Verifier> {
        if let Some((cached_host, verifier)) = self.verifiers.get(host_id)
            && Arc::ptr_eq(&cached_host, host)
            && verifier.issuer() == issuer
        {
            return verifier;
        }
        let keys = host.signing_keys.iter().filter_map(|key| {
            match VerifyingKey::from_hex(&key.kid, &key.algorithm, &key.public_key) {
                Ok(key) => Some(key),
                Err(error) => {
                    tracing::error!(host = host_id, %error, "A host signing key in the read model is unusable; tokens signed with it are refused.");
                    None
                }
            }
        });
        let verifier = Arc::new(Verifier::new(issuer.to_owned(), keys));
        self.verifiers
            .insert(host_id.to_owned(), (host.clone(), verifier.clone()));
        verifier
    }

    /// Verifies `token` for `host_id` (whose issuer is `issuer`) at `now_seconds`.
    pub fn verify(
        &self,
        metrics: &Metrics,
        host_id: &str,
        host: &Arc<Host>,
        issuer: &str,
        token: &str,
        now_seconds: u64,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        let mut hasher = Sha256::new();
        hasher.update(host_id.as_bytes());
        hasher.update([0]);
        hasher.update(issuer.as_bytes());
        hasher.update([0]);
        hasher.update(token.as_bytes());
        let digest: [u8; 32] = hasher.finalize().into();
        if let Some((claims, kid)) = self.tokens.get(&digest) {
            metrics
                .token_cache
                .get_or_create(&CacheLabels { result: "hit" })
                .inc();
            if !host.signing_keys.iter().any(|key| *key.kid == *kid) {
                self.tokens.invalidate(&digest);
                return Err(TokenError::UnknownKey);
            }
            if claims
                .exp
                .saturating_add(portcullis_tokens::access::LEEWAY_SECONDS)
                <= now_seconds
            {
                self.tokens.invalidate(&digest);
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        metrics
            .token_cache
            .get_or_create(&CacheLabels { result: "miss" })
            .inc();
        let (claims, kid) = self
            .verifier(host_id, host, issuer)
            .verify_keyed(token, now_seconds)?;
        let claims = Arc::new(claims);
        self.tokens.insert(digest, (claims.clone(), Arc::from(kid)));
        Ok(claims)
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}
