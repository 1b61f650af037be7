//! Command execution for the control plane.
//!
//! Owns: `execute`, which loads an aggregate's events, lets the aggregate decide, and appends
//! the event with the loaded version, deciding again when another writer won the race; the
//! event metadata every recorded event carries (`Context`); `bootstrap`, which creates the
//! default organization and host of `portcullis dev`; and `control`, the admin service layer
//! that the REST and gRPC APIs call (tenant checks, workflows, read-your-writes, views).
//!
//! Must not: know HTTP or gRPC. A command is decided from the aggregate's own events only,
//! so the decision is exactly as current as the append that records it; read models are
//! read only by `control`, for views and for checks that precede a command.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bootstrap;
pub mod control;
mod execute;

pub use execute::{Context, ExecuteError, Executed, execute, load_state};
