//! Authorization codes: self-contained values sealed under the master key ring (AES-256-GCM,
//! bound to the host), so any control-plane replica can redeem them without a lookup, and a
//! ledger that lets each be redeemed once.
//!
//! A code is `pc1.<master key id>.<base64url(nonce ‖ ciphertext ‖ tag)>` and expires 60 s
//! after issue. Single use: redeeming writes `code.<host>.<sha256 hex of the code>` with
//! `Expect::Absent` into the `oauth` bucket; the second writer loses, and the caller revokes
//! the session the code minted (RFC 6749 §4.1.2).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use portcullis_secrets::{KeyRing, Sealed};
use portcullis_store::{Bucket, Expect, Key, KvError, ReadModelStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a code may be redeemed after issue, milliseconds.
pub const CODE_TTL_MS: i64 = 60_000;
/// The bucket of redeemed codes.
pub const OAUTH_BUCKET: &str = "oauth";
/// The format prefix of a code.
const FORMAT: &str = "pc1";
/// Longest code accepted for opening, bytes (a real one is about 600).
const MAX_CODE_BYTES: usize = 4096;

/// What a code carries: everything the token endpoint checks and needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The host that issued it.
    pub host_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request, exactly as sent.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource (RFC 8707) the tokens are for.
    pub resource: String,
    /// The granted scope.
    pub scope: String,
    /// The consent session the code was made for.
    pub session_id: String,
    /// The consenting human.
    pub human_id: String,
    /// Expiry, milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Why a code could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Sealing failed (the key ring refused).
    #[error("cannot seal the authorization code")]
    Seal,
    /// Not a code of this host (malformed, forged, tampered, sealed for another host, or
    /// under a master key no longer configured).
    #[error("the authorization code is invalid")]
    Invalid,
    /// Past its expiry.
    #[error("the authorization code has expired")]
    Expired,
}

/// The associated data of a host's codes.
fn associated_data(host_id: &str) -> Vec<u8> {
    format!("portcullis oauth authorization code\0{host_id}").into_bytes()
}

/// Seals a code.
pub fn seal(ring: &KeyRing, grant: &CodeGrant) -> Result<String, CodeError> {
    let plaintext = serde_json::to_vec(grant).map_err(|_| CodeError::Seal)?;
    let sealed = ring
        .seal(&plaintext, &associated_data(&grant.host_id))
        .map_err(|_| CodeError::Seal)?;
    Ok(format!(
        "{FORMAT}.{}.{}",
        sealed.key_id,
        URL_SAFE_NO_PAD.encode(&sealed.bytes)
    ))
}

/// Opens a code presented to `host_id`'s token endpoint and checks its expiry.
pub fn open(
    ring: &KeyRing,
    host_id: &str,
    code: &str,
    now_ms: i64,
) -> Result<CodeGrant, CodeError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(CodeError::Invalid);
    }
    let mut parts = code.split('.');
    let (Some(FORMAT), Some(key_id), Some(bytes), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CodeError::Invalid);
    };
    let sealed = Sealed {
        key_id: key_id.to_owned(),
        bytes: URL_SAFE_NO_PAD
            .decode(bytes)
            .map_err(|_| CodeError::Invalid)?,
    };
    let plaintext = ring
        .open(&sealed, &associated_data(host_id))
        .map_err(|_| CodeError::Invalid)?;
    let grant: CodeGrant = serde_json::from_slice(&plaintext).map_err(|_| CodeError::Invalid)?;
    // Bound by the associated data already; checked again so a format change cannot drop it.
    if grant.host_id != host_id {
        return Err(CodeError::Invalid);
    }
    if now_ms >= grant.expires_at_ms {
        return Err(CodeError::Expired);
    }
    Ok(grant)
}

/// Lower-case hex SHA-256 of a code (codes themselves are never stored).
pub fn code_sha256_hex(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a redemption was the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// First redemption: go ahead.
    First,
    /// Redeemed before: refuse, and revoke what the code minted.
    Again,
}

/// Why the ledger could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the authorization-code ledger is unavailable")]
pub struct LedgerError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Records redeemed codes, so each is redeemed once. Kept apart from `Control` so it can be
/// tested on any `ReadModelStore` and replaced.
#[async_trait]
pub trait CodeLedger: Send + Sync + std::fmt::Debug {
    /// Marks the code (by hash) redeemed in `host_id`; says whether it already was.
    async fn redeem(
        &self,
        host_id: &str,
        code_sha256_hex: &str,
        grant: &CodeGrant,
        now_ms: i64,
    ) -> Result<Redemption, LedgerError>;
}

/// The ledger on a read-model store: one key per redeemed code in the `oauth` bucket.
///
/// Keys are not pruned yet: an expired code's key is harmless (the code no longer opens)
/// but stays; a retention sweep over `expires_at_ms` can remove them later.
#[derive(Clone)]
pub struct KvCodeLedger {
    kv: Arc<dyn ReadModelStore>,
    bucket: Bucket,
}

impl std::fmt::Debug for KvCodeLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCodeLedger")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// What the ledger stores per redeemed code.
#[derive(Serialize)]
struct RedeemedCode<'a> {
    session_id: &'a str,
    client_id: &'a str,
    redeemed_at_ms: i64,
    expires_at_ms: i64,
}

impl KvCodeLedger {
    /// A ledger in `bucket` (created if missing).
    pub async fn new(kv: Arc<dyn ReadModelStore>, bucket: Bucket) -> Result<Self, LedgerError> {
        kv.ensure_bucket(&bucket)
            .await
            .map_err(|e| LedgerError(Box::new(e)))?;
        Ok(Self { kv, bucket })
    }
}

#[async_trait]
impl CodeLedger for KvCodeLedger {
    async fn redeem(
        &self,
        host_id: &str,
        code_sha256_hex: &str,
        grant: &CodeGrant,
        now_ms: i64,
    ) -> Result<Redemption, LedgerError> {
        let key =
            Key::join(["code", host_id, code_sha256_hex]).map_err(|e| LedgerError(Box::new(e)))?;
        let value = serde_json::to_vec(&RedeemedCode {
            session_id: &grant.session_id,
            client_id: &grant.client_id,
            redeemed_at_ms: now_ms,
            expires_at_ms: grant.expires_at_ms,
        })
        .map_err(|e| LedgerError(Box::new(e)))?;
        match self
            .kv
            .put(&self.bucket, &key, Bytes::from(value), Expect::Absent)
            .await
        {
            Ok(_) => Ok(Redemption::First),
            Err(KvError::Conflict { .. }) => Ok(Redemption::Again),
            Err(other) => Err(LedgerError(Box::new(other))),
        }
    }
}

#[cfg(test)]
mod tests;
