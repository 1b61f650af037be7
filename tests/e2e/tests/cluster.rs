//! The distributed subcommands against a real NATS JetStream server: `projector`,
//! `control-plane` and `data-plane` as separate processes sharing one namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_commands::Context;
use portcullis_commands::bootstrap::ensure_default_host;
use portcullis_e2e::Process;
use portcullis_store::{Bucket, Key, ReadModelStore};
use portcullis_store_jetstream::{JetStreamConfig, JetStreamStore};
use test_fixtures::{NatsServer, unique_namespace};

const READY_WITHIN: Duration = Duration::from_secs(30);

async fn connect(urls: Vec<String>, namespace: &str) -> Arc<JetStreamStore> {
    let mut config = JetStreamConfig::new(urls);
    config.namespace = namespace.to_owned();
    Arc::new(JetStreamStore::connect(config).await.expect("connect"))
}

/// The value of a gauge in a Prometheus text page.
fn gauge(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn eventually<F: FnMut() -> bool>(what: &str, within: Duration, mut check: F) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened within {within:?}: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_parts_serve_from_nats_fail_closed_without_it_and_recover() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nats = NatsServer::start().await.expect("nats");
    let url = nats.client_url();
    let namespace = unique_namespace();
    let common = ["--nats", url.as_str(), "--namespace", namespace.as_str()];
    let with = |sub: &str, extra: &[&str]| -> Vec<String> {
        [sub]
            .iter()
            .chain(common.iter())
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let start = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Process::start(&refs, dir.path())
    };
    let mut projector = start(with("projector", &[]));
    let mut control = start(with("control-plane", &[]));
    let mut data = start(with(
        "data-plane",
        &[
            "--max-staleness",
            "2s",
            "--stale-wait",
            "1s",
            "--master-key",
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "--public-url",
            "http://127.0.0.1",
        ],
    ));
    projector.wait_ready(READY_WITHIN);
    control.wait_ready(READY_WITHIN);
    data.wait_ready(READY_WITHIN);

    // Events written to the log reach the read models through the projector process, and the
    // data plane's replica picks them up through its watch.
    let store = connect(nats.client_urls(), &namespace).await;
    let context = Context::system("e2e", "e2e-1");
    let host = ensure_default_host(store.as_ref(), &context)
        .await
        .expect("bootstrap");
    let hosts = Bucket::new("hosts").unwrap();
    let key = Key::new(&format!("host.{}", host.host_id)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get(&hosts, &key).await.expect("kv").is_none() {
        assert!(
            Instant::now() < deadline,
            "projector never projected the host"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keys = |p: &Process| {
        p.get("/metrics")
            .and_then(|(_, page)| gauge(&page, "portcullis_read_model_keys{bucket=\"hosts\"}"))
    };
    eventually("data plane sees the host", Duration::from_secs(10), || {
        keys(&data) == Some(1.0)
    })
    .await;
    // The projector's own metrics: what it applied, the log head, no lag once caught up.
    let projector_gauge = |series: &str| {
        projector
            .get("/metrics")
            .and_then(|(_, page)| gauge(&page, series))
    };
    eventually(
        "the projector reports no lag",
        Duration::from_secs(10),
        || {
            projector_gauge("portcullis_projection_applied_through").is_some_and(|v| v >= 1.0)
                && projector_gauge("portcullis_projection_lag_events") == Some(0.0)
                && projector_gauge("portcullis_event_log_reachable") == Some(1.0)
        },
    )
    .await;
    assert_eq!(
        projector_gauge("portcullis_projector_restarts_total"),
        Some(0.0)
    );
    // The control plane's metrics: its view of the log, and requests by route template (a
    // probe of a random path is `unmatched`, never its own series).
    let control_gauge = |series: &str| {
        control
            .get("/metrics")
            .and_then(|(_, page)| gauge(&page, series))
    };
    eventually(
        "the control plane reports the log's head",
        Duration::from_secs(10),
        || {
            control_gauge("portcullis_control_event_log_reachable") == Some(1.0)
                && control_gauge("portcullis_control_event_log_head").is_some_and(|v| v >= 1.0)
        },
    )
    .await;
    for _ in 0..3 {
        let _ = control.get("/api/v1/hosts");
    }
    let _ = control.get("/no/such/route-8c1f");
    let (_, page) = control.get("/metrics").expect("control-plane metrics");
    assert!(
        page.lines().any(|line| line.starts_with(
            "portcullis_control_requests_total{route=\"/api/v1/hosts\",method=\"GET\",status=\"401\"} 3"
        )),
        "{page}"
    );
    assert!(
        page.contains("route=\"unmatched\"") && !page.contains("route-8c1f"),
        "{page}"
    );
    assert!(
        page.contains("portcullis_control_request_seconds_bucket{"),
        "{page}"
    );
    drop(store);

    // NATS goes away: the data plane keeps serving until --max-staleness, then fails closed.
    nats.kill();
    let lost = Instant::now();
    let took = data.wait_readyz(503, Duration::from_secs(10));
    assert!(
        lost.elapsed() >= Duration::from_millis(500),
        "not before the bound: {took:?}"
    );
    control.wait_readyz(503, Duration::from_secs(10));
    eventually(
        "the control plane reports the log unreachable",
        Duration::from_secs(10),
        || control_gauge("portcullis_control_event_log_reachable") == Some(0.0),
    )
    .await;
    eventually(
        "the projector reports the log unreachable",
        Duration::from_secs(10),
        || projector_gauge("portcullis_event_log_reachable") == Some(0.0),
    )
    .await;
    let (_, body) = data.get("/readyz").expect("still answering");
    assert!(body.contains("no word from the store"), "{body}");
    // The MCP endpoint refuses too, with a JSON-RPC error that says why, once a request has
    // waited --stale-wait for the data to become current.
    let asked = Instant::now();
    let (status, body) = data.get("/mcp").expect("still answering");
    let held = asked.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        held >= Duration::from_secs(1) && held < Duration::from_secs(4),
        "held {held:?}, not --stale-wait 1s"
    );
    assert!(
        body.contains("-32012") && body.contains("not current"),
        "{body}"
    );

    // NATS returns: everything recovers by itself, and the replica follows new changes.
    nats.restart().await.expect("restart nats");
    data.wait_readyz(200, Duration::from_secs(30));
    control.wait_readyz(200, Duration::from_secs(30));
    let store = connect(nats.client_urls(), &namespace).await;
    let second = portcullis_proto::subjects::host("second-calm-otter-1234").unwrap();
    portcullis_commands::execute::<portcullis_domain::host::Host>(
        store.as_ref(),
        &context,
        &second,
        &portcullis_store::CommandId::parse("e2e-second-host").unwrap(),
        &portcullis_domain::host::HostCommand::Create {
            host_id: "second-calm-otter-1234".into(),
            org_id: "default".into(),
            prefix: "second".into(),
            is_default: false,
            settings: Default::default(),
        },
    )
    .await
    .expect("create a second host");
    eventually(
        "data plane follows after the outage",
        Duration::from_secs(20),
        || keys(&data) == Some(2.0),
    )
    .await;
    // Caught up again: the MCP endpoint asks for a token instead of refusing.
    eventually(
        "the MCP endpoint asks for a token again",
        Duration::from_secs(20),
        || data.get("/mcp").is_some_and(|(status, _)| status == 401),
    )
    .await;
    for process in [&mut projector, &mut control, &mut data] {
        let status = process.terminate(Duration::from_secs(15));
        assert!(status.success(), "{status}: {}", process.log_text());
    }
}

/// A JetStream server older than 2.12 (Debian's 2.9.10, which silently ignores settings the
/// store relies on) is refused at start-up with a message that says why.
#[test]
fn a_nats_server_older_than_2_12_is_refused_with_the_reason() {
    let binary = std::env::var_os("PORTCULLIS_OLD_NATS_SERVER").unwrap_or_else(|| {
        panic!(
            "PORTCULLIS_OLD_NATS_SERVER is unset: run scripts/test (ensure_old_nats_server) first"
        )
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let port = portcullis_e2e::free_addr().port();
    let mut server = std::process::Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the old nats-server");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "old nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("nats://{addr}");
    for sub in ["projector", "control-plane", "data-plane"] {
        let mut args = vec![sub, "--nats", &url, "--listen", "127.0.0.1:0"];
        if sub == "data-plane" {
            args.extend([
                "--master-key",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "--public-url",
                "http://127.0.0.1",
            ]);
        }
        let (status, stderr) = portcullis_e2e::run(&args, Duration::from_secs(20));
        assert!(!status.success(), "{sub} must refuse the old server");
        assert!(
            stderr.contains("2.9.10") && stderr.contains("2.12"),
            "{sub}: {stderr}"
        );
        assert!(
            stderr.contains("silently ignore"),
            "{sub} says why: {stderr}"
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
