//! Starts `bench-upstream` (`src/bin/bench-upstream.rs`) and `bench-hop` (`src/bin/bench-hop.rs`,
//! the forward-only hop on the gateway's HTTP stack), this crate's other binaries, as separate
//! processes on loopback and reads the URL each prints.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::child::ManagedChild;

/// A running bench-upstream (or bench-hop).
#[derive(Debug)]
pub struct Upstream {
    /// Stopped (SIGKILL) when dropped.
    pub process: ManagedChild,
    /// `http://127.0.0.1:<port>/mcp`.
    pub url: String,
}

/// Where `bench-upstream` is: the given path, or next to this executable (where
/// `cargo build -p portcullis-bench` puts both binaries).
pub fn binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    found("bench-upstream", given, "pass --upstream-bin")
}

/// Where `bench-hop` (the forward-only hop, `src/bin/bench-hop.rs`) is: next to this
/// executable.
pub fn hop_binary() -> anyhow::Result<PathBuf> {
    found("bench-hop", None, "pass --no-hop")
}

/// `given`, or this crate's binary `name` next to this executable; an error saying how to
/// build it (or `otherwise`) when it is not there.
fn found(name: &str, given: Option<&Path>, otherwise: &str) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no directory")?
            .join(name),
    };
    anyhow::ensure!(
        path.is_file(),
        "{name} not found at {}: build it with `cargo build --release -p portcullis-bench` \
         (scripts/bench does) or {otherwise}",
        path.display()
    );
    Ok(path)
}

/// Starts the upstream on `listen` with `threads` worker threads and waits for its address.
pub async fn start(
    binary: &Path,
    listen: SocketAddr,
    threads: Option<usize>,
) -> anyhow::Result<Upstream> {
    let mut command = Command::new(binary);
    command.arg("--listen").arg(listen.to_string());
    if let Some(threads) = threads {
        command.arg("--threads").arg(threads.to_string());
    }
    let (process, url) = spawn_listening("bench-upstream", command).await?;
    Ok(Upstream { process, url })
}

/// Starts `bench-hop` on a free loopback port in front of `upstream` (its origin is taken
/// from the URL; the path stays the client's) with `threads` worker threads.
pub async fn start_hop(binary: &Path, upstream: &str, threads: usize) -> anyhow::Result<Upstream> {
    let uri: hyper::Uri = upstream
        .parse()
        .with_context(|| format!("parsing URL {upstream}"))?;
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().context("the upstream URL has no host")?
    );
    let mut command = Command::new(binary);
    command
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--upstream")
        .arg(origin)
        .arg("--threads")
        .arg(threads.max(1).to_string());
    let (process, url) = spawn_listening("bench-hop", command).await?;
    Ok(Upstream { process, url })
}

/// Spawns `command` (stopped with SIGKILL when dropped) and reads the
/// `listening on <url>` line it prints first.
async fn spawn_listening(
    name: &'static str,
    mut command: Command,
) -> anyhow::Result<(ManagedChild, String)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut process = ManagedChild::spawn(name, command, libc::SIGKILL)?;
    let stdout = process
        .take_stdout()
        .with_context(|| format!("{name} stdout is piped"))?;
    // The first line is the address; the program prints nothing after it, so the pipe is
    // never filled even though nobody reads it again.
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .with_context(|| format!("{name} did not print its address within 10 s"))???;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| match process.exited() {
            Some(status) => format!("{name} exited ({status}) before listening"),
            None => format!("{name} printed {line:?} instead of its address"),
        })?
        .to_owned();
    Ok((process, url))
}
