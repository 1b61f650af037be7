//! Command execution for the control plane.
//!
//! Owns: `execute`, which loads an aggregate's events, lets the aggregate decide, and appends
//! the event with the loaded version, deciding again when another writer won the race; the
//! event metadata every recorded event carries (`Context`); and `bootstrap`, which creates
//! the default organization and host of `portcullis dev`.
//!
//! Must not: know HTTP or gRPC, or read read models: a command is decided from the aggregate's
//! own events only, so the decision is exactly as current as the append that records it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bootstrap;
mod execute;

pub use execute::{Context, ExecuteError, Executed, execute, load_state};
