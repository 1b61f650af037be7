//! The client-facing `Mcp-Session-Id`: an AEAD-sealed handle any replica can open.
//!
//! It carries the upstream's session id, the server, the consent session it is bound to, the
//! negotiated protocol version and which server-to-client capabilities the client declared,
//! sealed under the deployment's master key ring (AES-256-GCM, random nonce, bound to a fixed
//! purpose string). The upstream session id never reaches the client in the clear, and a
//! handle only opens into the values it was sealed with; the caller then checks that its
//! host, server and consent session are the request's.
//!
//! Upstream SSE event ids are mapped the same way (sealed, bound to the upstream session), so
//! a client resuming with `Last-Event-ID` on any replica resumes the right upstream stream.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_secrets::{KeyRing, Sealed};
use serde::{Deserialize, Serialize};

const HANDLE_PREFIX: &str = "pcs1";
const EVENT_PREFIX: &str = "pce1";
const HANDLE_PURPOSE: &[u8] = b"portcullis mcp session handle v1";

/// Longest handle or event id accepted, bytes (a real one is a few hundred).
pub const MAX_SEALED_LEN: usize = 2048;

/// Server-to-client capabilities the client declared in `initialize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCapabilities {
    /// `sampling`.
    #[serde(default, rename = "s")]
    pub sampling: bool,
    /// `elicitation`.
    #[serde(default, rename = "e")]
    pub elicitation: bool,
    /// `roots`.
    #[serde(default, rename = "r")]
    pub roots: bool,
}

impl ClientCapabilities {
    /// From `initialize`'s `params.capabilities`.
    pub fn from_declared(capabilities: Option<&serde_json::Value>) -> Self {
        let has = |name: &str| {
            capabilities
                .and_then(|c| c.get(name))
                .is_some_and(|v| !v.is_null())
        };
        Self {
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }

    /// Whether a server-to-client request with `method` may be relayed.
    pub fn allows(&self, method: &str) -> bool {
        match method {
            "sampling/createMessage" => self.sampling,
            "elicitation/create" => self.elicitation,
            "roots/list" => self.roots,
            // ping and anything else a server may send without a capability.
            _ => true,
        }
    }
}

/// What a handle carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHandle {
    /// Host.
    #[serde(rename = "h")]
    pub host_id: String,
    /// Server.
    #[serde(rename = "v")]
    pub server_id: String,
    /// The consent session (the access token's `sid`).
    #[serde(rename = "c")]
    pub sid: String,
    /// The upstream's `Mcp-Session-Id`, when it issued one.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub upstream_session: Option<String>,
    /// The negotiated protocol version.
    #[serde(rename = "p")]
    pub protocol_version: String,
    /// Declared client capabilities.
    #[serde(rename = "k", default)]
    pub capabilities: ClientCapabilities,
}

/// A handle or event id did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown or tampered session handle")]
pub struct BadHandle;

fn seal(ring: &KeyRing, prefix: &str, plaintext: &[u8], aad: &[u8]) -> Option<String> {
    let sealed = ring.seal(plaintext, aad).ok()?;
    Some(format!(
        "{prefix}.{}.{}",
        sealed.key_id,
        URL_SAFE_NO_PAD.encode(&sealed.bytes)
    ))
}

fn open(ring: &KeyRing, prefix: &str, text: &str, aad: &[u8]) -> Result<Vec<u8>, BadHandle> {
    if text.len() > MAX_SEALED_LEN {
        return Err(BadHandle);
    }
    let mut parts = text.split('.');
    let (Some(found_prefix), Some(key_id), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadHandle);
    };
    if found_prefix != prefix {
        return Err(BadHandle);
    }
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| BadHandle)?;
    let sealed = Sealed {
        key_id: key_id.to_owned(),
        bytes,
    };
    ring.open(&sealed, aad)
        .map(|plain| plain.to_vec())
        .map_err(|_| BadHandle)
}

impl SessionHandle {
    /// Seals the handle; `None` only if the cipher fails.
    pub fn seal(&self, ring: &KeyRing) -> Option<String> {
        let plaintext = serde_json::to_vec(self).ok()?;
        seal(ring, HANDLE_PREFIX, &plaintext, HANDLE_PURPOSE)
    }

    /// Opens a handle a client presented.
    pub fn open(ring: &KeyRing, text: &str) -> Result<Self, BadHandle> {
        let plaintext = open(ring, HANDLE_PREFIX, text, HANDLE_PURPOSE)?;
        serde_json::from_slice(&plaintext).map_err(|_| BadHandle)
    }

    fn event_aad(&self) -> Vec<u8> {
        format!(
            "portcullis mcp event id v1\0{}\0{}\0{}",
            self.host_id,
            self.sid,
            self.upstream_session.as_deref().unwrap_or("")
        )
        .into_bytes()
    }

    /// The id the client sees for an upstream event id.
    pub fn seal_event_id(&self, ring: &KeyRing, upstream_id: &str) -> Option<String> {
        seal(
            ring,
            EVENT_PREFIX,
            upstream_id.as_bytes(),
            &self.event_aad(),
        )
    }

    /// The upstream event id behind one the client presented (in `Last-Event-ID`).
    pub fn open_event_id(&self, ring: &KeyRing, text: &str) -> Result<String, BadHandle> {
        let plaintext = open(ring, EVENT_PREFIX, text, &self.event_aad())?;
        String::from_utf8(plaintext).map_err(|_| BadHandle)
    }
}

#[cfg(test)]
mod tests;
