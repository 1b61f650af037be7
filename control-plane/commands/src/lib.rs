//! Command execution for the control plane.
//!
//! Owns: the `Aggregate` trait (pure `evolve` and `decide`), the `EventCodec` that turns domain
//! events into log records and back, and `execute`, which loads an aggregate, decides, and
//! appends with the loaded version, reloading and deciding again when another writer won.
//!
//! Must not: know HTTP or gRPC, or read read models: a command is decided from the aggregate's
//! own events only, so the decision is exactly as current as the append that records it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod execute;

pub use execute::{Aggregate, Decision, EventCodec, ExecuteError, Executed, execute};
