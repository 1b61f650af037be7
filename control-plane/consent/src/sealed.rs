//! Values the browser or the log carries sealed by the key ring: the consent flow's state,
//! the browser session cookie, and the human's password hash and verification code.
//!
//! Wire form: `<len of key id><key id><nonce, ciphertext, tag>`, base64url without padding
//! when it travels as text. Each use binds its own associated data, so one kind of sealed
//! value can never be opened as another, nor for another host.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_secrets::KeyRing;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// Largest sealed text accepted (cookies and form fields), in bytes.
pub const MAX_SEALED_TEXT: usize = 8 * 1024;

/// Why a sealed value could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Sealing failed (no usable key).
    #[error("cannot seal")]
    Seal,
    /// Not a sealed value, another key, tampered with, or for other associated data.
    #[error("invalid or tampered sealed value")]
    Invalid,
}

/// Seals `plaintext` as bytes (for events).
pub fn seal_bytes(ring: &KeyRing, plaintext: &[u8], aad: &str) -> Result<Vec<u8>, SealedError> {
    ring.seal_to_bytes(plaintext, aad.as_bytes())
        .map_err(|_| SealedError::Seal)
}

/// Opens bytes made by `seal_bytes` with the same `aad`.
pub fn open_bytes(
    ring: &KeyRing,
    bytes: &[u8],
    aad: &str,
) -> Result<Zeroizing<Vec<u8>>, SealedError> {
    ring.open_from_bytes(bytes, aad.as_bytes())
        .map_err(|_| SealedError::Invalid)
}

/// Seals `value` as JSON into URL-safe text.
pub fn seal_json<T: Serialize>(
    ring: &KeyRing,
    value: &T,
    aad: &str,
) -> Result<String, SealedError> {
    let json = serde_json::to_vec(value).map_err(|_| SealedError::Seal)?;
    Ok(URL_SAFE_NO_PAD.encode(seal_bytes(ring, &json, aad)?))
}

/// Opens text made by `seal_json` with the same `aad`.
pub fn open_json<T: DeserializeOwned>(
    ring: &KeyRing,
    text: &str,
    aad: &str,
) -> Result<T, SealedError> {
    if text.is_empty() || text.len() > MAX_SEALED_TEXT {
        return Err(SealedError::Invalid);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| SealedError::Invalid)?;
    let json = open_bytes(ring, &bytes, aad)?;
    serde_json::from_slice(&json).map_err(|_| SealedError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::parse(&portcullis_secrets::generate_key_text()).expect("key")
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_associated_data() {
        let ring = ring();
        let text = seal_json(&ring, &vec!["a", "b"], "flow:h1").expect("seal");
        let back: Vec<String> = open_json(&ring, &text, "flow:h1").expect("open");
        assert_eq!(back, ["a", "b"]);
        assert!(open_json::<Vec<String>>(&ring, &text, "flow:h2").is_err());
        assert!(open_json::<Vec<String>>(&ring, &text, "cookie:h1").is_err());
        let mut tampered = text.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert!(open_json::<Vec<String>>(&ring, &tampered, "flow:h1").is_err());
        assert!(open_json::<Vec<String>>(&ring, "", "flow:h1").is_err());
        assert!(open_bytes(&ring, &[200, 1, 2], "x").is_err());
    }
}
