//! The two load shapes of the proxy benchmark, both over a fixed set of MCP connections.
//!
//! Fixed rate (open loop): a pacer thread releases one `tools/call` every `1/rate` seconds
//! whatever the answers do, and an idle connection takes it; latency runs from the call's
//! *intended* send time, so a stall delays and counts every call scheduled behind it
//! (coordinated omission corrected, as wrk2 does). The pacer, and the connections of this
//! phase (on a runtime of their own, one thread), ask for real-time priority, so that on a
//! busy machine the harness's own scheduling delays stay out of the figures as far as it can
//! manage; they use a few percent of a core at 1,000 calls/s (and stay at normal priority
//! above `REALTIME_MAX_RATE`).
//!
//! Saturation (closed loop): every connection calls back to back on the harness's ordinary
//! runtime; the result is completed calls per second.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::mcp_client::McpConnection;
use super::target::{CpuUse, Target};

/// Failed calls by kind (`CallError::label`).
pub type Errors = BTreeMap<String, u64>;

/// Latencies in nanoseconds, 1 ns to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What the fixed-rate phase measured.
#[derive(Debug)]
pub struct FixedRate {
    /// Successful calls: answer received − intended send time.
    pub latency: Histogram<u64>,
    /// Every call: actual send − intended send (the harness's own delay plus any wait for a
    /// free connection).
    pub lag: Histogram<u64>,
    /// Every call: release by the pacer − intended send (the part of `lag` that is the pacer
    /// thread waking late).
    pub pacer_lag: Histogram<u64>,
    /// Whether the pacer and the connections' thread got real-time priority (needs root or
    /// CAP_SYS_NICE).
    pub realtime: bool,
    pub ok: u64,
    pub errors: Errors,
    /// From the first intended send until the last answer.
    pub elapsed: Duration,
    /// CPU time the target (and its store) used over the measured calls.
    pub cpu: CpuUse,
}

/// What the saturation phase measured.
#[derive(Debug)]
pub struct Saturation {
    /// Successful calls, send → answer.
    pub latency: Histogram<u64>,
    pub ok: u64,
    pub errors: Errors,
    /// From the start until the last connection finished its last call.
    pub elapsed: Duration,
    /// CPU time the target (and its store) used over the measured calls; set by the caller,
    /// which knows the target.
    pub cpu: CpuUse,
}

impl FixedRate {
    /// Adds another round's results (the report merges rounds of one target).
    pub fn merge(&mut self, other: FixedRate) {
        self.latency.add(other.latency).expect("same bounds");
        self.lag.add(other.lag).expect("same bounds");
        self.pacer_lag.add(other.pacer_lag).expect("same bounds");
        self.realtime &= other.realtime;
        self.ok += other.ok;
        merge_errors(&mut self.errors, other.errors);
        self.elapsed += other.elapsed;
        self.cpu.merge(other.cpu);
    }
}

impl Saturation {
    /// Adds another round's results (the report merges rounds of one target).
    pub fn merge(&mut self, other: Saturation) {
        self.latency.add(other.latency).expect("same bounds");
        self.ok += other.ok;
        merge_errors(&mut self.errors, other.errors);
        self.elapsed += other.elapsed;
        self.cpu.merge(other.cpu);
    }

    /// Successful calls per second.
    pub fn calls_per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens `n` connections to the target, each with its own MCP session.
pub async fn open(target: &Target, n: usize) -> anyhow::Result<Vec<McpConnection>> {
    anyhow::ensure!(n > 0, "at least one connection is needed");
    futures::future::try_join_all(
        (0..n).map(|_| McpConnection::open(target.endpoint.clone(), &target.tool)),
    )
    .await
}

/// Ends every session.
pub async fn close(connections: Vec<McpConnection>) {
    futures::future::join_all(connections.into_iter().map(McpConnection::close)).await;
}

/// Per-connection counts, merged at the end.
struct Tally {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    ok: u64,
    errors: Errors,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: histogram(),
            lag: histogram(),
            ok: 0,
            errors: Errors::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency.add(other.latency).expect("same bounds");
        self.lag.add(other.lag).expect("same bounds");
        self.ok += other.ok;
        merge_errors(&mut self.errors, other.errors);
    }
}

fn merge_errors(into: &mut Errors, from: Errors) {
    for (kind, n) in from {
        *into.entry(kind).or_default() += n;
    }
}

/// Above this rate the fixed-rate phase's threads stay at normal priority: a real-time thread
/// kept busy would take a core from the targets it measures.
const REALTIME_MAX_RATE: u32 = 5_000;

/// The whole fixed-rate phase against `target` on a thread and runtime of its own: opens
/// `connections` connections there (so their I/O runs on that thread too), runs `warmup`
/// unmeasured, then `duration` measured, and closes them.
pub async fn fixed_rate_phase(
    target: Target,
    connections: usize,
    rate: u32,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<FixedRate> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-fixed-rate".to_owned())
        .spawn(move || {
            let realtime = prioritize_this_thread(rate <= REALTIME_MAX_RATE);
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let mut open_connections = open(&target, connections).await?;
                        if !warmup.is_zero() {
                            open_connections = fixed_rate(open_connections, rate, warmup).await?.1;
                        }
                        let before = target.cpu_use()?;
                        let (mut measured, open_connections) =
                            fixed_rate(open_connections, rate, duration).await?;
                        measured.cpu = target.cpu_use()?.since(before);
                        close(open_connections).await;
                        measured.realtime &= realtime;
                        Ok(measured)
                    })
                });
            let _ = done.send(outcome);
        })?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("the fixed-rate thread panicked"))?
}

/// `rate` calls per second for `duration`, open loop, over `connections`; gives the
/// connections back for the next phase.
async fn fixed_rate(
    connections: Vec<McpConnection>,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<(FixedRate, Vec<McpConnection>)> {
    anyhow::ensure!(rate > 0, "--rate must be positive");
    let (release, released) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    // Idle connections queue on this lock (tokio's Mutex is FIFO); the one holding it takes
    // the next released call, so calls go to whichever connection is free.
    let released = Arc::new(tokio::sync::Mutex::new(released));
    // Give every connection time to start waiting before the first call is due.
    let start = Instant::now() + Duration::from_millis(50);
    let mut workers = Vec::with_capacity(connections.len());
    for mut connection in connections {
        let released = released.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let next = released.lock().await.recv().await;
                let Some(intended) = next else { break };
                let sent = Instant::now();
                let outcome = connection.call_tool().await;
                let done = Instant::now();
                tally
                    .lag
                    .saturating_record(nanos(sent.saturating_duration_since(intended)));
                match outcome {
                    Ok(()) => {
                        tally.ok += 1;
                        tally
                            .latency
                            .saturating_record(nanos(done.saturating_duration_since(intended)));
                    }
                    Err(e) => *tally.errors.entry(e.label()).or_default() += 1,
                }
            }
            (tally, connection)
        }));
    }
    let calls = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".to_owned())
        .spawn(move || {
            let realtime = prioritize_this_thread(rate <= REALTIME_MAX_RATE);
            (pace(start, rate, calls, release), realtime)
        })?;

    let mut total = Tally::new();
    let mut connections = Vec::with_capacity(workers.len());
    for worker in workers {
        let (tally, connection) = worker.await?;
        total.merge(tally);
        connections.push(connection);
    }
    let elapsed = start.elapsed();
    // The pacer has returned: the workers end only once it dropped its sender.
    let (pacer_lag, realtime) = pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    Ok((
        FixedRate {
            latency: total.latency,
            lag: total.lag,
            pacer_lag,
            realtime,
            ok: total.ok,
            errors: total.errors,
            elapsed,
            cpu: CpuUse::default(),
        },
        connections,
    ))
}

/// Releases call `i` at `start + i / rate`, sleeping on an OS thread in between: tokio's
/// timer ticks in whole milliseconds, which would add up to a millisecond to every
/// sub-millisecond latency measured from the intended time. A late pacer releases the
/// overdue calls at once, with their intended times, so lateness is never hidden. Returns how
/// late each release was.
fn pace(
    start: Instant,
    rate: u32,
    calls: u64,
    release: tokio::sync::mpsc::UnboundedSender<Instant>,
) -> Histogram<u64> {
    let mut lateness = histogram();
    let rate = u128::from(rate);
    for i in 0..calls {
        let offset = u64::try_from(u128::from(i) * 1_000_000_000 / rate).unwrap_or(u64::MAX);
        let intended = start + Duration::from_nanos(offset);
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        lateness.saturating_record(nanos(Instant::now().saturating_duration_since(intended)));
        if release.send(intended).is_err() {
            break;
        }
    }
    lateness
}

/// Lowers this thread's timer slack from Linux's default 50 µs to 1 ns, so its sleeps end
/// when asked, and, if `realtime`, asks for the lowest real-time priority (SCHED_FIFO 1), so a
/// busy machine does not keep it waiting for a core; returns whether that was granted. Best
/// effort: without either the harness is a little later, and says so in `lag`. The threads
/// that ask sleep most of the time (see `REALTIME_MAX_RATE`), and the kernel's real-time
/// throttling bounds them regardless.
// The workspace denies unsafe code; prctl and sched_setscheduler have no safe wrappers.
#[allow(unsafe_code)]
fn prioritize_this_thread(realtime: bool) -> bool {
    // SAFETY: PR_SET_TIMERSLACK takes one integer and touches no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    if !realtime {
        return false;
    }
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is this thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Every connection calls back to back for `duration`; gives the connections back.
pub async fn saturation(
    connections: Vec<McpConnection>,
    duration: Duration,
) -> anyhow::Result<(Saturation, Vec<McpConnection>)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(connections.len());
    for mut connection in connections {
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                match connection.call_tool().await {
                    Ok(()) => {
                        tally.ok += 1;
                        tally.latency.saturating_record(nanos(sent.elapsed()));
                    }
                    Err(e) => *tally.errors.entry(e.label()).or_default() += 1,
                }
            }
            (tally, connection)
        }));
    }
    let mut total = Tally::new();
    let mut connections = Vec::with_capacity(workers.len());
    for worker in workers {
        let (tally, connection) = worker.await?;
        total.merge(tally);
        connections.push(connection);
    }
    Ok((
        Saturation {
            latency: total.latency,
            ok: total.ok,
            errors: total.errors,
            elapsed: start.elapsed(),
            cpu: CpuUse::default(),
        },
        connections,
    ))
}
