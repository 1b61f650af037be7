//! What the proxy benchmark sends load to. A `Target` is a name, an MCP endpoint (a loopback
//! URL plus extra headers such as `Authorization`), the tool to call, and the processes whose
//! memory the report shows. Targets do not know who started their processes: the harness
//! (bench-upstream, nginx) or someone else (a gateway given by `--gateway-url`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::header::{HeaderName, HeaderValue};

/// One system under measurement.
#[derive(Clone, Debug)]
pub struct Target {
    /// Row name in the report, e.g. `direct` or `nginx`.
    pub name: String,
    /// Where MCP requests go.
    pub endpoint: Arc<Endpoint>,
    /// The tool every `tools/call` names (a gateway may expose the upstream's tools renamed).
    pub tool: String,
    /// Processes whose memory and CPU time (with all their descendants) are this target's;
    /// empty when unknown, and then the report says so.
    pub pids: Vec<u32>,
    /// Processes the target relies on besides its own, whose CPU time the report shows apart:
    /// a data plane's nats-servers and projector. Empty for the rest.
    pub store_pids: Vec<u32>,
}

impl Target {
    /// CPU time used so far by the target's processes and by its store's.
    pub fn cpu_use(&self) -> anyhow::Result<CpuUse> {
        Ok(CpuUse {
            own: cpu_time(&self.pids)?,
            store: cpu_time(&self.store_pids)?.total(),
        })
    }
}

/// CPU time of a target's processes (user and kernel apart) and of its store's (user +
/// kernel), read at one moment or summed over a measured phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub own: CpuTime,
    pub store: Duration,
}

impl CpuUse {
    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: CpuUse) -> CpuUse {
        CpuUse {
            own: self.own.since(earlier.own),
            store: self.store.saturating_sub(earlier.store),
        }
    }

    /// Adds another round's use (the report merges rounds of one target).
    pub fn merge(&mut self, other: CpuUse) {
        self.own.user += other.own.user;
        self.own.system += other.own.system;
        self.store += other.store;
    }
}

/// CPU time in user space and in the kernel (system calls, the network stack, page faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// What was used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// An MCP Streamable HTTP endpoint on loopback, resolved once so the hot path never resolves.
#[derive(Debug)]
pub struct Endpoint {
    /// The URL as given, for the report.
    pub url: String,
    /// The resolved socket address (always loopback).
    pub addr: SocketAddr,
    /// The `Host` header: hyper's low-level client connection does not add one.
    pub authority: HeaderValue,
    /// Path and query of every request, e.g. `/mcp`.
    pub path: String,
    /// Sent with every request, e.g. `Authorization: Bearer …`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoint {
    /// Parses an `http://` URL and resolves its host, which must be loopback: the benchmark
    /// sends load nowhere else.
    pub async fn resolve(
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> anyhow::Result<Endpoint> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("parsing URL {url}"))?;
        anyhow::ensure!(
            uri.scheme_str() == Some("http"),
            "{url}: only http:// endpoints can be benchmarked (loopback, no TLS)"
        );
        let authority = uri
            .authority()
            .with_context(|| format!("{url} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {url}"))?
            .next()
            .with_context(|| format!("{url} resolves to no address"))?;
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "{url} resolves to {addr}, which is not loopback: the benchmark sends load to this machine only"
        );
        Ok(Endpoint {
            url: url.to_owned(),
            addr,
            authority: HeaderValue::from_str(authority.as_str())?,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            headers,
        })
    }
}

/// Resident memory of a process and all its descendants (nginx's workers are children of
/// its master), read from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// How many processes were summed.
    pub processes: usize,
    /// Sum of `VmRSS` (resident now), KiB.
    pub rss_kib: u64,
    /// Sum of `VmHWM` (each process's peak resident set), KiB: an upper bound of the peak of
    /// the group, since the processes need not peak together.
    pub hwm_kib: u64,
    /// Of `rss_kib`, anonymous memory (`RssAnon`: heap, stacks), KiB.
    pub anon_kib: u64,
    /// Of `rss_kib`, pages of mapped files (`RssFile`: mostly the executable's code that has
    /// run), KiB.
    pub file_kib: u64,
}

impl Memory {
    /// `VmRSS` in MiB with its split, e.g. `57.6 MiB (anon 40.1 + file 17.5)`.
    pub fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        format!(
            "{:.1} MiB (anon {:.1} + file {:.1})",
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.file_kib)
        )
    }
}

/// Memory of `pids` and their descendants; a process that is gone counts as nothing.
pub fn memory(pids: &[u32]) -> anyhow::Result<Memory> {
    let mut total = Memory::default();
    for pid in with_descendants(pids)? {
        if let Some(status) = status_memory(pid) {
            total.processes += 1;
            total.rss_kib += status.rss_kib;
            total.hwm_kib += status.hwm_kib;
            total.anon_kib += status.anon_kib;
            total.file_kib += status.file_kib;
        }
    }
    Ok(total)
}

/// `pids` and every process below them (nginx's workers are children of its master), each
/// once.
fn with_descendants(pids: &[u32]) -> anyhow::Result<Vec<u32>> {
    if pids.is_empty() {
        return Ok(Vec::new());
    }
    let children = children_by_parent()?;
    let mut stack: Vec<u32> = pids.to_vec();
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        found.push(pid);
        if let Some(kids) = children.get(&pid) {
            stack.extend(kids);
        }
    }
    Ok(found)
}

/// CPU time used so far by `pids` and their descendants, from `utime` and `stime` in
/// `/proc/<pid>/stat`, which include the process's threads that have exited; a process that
/// is gone counts as nothing.
pub fn cpu_time(pids: &[u32]) -> anyhow::Result<CpuTime> {
    let (user, system) = with_descendants(pids)?
        .into_iter()
        .filter_map(process_ticks)
        .fold((0u64, 0u64), |(u, s), (pu, ps)| (u + pu, s + ps));
    let hz = clock_ticks_per_second() as f64;
    Ok(CpuTime {
        user: Duration::from_secs_f64(user as f64 / hz),
        system: Duration::from_secs_f64(system as f64 / hz),
    })
}

/// `(utime, stime)` of one process in clock ticks, or `None` if it is gone.
fn process_ticks(pid: u32) -> Option<(u64, u64)> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `(utime, stime)` from the text of a `/proc/<pid>/stat`: `pid (comm) state ppid …`, where
/// comm may hold spaces and parentheses, so the fields are counted after the last ')';
/// `utime` and `stime` are the 12th and 13th there (fields 14 and 15 of proc(5)).
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The unit of `/proc/<pid>/stat`'s times (`USER_HZ`, 100 on Linux's common ABIs).
// The workspace denies unsafe code; sysconf(3) has no safe wrapper in std or libc.
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a name constant and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// One process's `VmRSS`, `VmHWM`, `RssAnon` and `RssFile` in KiB, or `None` if it is gone.
fn status_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    Some(Memory {
        processes: 1,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
    })
}

/// Every process's children, from the parent pid in `/proc/<pid>/stat`.
fn children_by_parent() -> anyhow::Result<HashMap<u32, Vec<u32>>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // exited meanwhile
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses, so split after the
        // last ')'.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(pid);
        }
    }
    Ok(children)
}

#[cfg(test)]
mod tests;
