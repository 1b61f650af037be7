//! Idempotency keys and the command ids derived from them.
//!
//! A request's idempotency key (the caller's, or a fresh ULID) is turned into one command id
//! per step of its workflow: SHA-256 of the admin token id, the key, the step name and the
//! subject. The same request retried with the same key thus appends nothing twice, whichever
//! step it had reached; two admins, two operations or two aggregates never share a command
//! id (command ids are unique across the whole log, not per subject).

use portcullis_store::{CommandId, Subject};
use sha2::{Digest, Sha256};

use super::ControlError;

/// Longest idempotency key.
const MAX_KEY_LEN: usize = 128;

/// A caller-supplied idempotency key (an `Idempotency-Key` header): 1–128 printable ASCII
/// characters without spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key; the error names the field `idempotency_key`.
    pub fn parse(key: &str) -> Result<Self, ControlError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ControlError::invalid(
                "idempotency_key",
                format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"),
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// A fresh key, for a request that brought none.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The writes of one request: derives its command ids and remembers the highest log
/// sequence it appended or found, to wait for.
#[derive(Debug)]
pub(crate) struct Writes {
    token_id: String,
    key: IdempotencyKey,
    through: u64,
}

impl Writes {
    /// The writes of the admin `token_id` under `key` (a fresh one when `None`).
    pub(crate) fn new(token_id: &str, key: Option<&IdempotencyKey>) -> Self {
        Self {
            token_id: token_id.to_owned(),
            key: key.cloned().unwrap_or_else(IdempotencyKey::generate),
            through: 0,
        }
    }

    /// The command id of `step` on `subject`.
    pub(crate) fn command_id(
        &self,
        step: &str,
        subject: &Subject,
    ) -> Result<CommandId, ControlError> {
        let digest = self.digest(&["command", step, subject.as_str()]);
        let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
        // 2 + 40 characters of [a-z0-9-]: always a valid command id.
        CommandId::parse(&format!("c-{hex}")).map_err(ControlError::unavailable)
    }

    /// 32 bytes determined by the admin, the key and `parts`: a seed for choices that a
    /// retry must make the same way (e.g. which host ids to try).
    pub(crate) fn seed(&self, parts: &[&str]) -> [u8; 32] {
        let mut all = vec!["seed"];
        all.extend_from_slice(parts);
        self.digest(&all)
    }

    fn digest(&self, parts: &[&str]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [self.token_id.as_str(), self.key.as_str()]
            .iter()
            .chain(parts)
        {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    /// Notes a version the request produced or depends on.
    pub(crate) fn note(&mut self, sequence: u64) {
        self.through = self.through.max(sequence);
    }

    /// The highest sequence noted.
    pub(crate) fn through(&self) -> u64 {
        self.through
    }
}
