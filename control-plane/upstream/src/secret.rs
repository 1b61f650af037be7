//! `Secret`: a string that must never reach a log line or a `Debug` dump (access and refresh
//! tokens, client secrets, PKCE verifiers, OAuth `state`).

use std::fmt;

/// A secret string. `Debug` prints `Secret(redacted)`; only `expose` reveals the value.
///
/// It serializes as the plain string, because the caller persists pending authorizations and
/// tokens (encrypted at rest, per the design); serializing is the one deliberate way out.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}
