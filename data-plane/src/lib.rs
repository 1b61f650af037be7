//! The data plane: what MCP clients talk to.
//!
//! Owns: the in-memory replica of the read models (`replica`), kept current by a watch on the
//! read-model store, with the freshness bound that makes the proxy fail closed.
//!
//! Must not: write events or read models, call the control plane, or wait on the store inside
//! a request: every decision is made from memory.
//!
//! Invariant: a replica that has not caught up, or has not heard from the store for longer than
//! `max_staleness`, reports itself stale, and callers must deny.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod auth;
pub mod decide;
pub mod handle;
pub mod jsonrpc;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod relay;
pub mod replica;
pub mod sse;
pub mod tracing_context;

pub use proxy::{Config, DataPlane, StartError};
