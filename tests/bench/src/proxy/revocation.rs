//! The `revocation` scenario: how long after an admin revokes a grant every data plane stops
//! honouring it. An in-process gateway (embedded store, projector, control service) with two
//! data-plane replicas; each round grants a human, opens an MCP session on both replicas and
//! makes one allowed call through each, then revokes the grant and times, per replica, the
//! moment its replica no longer holds the grant (from then on every call is denied). The time
//! runs from the start of the revoke command, so it includes the command, the projector and
//! the watch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use hyper::header::{AUTHORIZATION, HeaderValue};
use portcullis_data_plane::replica::Value;
use portcullis_e2e::gateway::{Gateway, ReplicaServer};
use portcullis_projector::{Buckets, ModelKind, model_key};
use portcullis_proto::TrustLevel;

use super::mcp_client::McpConnection;
use super::target::Endpoint;
use super::upstream;

/// Longest a round may wait for a replica before the scenario fails.
const GIVE_UP: Duration = Duration::from_secs(10);

async fn connection(url: String, token: &str) -> anyhow::Result<McpConnection> {
    let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    bearer.set_sensitive(true);
    let endpoint = Arc::new(Endpoint::resolve(&url, vec![(AUTHORIZATION, bearer)]).await?);
    McpConnection::open(endpoint, "get_weather").await
}

/// Waits (polling every 100 µs) until `replica` no longer holds a live grant at `key`.
async fn until_gone(
    replica: &ReplicaServer,
    key: &portcullis_store::Key,
) -> anyhow::Result<Instant> {
    let buckets = Buckets::new(None)?;
    let bucket = buckets.for_kind(ModelKind::Grant).clone();
    let deadline = Instant::now() + GIVE_UP;
    loop {
        let live = replica
            .proxy
            .replica()
            .get(&bucket, key)
            .is_some_and(|cached| match &cached.value {
                // The replica holds grants decoded; a revoked one is a tombstone.
                Value::Grant(grant) => grant.live.is_some(),
                other => !String::from_utf8_lossy(&other.to_json()).contains("\"deleted\":true"),
            });
        if !live {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "a replica kept a revoked grant for {GIVE_UP:?}"
        );
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Runs `rounds` revocations and prints the report.
pub async fn run(upstream_bin: Option<&std::path::Path>, rounds: usize) -> anyhow::Result<()> {
    let binary = upstream::binary(upstream_bin)?;
    let upstream = upstream::start(&binary, "127.0.0.1:0".parse()?, None).await?;
    let gateway = Gateway::start_with(Duration::from_secs(10)).await;
    let second = gateway.start_replica().await;
    let server = gateway.import(&upstream.url, "weather").await;
    let mut first_seen = Histogram::<u64>::new(3)?;
    let mut every = Histogram::<u64>::new(3)?;
    for round in 0..rounds {
        let human = gateway
            .add_human(&format!("revoked-{round}@example.com"))
            .await;
        gateway
            .grant(&human, &server.server_id, TrustLevel::High)
            .await;
        let session = gateway
            .connect(&human, &server.server_id, TrustLevel::Low)
            .await;
        for url in [gateway.mcp_url(), format!("{}/mcp", second.url())] {
            let mut client = connection(url.clone(), &session.token).await?;
            client
                .call_tool()
                .await
                .with_context(|| format!("an allowed call through {url}"))?;
            client.close().await;
        }
        let key = model_key(
            ModelKind::Grant,
            &[&gateway.host_id, &human, &server.server_id],
        )?;
        let started = Instant::now();
        let ((), first, other) = tokio::join!(
            gateway.revoke_grant(&human, &server.server_id),
            until_gone(&gateway.primary, &key),
            until_gone(&second, &key),
        );
        let (first, other) = (first?, other?);
        first_seen.record(micros(first.min(other) - started))?;
        every.record(micros(first.max(other) - started))?;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "\n## Revocation: a grant revoked through the control service, until the replicas deny ({rounds} rounds, 2 replicas, embedded store)\n"
    );
    println!("| | p50 | p90 | p99 | max |\n|---|---|---|---|---|");
    for (name, h) in [("first replica", &first_seen), ("every replica", &every)] {
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    Ok(())
}
