//! The REST surface through the real router (`portcullis_api::router`), over a real SQLite
//! store with the projector running: every route's happy path and its errors, discovery and
//! import against real MCP servers (server-everything, a Python `mcp` 2.3.0 server), and the
//! OpenAPI document (validated by `openapi-spec-validator`, and matched against the routes).
//!
//! The peers and the validator are installed by `scripts/lib/tools.sh` (`ensure_mcp_peers`,
//! `ensure_schemathesis`), which exports where they are; a test whose tool is missing fails
//! and says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is the report

mod agents;
mod audit;
mod errors;
mod hosts;
mod humans;
mod openapi;
mod organizations;
mod servers;
mod support;
mod upstream;
mod upstream_oauth;
