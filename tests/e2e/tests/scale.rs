//! Scale-out end to end: on loopback, a 3-node NATS JetStream cluster (R3 streams and
//! buckets), two projectors and two control planes racing each other, three data planes, and
//! Debian's nginx balancing round robin in front of the data planes; MCP clients (raw
//! Streamable HTTP, as `mcp_proxy.rs` drives them) talk to `server-everything` through it.
//!
//! One test walks the phases in order, because the topology takes seconds to start and the
//! machine has two cores:
//! 1. every replica serves requests of one session, and the TypeScript SDK's client gets its
//!    SSE streams, sampling, elicitation and roots through the balancer, its answers landing
//!    on whichever replica the balancer picks;
//! 2. a revoked grant, a revoked session, a disabled tool and a capped agent are enforced by
//!    every data plane; the grant's propagation to all three is measured over many rounds;
//! 3. two control planes given the same request (one idempotency key) record it once, and
//!    concurrent grant changes through both end in the last one, with no event doubled;
//! 4. a NATS node killed under load: service continues, no call and no audit record is lost;
//! 5. a data plane killed under load: clients recover through the balancer, and every call
//!    that was answered is in the audit;
//! 6. NATS unreachable: data planes answer from cache until `--max-staleness`, then hold
//!    each request for `--stale-wait` and answer 503, and recover by themselves when NATS is
//!    back;
//! 7. both projectors down: a revocation recorded in the log but not projected makes every
//!    data plane refuse everything within `--max-staleness`; projectors back, it is enforced.
//!
//! The figures (propagation p50/p99, calls and audit records lost, recovery times) are printed
//! as `scale: …` lines; `BENCHMARKS.md` quotes them with the command that reproduces them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portcullis_commands::Context;
use portcullis_commands::control::{ControlError, IdempotencyKey};
use portcullis_e2e::gateway::{TestControl, control_over, import_upstream, now_seconds};
use portcullis_e2e::{Process, reserved_addr};
use portcullis_proto::TrustLevel;
use portcullis_store::{AuditDecision, AuditError, AuditFilter, AuditLog, EventLog};
use portcullis_store_jetstream::{JetStreamConfig, JetStreamStore};
use portcullis_tokens::PublicUrls;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_fixtures::{LoadBalancer, McpPeer, NatsCluster, unique_namespace};

const READY_WITHIN: Duration = Duration::from_secs(60);
const MASTER_KEY: &str = portcullis_e2e::gateway::TEST_MASTER_KEY;
const ADMIN_TOKEN: &str = "pcat_scale_test_admin_token_0123456789";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// Rounds of grant revocation measured.
const ROUNDS: usize = 30;
/// How long a fault phase keeps the load on.
const LOAD_FOR: Duration = Duration::from_secs(8);
/// Concurrent clients in a fault phase.
const CLIENTS: usize = 4;

fn context() -> Context {
    Context::system("e2e", "scale")
}

/// Everything the test runs.
struct Topology {
    nats: NatsCluster,
    store: Arc<JetStreamStore>,
    side: TestControl,
    server_id: String,
    projectors: Vec<Process>,
    controls: Vec<Process>,
    data: Vec<Process>,
    balancer: LoadBalancer,
    urls: PublicUrls,
    /// `<host>.localhost`, the name clients use (resolved to the balancer or a data plane).
    host_name: String,
    _upstream: McpPeer,
    dir: tempfile::TempDir,
    data_args: Vec<String>,
    projector_args: Vec<String>,
}

impl Topology {
    async fn start() -> Topology {
        // PORTCULLIS_TEST_KEEP_LOGS=1 keeps every process's log for a post-mortem.
        let keep = std::env::var_os("PORTCULLIS_TEST_KEEP_LOGS").is_some();
        let dir = tempfile::Builder::new()
            .prefix("portcullis-scale")
            .disable_cleanup(keep)
            .tempdir()
            .expect("temp dir");
        if keep {
            eprintln!("scale: process logs in {}", dir.path().display());
        }
        let nats = NatsCluster::start(3).await.expect("3-node NATS cluster");
        let namespace = unique_namespace();
        let nats_urls = nats.client_urls().join(",");
        let common: Vec<String> = [
            "--nats",
            &nats_urls,
            "--namespace",
            &namespace,
            "--replicas",
            "3",
            "--log-format",
            "json",
        ]
        .map(str::to_owned)
        .to_vec();
        // The balancer first: its address is the data planes' public URL.
        let data_addrs: Vec<SocketAddr> = (0..3).map(|_| reserved_addr()).collect();
        let balancer = LoadBalancer::start(&data_addrs).await.expect("nginx");
        let public_url = format!("http://localhost:{}", balancer.addr.port());
        let args = |sub: &str, extra: &[&str]| -> Vec<String> {
            let mut all = vec![sub.to_owned()];
            all.extend(common.iter().cloned());
            all.extend(extra.iter().map(|s| (*s).to_owned()));
            all
        };
        let start = |args: &[String], at: Option<SocketAddr>| {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            match at {
                Some(addr) => Process::start_at(&refs, dir.path(), addr),
                None => Process::start(&refs, dir.path()),
            }
        };
        let projector_args = args("projector", &[]);
        let projectors: Vec<Process> = (0..2).map(|_| start(&projector_args, None)).collect();
        let control_args = args(
            "control-plane",
            &[
                "--master-key",
                MASTER_KEY,
                "--admin-token",
                ADMIN_TOKEN,
                "--public-url",
                &public_url,
                "--allow-private-upstreams",
            ],
        );
        let controls: Vec<Process> = (0..2).map(|_| start(&control_args, None)).collect();
        let data_args = args(
            "data-plane",
            &[
                "--master-key",
                MASTER_KEY,
                "--public-url",
                &public_url,
                "--max-staleness",
                "2s",
                "--allow-private-upstreams",
            ],
        );
        let data: Vec<Process> = data_addrs
            .iter()
            .map(|addr| start(&data_args, Some(*addr)))
            .collect();
        let mut all: Vec<&mut Process> = Vec::new();
        let (mut projectors, mut controls, mut data) = (projectors, controls, data);
        all.extend(projectors.iter_mut());
        all.extend(controls.iter_mut());
        all.extend(data.iter_mut());
        for process in all {
            process.wait_ready(READY_WITHIN);
        }

        let mut config = JetStreamConfig::new(nats.client_urls());
        config.namespace = namespace.clone();
        config.replicas = 3;
        let store = Arc::new(JetStreamStore::connect(config).await.expect("connect"));
        let side = control_over(store.clone(), store.clone()).await;
        let upstream = McpPeer::server_everything()
            .await
            .expect("server-everything");
        let server = import_upstream(
            &side.control,
            &side.admin,
            &side.host_id,
            upstream.url(),
            "everything",
        )
        .await;
        for (tool, level) in [
            ("get-sum", TrustLevel::Medium),
            ("get-env", TrustLevel::High),
        ] {
            side.control
                .update_tool(
                    &side.admin,
                    &context(),
                    None,
                    &side.host_id,
                    &server.server_id,
                    tool,
                    Some(level),
                    None,
                )
                .await
                .expect("tool level");
        }
        let urls = PublicUrls {
            scheme: "http".to_owned(),
            base_domain: Some("localhost".to_owned()),
            port: Some(balancer.addr.port()),
            default_host_base: None,
        };
        let host_name = format!("{}.localhost", side.host_id);
        Topology {
            nats,
            store,
            side,
            server_id: server.server_id,
            projectors,
            controls,
            data,
            balancer,
            urls,
            host_name,
            _upstream: upstream,
            dir,
            data_args,
            projector_args,
        }
    }

    /// The MCP URL clients use (the port is the balancer's).
    fn mcp_url(&self) -> String {
        self.urls.mcp_url(&self.side.host_id, false)
    }

    /// An HTTP client that sends the host's name to `addr` (the balancer or one data plane).
    fn http_to(&self, addr: SocketAddr) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .resolve(&self.host_name, addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A human granted `grant`, and an agent's session of theirs at `level` with its token.
    async fn connect(&self, email: &str, grant: TrustLevel, level: TrustLevel) -> Connection {
        let c = &self.side.control;
        let context = context();
        let (host, side) = (&self.side.host_id, &self.side);
        let adding = IdempotencyKey::generate();
        let human_id = patiently("human", || {
            c.add_human(&side.admin, &context, Some(&adding), host, email)
        })
        .await
        .human_id;
        self.grant(&human_id, grant).await;
        let agent_id = patiently("agent", || {
            c.test_register_agent(&context, host, "scale", Some(&human_id))
        })
        .await;
        let session_id = patiently("session", || {
            c.test_start_session(&context, host, &human_id, &agent_id, &self.server_id, level)
        })
        .await;
        let (base, mcp) = (self.urls.host_base(host, false), self.mcp_url());
        let token = patiently("token", || {
            c.test_access_token(
                &side.ring,
                host,
                &session_id,
                &base,
                &mcp,
                now_seconds(),
                3600,
            )
        })
        .await;
        Connection {
            human_id,
            agent_id,
            token,
        }
    }

    async fn grant(&self, human_id: &str, level: TrustLevel) {
        let key = IdempotencyKey::generate();
        let context = context();
        patiently("grant", || {
            self.side.control.put_grant(
                &self.side.admin,
                &context,
                Some(&key),
                &self.side.host_id,
                human_id,
                &self.server_id,
                level,
            )
        })
        .await;
    }

    /// An MCP client of `connection` that talks to the data plane at `addr` itself, not
    /// through the balancer, naming the host as clients of the balancer do (its `Host`
    /// header carries the public authority, so the token's audience matches).
    fn direct_client(&self, addr: SocketAddr, connection: &Connection) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let authority = format!("{}:{}", self.host_name, self.balancer.addr.port());
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::HOST,
            reqwest::header::HeaderValue::from_str(&authority).unwrap(),
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Client::new(http, &format!("http://{addr}/mcp"), &connection.token)
    }

    /// An MCP client of `connection` through the balancer.
    fn client(&self, connection: &Connection) -> Client {
        Client::new(
            self.http_to(self.balancer.addr),
            &self.mcp_url(),
            &connection.token,
        )
    }

    /// Allowed `echo` calls recorded in the audit for `agent_id`.
    async fn audited_echoes(&self, agent_id: &str) -> Result<usize, AuditError> {
        let filter = AuditFilter {
            agent_id: Some(agent_id.to_owned()),
            tool: Some("echo".to_owned()),
            decision: Some(AuditDecision::Allowed),
            ..AuditFilter::host(&self.side.host_id)
        };
        let mut total = 0;
        let mut cursor = None;
        loop {
            let page = self.store.query(filter.clone(), 500, cursor).await?;
            total += page.records.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(total),
            }
        }
    }
}

struct Connection {
    human_id: String,
    agent_id: String,
    token: String,
}

/// One MCP session over Streamable HTTP.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
    next_id: u64,
}

/// An HTTP answer: status and the JSON-RPC message (the answer of an SSE stream).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    session: Option<String>,
    message: Value,
}

impl Answer {
    fn allowed(&self) -> bool {
        self.status == StatusCode::OK && self.message.get("result").is_some()
    }

    fn denied(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED || self.message["error"]["code"] == -32003
    }
}

impl Client {
    fn new(http: reqwest::Client, url: &str, token: &str) -> Self {
        Self {
            http,
            url: url.to_owned(),
            token: token.to_owned(),
            session: None,
            next_id: 1,
        }
    }

    async fn post(&self, body: Value) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.body(body.to_string()).send().await?;
        let status = response.status();
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let sse = response.headers().get("content-type").is_some_and(|v| {
            v.to_str()
                .unwrap_or_default()
                .starts_with("text/event-stream")
        });
        let text = response.text().await?;
        let message = if sse {
            text.lines()
                .filter_map(|line| line.strip_prefix("data: "))
                .filter_map(|data| serde_json::from_str::<Value>(data).ok())
                .find(|m| m.get("result").is_some() || m.get("error").is_some())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            session,
            message,
        })
    }

    async fn rpc(&mut self, method: &str, params: Value) -> Result<Answer, reqwest::Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// Opens a session: `Err(Some(answer))` when the gateway refused it, `Err(None)` when
    /// nothing answered.
    async fn initialize(&mut self) -> Result<Answer, Option<Answer>> {
        let answer = self
            .rpc(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "scale", "version": "1"}
                }),
            )
            .await
            .map_err(|_| None)?;
        if answer.status != StatusCode::OK {
            return Err(Some(answer));
        }
        self.session = answer.session.clone();
        let initialized = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .map_err(|_| None)?;
        if initialized.status != StatusCode::ACCEPTED {
            return Err(Some(initialized));
        }
        Ok(answer)
    }

    async fn echo(&mut self, message: &str) -> Result<Answer, reqwest::Error> {
        self.rpc(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": message}}),
        )
        .await
    }
}

/// The `p`-th percentile (0–100) of sorted `values`.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// One initialized session of `connection` on each data plane, directly (not through the
/// balancer), for probing every replica.
async fn sessions_everywhere(topology: &Topology, connection: &Connection) -> Vec<Client> {
    let through_balancer = topology.balancer.backends_used().len();
    let mut clients = Vec::new();
    for process in &topology.data {
        let mut client = topology.direct_client(process.addr, connection);
        client.initialize().await.expect("initialize");
        clients.push(client);
    }
    assert_eq!(
        topology.balancer.backends_used().len(),
        through_balancer,
        "the probes reach each data plane directly, not through the balancer"
    );
    clients
}

/// Waits until every data plane accepts `connection`'s session (a new one takes a moment to
/// reach each replica), so a load run counts only what happens after.
async fn known_everywhere(topology: &Topology, connection: &Connection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for process in &topology.data {
        loop {
            let mut client = topology.direct_client(process.addr, connection);
            // The session, the agent and the grant are separate read models, each with its
            // own watch: only an allowed call shows this data plane holds all three.
            if client.initialize().await.is_ok()
                && client
                    .echo("known")
                    .await
                    .is_ok_and(|answer| answer.allowed())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never accepted the session",
                process.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs a control operation, retrying what the service reports as transient (a store failing
/// over, read models catching up: 503, "retry with the same idempotency key") as its clients
/// are told to, for up to 30 s.
async fn patiently<T, F, Fut>(what: &str, mut operation: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ControlError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(ControlError::Unavailable(source)) if Instant::now() < deadline => {
                eprintln!("scale: {what}: unavailable ({source}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{what}: {error:?}"),
        }
    }
}

/// Calls `tool` on each of `clients` (one per data plane) over and over until every one
/// refuses it; the time from `started` until the last did.
async fn until_denied_everywhere(
    clients: &mut [Client],
    tool: &str,
    arguments: Value,
    started: Instant,
    within: Duration,
) -> Duration {
    // In turn, not all at once: concurrent probes (each allowed one writes a replicated
    // audit record) would slow the very path being measured on a 2-core machine.
    let mut pending: BTreeSet<usize> = (0..clients.len()).collect();
    while !pending.is_empty() {
        assert!(
            started.elapsed() < within,
            "data planes {pending:?} still allow {tool} after {within:?}"
        );
        for index in pending.clone() {
            let answer = clients[index]
                .rpc(
                    "tools/call",
                    json!({"name": tool, "arguments": arguments.clone()}),
                )
                .await
                .unwrap_or_else(|e| panic!("data plane {index} did not answer: {e}"));
            if !answer.allowed() {
                assert!(
                    answer.denied() || answer.message["error"].is_object(),
                    "{answer:?}"
                );
                pending.remove(&index);
            }
        }
    }
    started.elapsed()
}

/// Records when each data plane's replica applied a new revision of a read-model bucket,
/// read from its `/metrics` every 2 ms (a cheap read: no audit record, no upstream call, so
/// the probing does not slow what it measures).
struct RevisionWatch {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Sample>>>,
}

/// When a data plane's watched gauges changed, and their values then.
type Sample = (Instant, Vec<u64>);

impl RevisionWatch {
    /// Polls every data plane's `/metrics` for the gauges named by `series` (each a full
    /// series name, labels included).
    fn start(addrs: &[SocketAddr], series: &[String]) -> RevisionWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let prefixes: Vec<String> = series.iter().map(|name| format!("{name} ")).collect();
        let threads = addrs
            .iter()
            .map(|addr| {
                let (addr, stop, prefixes) = (*addr, stop.clone(), prefixes.clone());
                std::thread::spawn(move || {
                    let mut seen: Vec<Sample> = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        let values =
                            portcullis_e2e::http_get(addr, "/metrics").and_then(|(_, page)| {
                                prefixes
                                    .iter()
                                    .map(|prefix| {
                                        page.lines()
                                            .find_map(|line| line.strip_prefix(prefix.as_str()))
                                            .and_then(|value| value.trim().parse::<u64>().ok())
                                    })
                                    .collect::<Option<Vec<u64>>>()
                            });
                        if let Some(values) = values
                            && seen.last().is_none_or(|(_, last)| *last != values)
                        {
                            seen.push((Instant::now(), values));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    seen
                })
            })
            .collect();
        RevisionWatch { stop, threads }
    }

    /// Stops watching; for each data plane, when each series first reached its target.
    fn finish(self, targets: &[u64]) -> Vec<Vec<Option<Instant>>> {
        self.stop.store(true, Ordering::Release);
        self.threads
            .into_iter()
            .map(|thread| {
                let seen = thread.join().expect("watch thread");
                targets
                    .iter()
                    .enumerate()
                    .map(|(n, target)| {
                        seen.iter()
                            .find(|(_, values)| values[n] >= *target)
                            .map(|(at, _)| *at)
                    })
                    .collect()
            })
            .collect()
    }
}

/// Runs `change` and, at the same time, probes every data plane with `tool` until all refuse
/// it: the time from the change's start until the last refused, and until `change` returned.
async fn propagation<F: std::future::Future<Output = ()>>(
    clients: &mut [Client],
    tool: &str,
    arguments: Value,
    change: F,
) -> (Duration, Duration) {
    let started = Instant::now();
    let (returned, took) = tokio::join!(
        async {
            change.await;
            started.elapsed()
        },
        until_denied_everywhere(clients, tool, arguments, started, Duration::from_secs(10))
    );
    (took, returned)
}

/// The gist of a JSON-RPC error's message, for tallying: its text up to the first digit or
/// parenthesis (durations and ids vary from call to call).
fn reason(message: &Value) -> String {
    message["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take_while(|c| !c.is_ascii_digit() && *c != '(')
        .take(70)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// What a load run saw.
#[derive(Debug, Default)]
struct LoadResult {
    /// Calls answered with a result.
    answered: u64,
    /// Calls not answered with a result, by reason.
    failures: std::collections::BTreeMap<String, u64>,
    /// Every call's end, and whether it was answered.
    timeline: Vec<(Instant, bool)>,
    /// The slowest call.
    slowest: Duration,
}

impl LoadResult {
    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn answered_after(&self, at: Instant) -> usize {
        self.timeline
            .iter()
            .filter(|(when, ok)| *when > at && *ok)
            .count()
    }
}

/// Runs `clients` calling `echo` through the balancer until `stop`; counts the calls
/// answered with a result and those that were not (errors, 5xx, refused connections).
async fn load(clients: Vec<Client>, stop: Arc<AtomicBool>) -> LoadResult {
    let result = Arc::new(std::sync::Mutex::new(LoadResult::default()));
    let mut tasks = Vec::new();
    for (n, mut client) in clients.into_iter().enumerate() {
        let (stop, result) = (stop.clone(), result.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let outcome = if client.session.is_none() {
                    match client.initialize().await {
                        Ok(_) => continue,
                        Err(Some(answer)) => Err(format!(
                            "initialize: HTTP {} {}",
                            answer.status.as_u16(),
                            reason(&answer.message)
                        )),
                        Err(None) => Err("initialize: no answer".to_owned()),
                    }
                } else {
                    i += 1;
                    match client.echo(&format!("load-{n}-{i}")).await {
                        Ok(answer) if answer.allowed() => Ok(()),
                        Ok(answer) => {
                            // A refused session handle means: start a new session.
                            if answer.status == StatusCode::NOT_FOUND {
                                client.session = None;
                            }
                            Err(format!(
                                "HTTP {} JSON-RPC {} {}",
                                answer.status.as_u16(),
                                answer.message["error"]["code"],
                                reason(&answer.message)
                            ))
                        }
                        Err(error) if error.is_timeout() => Err("timed out".to_owned()),
                        // nginx could not be reached at all.
                        Err(error) if error.is_connect() => Err("connection failed".to_owned()),
                        // nginx dropped the connection mid-answer: the data plane serving the
                        // call died after nginx had begun relaying its answer.
                        Err(_) => Err("answer cut off".to_owned()),
                    }
                };
                let took = began.elapsed();
                let ok = outcome.is_ok();
                {
                    let mut result = result.lock().unwrap();
                    result.slowest = result.slowest.max(took);
                    result.timeline.push((Instant::now(), ok));
                    match outcome {
                        Ok(()) => result.answered += 1,
                        Err(reason) => *result.failures.entry(reason).or_default() += 1,
                    }
                }
                if !ok {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("load task");
    }
    std::mem::take(&mut *result.lock().unwrap())
}

/// From `fault`, how long until calls succeeded again without a failure for a whole second
/// (zero if none failed after it).
fn recovery(timeline: &[(Instant, bool)], fault: Instant) -> Duration {
    let last_failure = timeline
        .iter()
        .filter(|(at, ok)| *at >= fault && !ok)
        .map(|(at, _)| *at)
        .max();
    last_failure.map_or(Duration::ZERO, |at| at.duration_since(fault))
}

/// Waits until the audit holds at least `expected` allowed echoes of `agent_id` (records are
/// durable before the call is forwarded; this only waits for the store's index).
async fn audited_at_least(topology: &Topology, agent_id: &str, expected: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The audit stream may be electing a leader after a fault: a transient refusal is
        // asked again, as a reader of the audit would.
        match topology.audited_echoes(agent_id).await {
            Ok(audited) if audited as u64 >= expected || Instant::now() > deadline => {
                return audited as u64;
            }
            Ok(_) => {}
            Err(error @ AuditError::Unavailable { .. }) if Instant::now() < deadline => {
                eprintln!("scale: audit query: {error}; retrying");
            }
            Err(error) => panic!("audit query: {error:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_behind_a_load_balancer_serves_enforces_and_survives_faults() {
    let mut topology = Topology::start().await;

    // 1. Every replica serves requests of one session.
    let ada = topology
        .connect("ada@example.com", TrustLevel::High, TrustLevel::Medium)
        .await;
    let mut client = topology.client(&ada);
    client.initialize().await.expect("initialize");
    let before = topology.balancer.backends_used().len();
    for n in 0..12 {
        let answer = client.echo(&format!("hop {n}")).await.expect("echo");
        assert!(answer.allowed(), "{answer:?}");
        assert!(answer.message.to_string().contains(&format!("hop {n}")));
    }
    let denied = client
        .rpc("tools/call", json!({"name": "get-env", "arguments": {}}))
        .await
        .expect("get-env");
    assert_eq!(denied.message["error"]["code"], -32003, "{denied:?}");
    let used: BTreeSet<String> = topology.balancer.backends_used()[before..]
        .iter()
        .cloned()
        .collect();
    let expected: BTreeSet<String> = topology
        .data
        .iter()
        .map(|process| process.addr.to_string())
        .collect();
    assert_eq!(
        used, expected,
        "one session's requests reached every data plane"
    );

    // An SDK client (sampling, elicitation, roots, progress) through a balancer listener
    // that names the host itself: its SSE streams and its answers to the server's requests
    // land on whichever replica the balancer picks.
    let host_header = format!("{}:{}", topology.host_name, topology.balancer.addr.port());
    let data_addrs: Vec<SocketAddr> = topology.data.iter().map(|p| p.addr).collect();
    let named = LoadBalancer::start_with_host(&data_addrs, Some(&host_header))
        .await
        .expect("nginx for the SDK client");
    let katherine = topology
        .connect(
            "katherine@example.com",
            TrustLevel::High,
            TrustLevel::Medium,
        )
        .await;
    known_everywhere(&topology, &katherine).await;
    let url = format!("{}/mcp", named.url());
    let output = portcullis_e2e::sdk_client::run(&url, &katherine.token, &url).await;
    assert!(output.get("error").is_none(), "{output:#}");
    let elicitation = output["elicitation"].as_str().unwrap_or_default();
    assert!(
        elicitation.contains("accept") && elicitation.contains("Ada Lovelace"),
        "{output:#}"
    );
    assert!(
        output["sampling"]
            .as_str()
            .unwrap_or_default()
            .contains("hello gateway"),
        "{output:#}"
    );
    assert!(output["progress"].as_u64().unwrap_or(0) >= 3, "{output:#}");
    assert_eq!(output["denied"]["code"], -32003, "{output:#}");
    let served: BTreeSet<String> = named.backends_used().into_iter().collect();
    assert_eq!(
        served, expected,
        "the SDK client's requests reached every data plane"
    );
    drop(named);

    // 2. Revocations reach every data plane. The grant, measured over many rounds: until
    // every replica holds the revocation (from then on it decides with it), and until a call
    // through each is refused.
    let mut times = Vec::new();
    let mut returns = Vec::new();
    let mut applied = Vec::new();
    let mut known = Vec::new();
    let grants = portcullis_store::Bucket::new("grants").unwrap();
    let watched = [
        "portcullis_read_model_revision{bucket=\"grants\"}".to_owned(),
        "portcullis_policy_log_sequence".to_owned(),
    ];
    let data_addrs: Vec<SocketAddr> = topology.data.iter().map(|p| p.addr).collect();
    for round in 0..ROUNDS {
        let connection = topology
            .connect(
                &format!("round{round}@example.com"),
                TrustLevel::High,
                TrustLevel::Low,
            )
            .await;
        let mut clients = sessions_everywhere(&topology, &connection).await;
        let watch = RevisionWatch::start(&data_addrs, &watched);
        let round_started = Instant::now();
        let (took, returned) =
            propagation(&mut clients, "echo", json!({"message": "probe"}), async {
                topology
                    .side
                    .control
                    .delete_grant(
                        &topology.side.admin,
                        &context(),
                        None,
                        &topology.side.host_id,
                        &connection.human_id,
                        &topology.server_id,
                    )
                    .await
                    .expect("revoke grant");
            })
            .await;
        times.push(took);
        returns.push(returned);
        let target =
            portcullis_store::ReadModelStore::last_revision(topology.store.as_ref(), &grants)
                .await
                .expect("grants revision");
        // The revocation is the log's last event (nothing else writes meanwhile).
        let recorded = topology.store.head().await.expect("log head");
        let reached = watch.finish(&[target, recorded]);
        let latest = |series: usize, what: &str| {
            reached
                .iter()
                .map(|at| {
                    at[series]
                        .unwrap_or_else(|| panic!("a data plane never {what}"))
                        .saturating_duration_since(round_started)
                })
                .max()
                .expect("three data planes")
        };
        applied.push(latest(0, "applied the revocation"));
        known.push(latest(1, "read the revocation from the log"));
    }
    times.sort();
    returns.sort();
    applied.sort();
    known.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "scale: grant revocation enforced by all 3 data planes in p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {ROUNDS} rounds (the admin's command returned in p50 {:.1} ms, p99 {:.1} ms)",
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99)),
        ms(times[times.len() - 1]),
        ms(percentile(&returns, 50)),
        ms(percentile(&returns, 99)),
    );
    eprintln!(
        "scale: grant revocation held by all 3 replicas in p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {ROUNDS} rounds",
        ms(percentile(&applied, 50)),
        ms(percentile(&applied, 99)),
        ms(applied[applied.len() - 1]),
    );
    eprintln!(
        "scale: grant revocation read from the log by all 3 data planes (no call allowed from then on) in p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {ROUNDS} rounds",
        ms(percentile(&known, 50)),
        ms(percentile(&known, 99)),
        ms(known[known.len() - 1]),
    );
    // The other kinds, once each, every data plane.
    let c = topology.side.control.clone();
    let (admin, host) = (topology.side.admin.clone(), topology.side.host_id.clone());
    let session = topology
        .connect("session@example.com", TrustLevel::High, TrustLevel::Low)
        .await;
    let mut clients = sessions_everywhere(&topology, &session).await;
    let (took, _) = propagation(&mut clients, "echo", json!({"message": "probe"}), async {
        c.revoke_agent_server(
            &admin,
            &context(),
            None,
            &host,
            &session.agent_id,
            &topology.server_id,
        )
        .await
        .expect("revoke the agent's session");
    })
    .await;
    eprintln!(
        "scale: a revoked session was refused by all 3 data planes in {:.1} ms",
        ms(took)
    );

    // Capped at Low: get-sum (medium) is refused everywhere, echo (low) still served.
    let capped = topology
        .connect("capped@example.com", TrustLevel::High, TrustLevel::Medium)
        .await;
    let mut clients = sessions_everywhere(&topology, &capped).await;
    let (took, _) = propagation(&mut clients, "get-sum", json!({"a": 1, "b": 2}), async {
        c.put_agent_cap(
            &admin,
            &context(),
            None,
            &host,
            &capped.agent_id,
            &topology.server_id,
            TrustLevel::Low,
        )
        .await
        .expect("cap");
    })
    .await;
    for client in &mut clients {
        assert!(client.echo("still low").await.expect("echo").allowed());
    }
    eprintln!(
        "scale: an agent cap was enforced by all 3 data planes in {:.1} ms",
        ms(took)
    );

    let mut clients = sessions_everywhere(&topology, &ada).await;
    let (took, _) = propagation(&mut clients, "echo", json!({"message": "probe"}), async {
        c.update_tool(
            &admin,
            &context(),
            None,
            &host,
            &topology.server_id,
            "echo",
            None,
            Some(false),
        )
        .await
        .expect("disable echo");
    })
    .await;
    eprintln!(
        "scale: a disabled tool was refused by all 3 data planes in {:.1} ms",
        ms(took)
    );
    c.update_tool(
        &admin,
        &context(),
        None,
        &host,
        &topology.server_id,
        "echo",
        None,
        Some(true),
    )
    .await
    .expect("enable echo");

    // 3. Two control planes: one request sent to both with one idempotency key is recorded
    //    once; concurrent grant changes through both leave the last one and no doubled event.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let add = |process: &Process| {
        http.post(format!(
            "http://{}/api/v1/hosts/{host}/humans",
            process.addr
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", "scale-add-grace")
        .json(&json!({"email": "grace@example.com"}))
        .send()
    };
    let (first, second) = tokio::join!(add(&topology.controls[0]), add(&topology.controls[1]));
    let mut answers = Vec::new();
    for answer in [first, second] {
        let answer = answer.expect("add human");
        answers.push((
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        ));
    }
    assert!(
        answers.iter().all(|(s, _)| *s == 201 || *s == 200),
        "{answers:?}"
    );
    let ids: Vec<Value> = answers
        .iter()
        .map(|(_, body)| serde_json::from_str::<Value>(body).unwrap()["id"].clone())
        .collect();
    assert_eq!(
        ids[0], ids[1],
        "both replicas answer with the one human: {answers:?}"
    );
    let humans = c.list_humans(&admin, &host).await.expect("humans");
    assert_eq!(
        humans
            .iter()
            .filter(|h| h.email == "grace@example.com")
            .count(),
        1,
        "one human, not two"
    );
    let grace = humans
        .iter()
        .find(|h| h.email == "grace@example.com")
        .unwrap()
        .human_id
        .clone();
    // Pairs of writes race, one through each control plane; the pairs follow each other.
    let put = |process: &Process, level: &str| {
        http.put(format!(
            "http://{}/api/v1/hosts/{host}/humans/grace@example.com/grants/everything",
            process.addr
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"max_trust_level": level}))
        .send()
    };
    for (a, b) in [
        ("low", "medium"),
        ("high", "medium"),
        ("low", "high"),
        ("low", "medium"),
    ] {
        let (first, second) =
            tokio::join!(put(&topology.controls[0], a), put(&topology.controls[1], b));
        for answer in [first, second] {
            let status = answer.expect("grant write").status().as_u16();
            assert!(status == 200 || status == 201, "{status}");
        }
    }
    let grant_subject =
        portcullis_proto::subjects::grant(&host, &grace, &topology.server_id).unwrap();
    let history = topology
        .store
        .load(&grant_subject)
        .await
        .expect("grant history");
    let mut previous: Option<i32> = None;
    for record in &history.events {
        let event = portcullis_proto::decode_event(record).expect("decodes");
        let level = match event.body {
            Some(portcullis_proto::events::v1::event::Body::GrantIssued(e)) => e.max_trust_level,
            Some(portcullis_proto::events::v1::event::Body::GrantChanged(e)) => e.max_trust_level,
            other => panic!("unexpected {other:?}"),
        };
        assert_ne!(
            previous,
            Some(level),
            "an event that changes nothing was recorded"
        );
        previous = Some(level);
    }
    let grant = c
        .get_grant(&admin, &host, &grace, &topology.server_id)
        .await
        .expect("grant");
    assert_eq!(
        Some(i32::from(grant.max_trust_level)),
        previous,
        "the read model holds the last recorded level"
    );

    // 4. A NATS node killed under load.
    let worker = topology
        .connect("load@example.com", TrustLevel::High, TrustLevel::Low)
        .await;
    known_everywhere(&topology, &worker).await;
    let stop = Arc::new(AtomicBool::new(false));
    let fault_at = Arc::new(std::sync::Mutex::new(None));
    let clients = (0..CLIENTS).map(|_| topology.client(&worker)).collect();
    let (result, ()) = tokio::join!(load(clients, stop.clone()), async {
        tokio::time::sleep(LOAD_FOR / 3).await;
        *fault_at.lock().unwrap() = Some(Instant::now());
        topology.nats.kill_node(0);
        tokio::time::sleep(LOAD_FOR * 2 / 3).await;
        stop.store(true, Ordering::Relaxed);
    });
    let fault = fault_at.lock().unwrap().unwrap();
    let after = result.answered_after(fault);
    let answered = result.answered;
    let audited = audited_at_least(&topology, &worker.agent_id, answered).await;
    eprintln!(
        "scale: NATS node killed under load: {answered} calls answered ({after} after it), {} failed ({:?}), slowest call {:.0} ms, last failure {:.0} ms after it; audit records lost: {}",
        result.failed(),
        result.failures,
        result.slowest.as_secs_f64() * 1e3,
        recovery(&result.timeline, fault).as_secs_f64() * 1e3,
        answered.saturating_sub(audited)
    );
    assert!(after > 0, "service continued after the node died");
    // Through the election a call waits (for current policy data, for its audit record's new
    // leader); it is not refused.
    assert_eq!(
        result.failed(),
        0,
        "no call is lost to a NATS node's death: {:?}",
        result.failures
    );
    assert!(
        audited >= answered,
        "every answered call is audited: {audited} < {answered}"
    );
    topology
        .nats
        .start_stopped_nodes()
        .await
        .expect("node back");

    // 5. A data plane killed under load.
    let worker = topology
        .connect("load2@example.com", TrustLevel::High, TrustLevel::Low)
        .await;
    known_everywhere(&topology, &worker).await;
    let stop = Arc::new(AtomicBool::new(false));
    let killed_addr = topology.data[2].addr;
    let clients = (0..CLIENTS).map(|_| topology.client(&worker)).collect();
    let (result, ()) = tokio::join!(load(clients, stop.clone()), async {
        tokio::time::sleep(LOAD_FOR / 3).await;
        *fault_at.lock().unwrap() = Some(Instant::now());
        topology.data[2].kill();
        tokio::time::sleep(LOAD_FOR * 2 / 3).await;
        stop.store(true, Ordering::Relaxed);
    });
    let fault = fault_at.lock().unwrap().unwrap();
    let after = result.answered_after(fault);
    let answered = result.answered;
    let audited = audited_at_least(&topology, &worker.agent_id, answered).await;
    eprintln!(
        "scale: data plane killed under load: {answered} calls answered ({after} after it), {} failed ({:?}), slowest call {:.0} ms, last failure {:.0} ms after it; audit records lost: {}",
        result.failed(),
        result.failures,
        result.slowest.as_secs_f64() * 1e3,
        recovery(&result.timeline, fault).as_secs_f64() * 1e3,
        answered.saturating_sub(audited)
    );
    assert!(after > 0, "clients recovered through the balancer");
    // Only calls in flight on the killed process fail: nginx answers 502 for them, or cuts
    // off an answer it had begun relaying. Each client has at most one call in flight.
    assert!(
        result
            .failures
            .keys()
            .all(|failure| failure.starts_with("HTTP 502") || failure == "answer cut off"),
        "only calls in flight on the killed data plane fail: {:?}",
        result.failures
    );
    assert!(
        result.failed() <= CLIENTS as u64,
        "at most one call in flight per client fails: {:?}",
        result.failures
    );
    assert!(
        audited >= answered,
        "every answered call is audited: {audited} < {answered}"
    );
    let args: Vec<&str> = topology.data_args.iter().map(String::as_str).collect();
    topology.data[2] = Process::start_at(&args, topology.dir.path(), killed_addr);
    topology.data[2].wait_ready(READY_WITHIN);

    // 6. NATS unreachable: cached answers until --max-staleness, then 503, then recovery.
    let mut probe = topology.client(&ada);
    probe.initialize().await.expect("initialize");
    topology.nats.kill();
    let lost = Instant::now();
    for process in &topology.data {
        process.wait_readyz(503, Duration::from_secs(15));
    }
    let unready = lost.elapsed();
    assert!(
        unready >= Duration::from_millis(500),
        "not before the staleness bound"
    );
    let asked = Instant::now();
    let refused = probe.echo("while NATS is down").await.expect("answer");
    let held = asked.elapsed();
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(
        held >= Duration::from_secs(9),
        "a call is held for --stale-wait (10 s) before it is refused: {held:?}"
    );
    topology.nats.spawn_stopped_nodes().expect("NATS back");
    let back = Instant::now();
    for process in &topology.data {
        process.wait_readyz(200, Duration::from_secs(60));
    }
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(60) {
        if probe
            .echo("after")
            .await
            .is_ok_and(|answer| answer.allowed())
        {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("calls work again after NATS returns");
    eprintln!(
        "scale: NATS unreachable: data planes unready after {:.1} s; a call then was held {:.1} s (--stale-wait) and refused; served again {:.1} s after NATS returned",
        unready.as_secs_f64(),
        held.as_secs_f64(),
        recovered.as_secs_f64()
    );

    // 7. Both projectors down: a revocation recorded in the log cannot reach the read models,
    //    so within --max-staleness every data plane refuses everything; projectors back,
    //    the revocation is enforced and the rest is served again.
    // The test's own connection to NATS recovers on its own schedule.
    let deadline = Instant::now() + Duration::from_secs(60);
    while topology
        .side
        .control
        .list_humans(&topology.side.admin, &topology.side.host_id)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the control service never answered again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let eve = topology
        .connect("eve@example.com", TrustLevel::High, TrustLevel::Low)
        .await;
    known_everywhere(&topology, &eve).await;
    let mut eve_client = topology.client(&eve);
    eve_client.initialize().await.expect("initialize");
    let mut ada_client = topology.client(&ada);
    ada_client.initialize().await.expect("initialize");
    for projector in &mut topology.projectors {
        projector.kill();
    }
    let revoked_at = Instant::now();
    // The write is recorded; without a projector the command cannot see it projected.
    let revoke = topology
        .side
        .control
        .delete_grant(
            &topology.side.admin,
            &context(),
            None,
            &topology.side.host_id,
            &eve.human_id,
            &topology.server_id,
        )
        .await;
    assert!(revoke.is_err(), "no projector, so the write cannot settle");
    for process in &topology.data {
        process.wait_readyz(503, Duration::from_secs(15));
    }
    let unready = revoked_at.elapsed();
    let refused = eve_client
        .echo("after the revocation")
        .await
        .expect("answer");
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    let (_, body) = topology.data[0].get("/readyz").expect("readyz");
    assert!(body.contains("behind the event log"), "{body}");
    eprintln!(
        "scale: projectors down: every data plane stale (refusing after --stale-wait) by {:.1} s after the unprojected revocation (the revoke command gave up after 5 s)",
        unready.as_secs_f64()
    );
    let args: Vec<&str> = topology.projector_args.iter().map(String::as_str).collect();
    for n in 0..topology.projectors.len() {
        topology.projectors[n] = Process::start(&args, topology.dir.path());
        topology.projectors[n].wait_ready(READY_WITHIN);
    }
    for process in &topology.data {
        process.wait_readyz(200, Duration::from_secs(30));
    }
    let denied = eve_client.echo("revoked").await.expect("answer");
    assert_eq!(denied.message["error"]["code"], -32003, "{denied:?}");
    assert!(
        ada_client
            .echo("still granted")
            .await
            .expect("answer")
            .allowed()
    );

    for process in topology
        .projectors
        .iter_mut()
        .chain(topology.controls.iter_mut())
        .chain(topology.data.iter_mut())
    {
        let status = process.terminate(Duration::from_secs(15));
        assert!(status.success(), "{status}: {}", process.log_text());
    }
}
