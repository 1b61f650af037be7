//! Discovery and upstream OAuth against real MCP peers on loopback, and every failure an
//! admin can meet: SSRF refusals, something that is not MCP, nothing listening, no answer.
//!
//! The peers (server-everything, the TS SDK OAuth example, a Python `mcp` 2.3.0 server) are
//! started by `test_fixtures::McpPeer` and installed by `scripts/lib/tools.sh`
//! (`ensure_mcp_peers`), which exports where they are; a test whose peer is missing fails and
//! says how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed expectation is the report

mod discover_peers;
mod failures;
mod oauth_peer;
mod support;
