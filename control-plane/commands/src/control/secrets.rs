//! Sealing upstream OAuth client secrets before they are recorded.
//!
//! The control plane never records a secret in plaintext: `SecretSealer` turns it into
//! AES-256-GCM ciphertext under a master key named by a key id. The implementation (and the
//! master key's configuration) is the binary's; this crate only calls it.

/// The associated data an upstream OAuth client secret is sealed with: whoever opens it
/// (the upstream client) must pass the same bytes.
pub fn oauth_client_secret_aad(host_id: &str, server_id: &str) -> String {
    format!("upstream_oauth_client_secret:{host_id}:{server_id}")
}

/// A sealed secret and the master key that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The master key's id, recorded for rotation.
    pub key_id: String,
    /// Nonce and ciphertext, as the sealer lays them out.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("sealed_bytes", &self.sealed.len())
            .finish()
    }
}

/// Why a secret could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No master key is configured.
    #[error("no master key is configured to seal secrets")]
    NoMasterKey,
    /// The cipher failed.
    #[error("sealing failed")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Seals secrets under the current master key.
pub trait SecretSealer: Send + Sync + 'static {
    /// Seals `plaintext`, bound to `associated_data` (which names what the secret is for, so
    /// a ciphertext moved elsewhere does not open).
    fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<SealedSecret, SealError>;
}

/// A sealer without a master key: every seal fails, so imports with upstream OAuth are
/// refused until one is configured.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecretSealer;

impl SecretSealer for NoSecretSealer {
    fn seal(&self, _plaintext: &[u8], _associated_data: &[u8]) -> Result<SealedSecret, SealError> {
        Err(SealError::NoMasterKey)
    }
}
