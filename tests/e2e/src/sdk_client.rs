//! The TypeScript SDK's MCP client (`tests/fixtures/peers/mcp_client.mjs`, run with the
//! pinned Node from `scripts/lib/tools.sh`), which declares sampling, elicitation and roots,
//! answers the server's requests, and prints what it saw as JSON.

use std::time::Duration;

use serde_json::Value;

/// Runs `tests/fixtures/peers/mcp_client.mjs` (the TypeScript SDK's client) against `url`,
/// sending its answers to the server's requests to `answer_url`.
pub async fn run(url: &str, token: &str, answer_url: &str) -> Value {
    let node = std::env::var("PORTCULLIS_PEER_NODE").expect(
        "PORTCULLIS_PEER_NODE is unset: run scripts/test, or `repo=$PWD; source scripts/lib/tools.sh; ensure_mcp_peers`",
    );
    let everything = std::path::PathBuf::from(
        std::env::var("PORTCULLIS_PEER_EVERYTHING").expect("PORTCULLIS_PEER_EVERYTHING"),
    );
    // <modules>/@modelcontextprotocol/server-everything/dist/index.js → <modules>/…/sdk/dist/esm
    let sdk = everything
        .ancestors()
        .nth(3)
        .expect("the @modelcontextprotocol directory")
        .join("sdk/dist/esm");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/peers/mcp_client.mjs");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(node)
            .arg(script)
            .env("MCP_SDK", sdk)
            .env("MCP_URL", url)
            .env("MCP_TOKEN", token)
            .env("MCP_ANSWER_URL", answer_url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finished in time")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
