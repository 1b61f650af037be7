//! The key ring and the sealed format: `nonce (12 bytes) || ciphertext || tag (16 bytes)`.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// One master key. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct MasterKey([u8; KEY_LEN]);

/// A value sealed under a master key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// Nonce, ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Why a master-key text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// No key at all.
    #[error("no master key given")]
    Empty,
    /// A key is not base64 of exactly 32 bytes.
    #[error("master key {position} is not base64 of exactly 32 bytes")]
    BadKey {
        /// 1-based position in the list.
        position: usize,
    },
    /// A key id is malformed.
    #[error("master key {position} has an invalid id (1-32 of A-Z a-z 0-9 _ -)")]
    BadKeyId {
        /// 1-based position in the list.
        position: usize,
    },
    /// Two keys share an id.
    #[error("master key id {0:?} appears twice")]
    DuplicateKeyId(String),
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// The cipher refused to seal (only for inputs beyond what AES-GCM can take, ~64 GiB).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealing failed")]
pub struct SealError;

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The key that sealed it is not in the ring (removed too early in a rotation?).
    #[error("master key {0:?} is not configured")]
    UnknownKey(String),
    /// Wrong key, wrong associated data, or tampered bytes.
    #[error("sealed value does not open (tampered, or bound to other data)")]
    Rejected,
}

/// The deployment's master keys: the first is active (seals), all open.
#[derive(Clone)]
pub struct KeyRing {
    active: String,
    keys: BTreeMap<String, MasterKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// Parses `id:base64[,id:base64…]` (the first key seals; rotate by putting a new key
    /// first and keeping the old ones until nothing sealed under them remains). A bare
    /// `base64` key gets the id `k` + the first 8 hex digits of its SHA-256.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys = BTreeMap::new();
        let mut active = None;
        for (index, item) in text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let position = index + 1;
            let (id, encoded) = match item.split_once(':') {
                Some((id, encoded)) => (Some(id.trim()), encoded.trim()),
                None => (None, item),
            };
            let mut decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyRingError::BadKey { position })?,
            );
            let bytes: [u8; KEY_LEN] = decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyRingError::BadKey { position })?;
            decoded.zeroize();
            let id = match id {
                Some(id) => {
                    let valid = !id.is_empty()
                        && id.len() <= 32
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !valid {
                        return Err(KeyRingError::BadKeyId { position });
                    }
                    id.to_owned()
                }
                None => {
                    let digest = Sha256::digest(bytes);
                    format!("k{}", hex8(&digest))
                }
            };
            if keys.insert(id.clone(), MasterKey(bytes)).is_some() {
                return Err(KeyRingError::DuplicateKeyId(id));
            }
            active.get_or_insert(id);
        }
        let active = active.ok_or(KeyRingError::Empty)?;
        Ok(Self { active, keys })
    }

    /// The id of the key that seals.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext`, bound to `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let cipher = self.cipher(&self.active).ok_or(SealError)?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated_data,
                },
            )
            .map_err(|_| SealError)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.active.clone(),
            bytes,
        })
    }

    /// Opens a sealed value; the plaintext is zeroed when dropped.
    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let cipher = self
            .cipher(&sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN + 16 {
            return Err(OpenError::Rejected);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated_data,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Rejected)
    }

    /// Seals `plaintext` into one self-describing byte string (`<id length><key id><nonce,
    /// ciphertext, tag>`), for values stored as bytes (event fields, cookies).
    pub fn seal_to_bytes(
        &self,
        plaintext: &[u8],
        associated_data: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let sealed = self.seal(plaintext, associated_data)?;
        let id = sealed.key_id.as_bytes();
        let len = u8::try_from(id.len()).map_err(|_| SealError)?;
        let mut out = Vec::with_capacity(1 + id.len() + sealed.bytes.len());
        out.push(len);
        out.extend_from_slice(id);
        out.extend_from_slice(&sealed.bytes);
        Ok(out)
    }

    /// Opens bytes made by `seal_to_bytes` with the same associated data.
    pub fn open_from_bytes(
        &self,
        bytes: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (&len, rest) = bytes.split_first().ok_or(OpenError::Rejected)?;
        let len = usize::from(len);
        if rest.len() < len {
            return Err(OpenError::Rejected);
        }
        let (id, body) = rest.split_at(len);
        let key_id = std::str::from_utf8(id).map_err(|_| OpenError::Rejected)?;
        self.open(
            &Sealed {
                key_id: key_id.to_owned(),
                bytes: body.to_vec(),
            },
            associated_data,
        )
    }

    /// A keyed hash (HMAC-SHA256) of `data` for `purpose` under the active key, as
    /// `<id length><key id><32-byte tag>`: for secrets that are only ever compared, never
    /// read back (mailed codes). `purpose` separates uses, as associated data does for
    /// sealing. Without the key a stored hash cannot be checked against guesses, so even a
    /// six-digit code does not fall to an offline search.
    pub fn mac(&self, purpose: &[u8], data: &[u8]) -> Result<Vec<u8>, SealError> {
        let tag = self.tag(&self.active, purpose, data).ok_or(SealError)?;
        let id = self.active.as_bytes();
        let len = u8::try_from(id.len()).map_err(|_| SealError)?;
        let mut out = Vec::with_capacity(1 + id.len() + tag.len());
        out.push(len);
        out.extend_from_slice(id);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Whether `stored` (made by `mac`, under any key of the ring) is the hash of `data` for
    /// `purpose`; compared in constant time.
    pub fn mac_matches(&self, stored: &[u8], purpose: &[u8], data: &[u8]) -> bool {
        let Some((&len, rest)) = stored.split_first() else {
            return false;
        };
        let len = usize::from(len);
        if rest.len() < len {
            return false;
        }
        let (id, tag) = rest.split_at(len);
        let Ok(key_id) = std::str::from_utf8(id) else {
            return false;
        };
        self.keyed(key_id, purpose, data)
            .is_some_and(|mac| mac.verify_slice(tag).is_ok())
    }

    fn tag(&self, key_id: &str, purpose: &[u8], data: &[u8]) -> Option<[u8; 32]> {
        Some(
            self.keyed(key_id, purpose, data)?
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// HMAC-SHA256 under `key_id` over the purpose's length, the purpose and the data (the
    /// length first, so (purpose, data) pairs cannot collide).
    fn keyed(&self, key_id: &str, purpose: &[u8], data: &[u8]) -> Option<HmacSha256> {
        let key = self.keys.get(key_id)?;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&key.0).ok()?;
        mac.update(&(purpose.len() as u64).to_be_bytes());
        mac.update(purpose);
        mac.update(data);
        Some(mac)
    }

    fn cipher(&self, key_id: &str) -> Option<Aes256Gcm> {
        let key = self.keys.get(key_id)?;
        Aes256Gcm::new_from_slice(&key.0).ok()
    }
}

/// A new random master key in the text format `KeyRing::parse` reads (`<id>:<base64>`).
pub fn generate_key_text() -> Zeroizing<String> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::rng().fill_bytes(key.as_mut());
    let digest = Sha256::digest(key.as_ref());
    Zeroizing::new(format!(
        "k{}:{}",
        hex8(&digest),
        STANDARD.encode(key.as_ref())
    ))
}

fn hex8(digest: &[u8]) -> String {
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
