//! Secrets at rest: upstream OAuth client secrets and tokens are sealed with AES-256-GCM under
//! one of the deployment's master keys before anything records them.
//!
//! Owns: the `KeyRing` (master keys by id, one active), sealing and opening, the master-key
//! text format, and generating a key for `dev`.
//!
//! Must not: log, print or `Debug` a key or a plaintext; decide where keys come from (the
//! binary reads them from the environment or a file).
//!
//! Invariant: every sealed value names the key that sealed it and is bound to associated data
//! naming what it is for, so a ciphertext copied to another record does not open.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod keyring;

pub use keyring::{KeyRing, KeyRingError, OpenError, SealError, Sealed, generate_key_text};
