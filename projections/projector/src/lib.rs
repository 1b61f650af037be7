//! Read models of Portcullis and the projector that builds them from the event log.
//!
//! Owns: the read-model types and their key layout (`models`), the pure folds from domain
//! events to read-model values (`fold`, `targets`), and the `Projector` runner that reads
//! the log through `EventLog` and writes through `ReadModelStore` with compare-and-set.
//!
//! Must not: append events, decide commands, know a storage backend, or fold with IO or a
//! clock (folds see only the event, its sequence and the current value of one key).
//!
//! Invariant: every stored value carries `applied_through`, and deletions are tombstones, so
//! replays, restarts and racing projectors converge to the same read models and never make a
//! revoked grant or deleted entity reappear.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod fold;
pub mod models;
mod runner;
mod targets;

pub use fold::{FoldError, ReadModel, apply, apply_stored};
pub use runner::{
    Buckets, PROJECTOR_BUCKET, Progress, Projector, ProjectorError, ProjectorOptions, StallWatch,
};
pub use targets::{
    AGENTS, GRANTS, HOSTS, HUMANS, KeyTarget, ModelKind, ORGANIZATIONS, READ_MODEL_BUCKETS,
    SERVERS, SESSIONS, Target, client_id_sha256_hex, keys_for, model_key,
};

#[cfg(test)]
mod test_events;
