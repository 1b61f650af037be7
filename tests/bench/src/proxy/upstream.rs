//! Starts `bench-upstream` (this crate's second binary, `src/bin/bench-upstream.rs`) as a
//! separate process on loopback and reads the URL it prints.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::child::ManagedChild;

/// A running bench-upstream.
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
    let path = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("this executable has no directory")?
            .join("bench-upstream"),
    };
    anyhow::ensure!(
        path.is_file(),
        "bench-upstream not found at {}: build it with `cargo build --release -p portcullis-bench` \
         (scripts/bench does) or pass --upstream-bin",
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
    command
        .arg("--listen")
        .arg(listen.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(threads) = threads {
        command.arg("--threads").arg(threads.to_string());
    }
    let mut process = ManagedChild::spawn("bench-upstream", command, libc::SIGKILL)?;
    let stdout = process
        .take_stdout()
        .context("bench-upstream stdout is piped")?;
    // The first line is the address; the upstream prints nothing after it, so the pipe is
    // never filled even though nobody reads it again.
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("bench-upstream did not print its address within 10 s")???;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| match process.exited() {
            Some(status) => format!("bench-upstream exited ({status}) before listening"),
            None => format!("bench-upstream printed {line:?} instead of its address"),
        })?
        .to_owned();
    Ok(Upstream { process, url })
}
