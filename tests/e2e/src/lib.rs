//! Helpers for end-to-end tests: run the `portcullis` binary as a real process on a free
//! loopback port, wait for it, talk plain HTTP to it, and stop it (gently or with SIGKILL).
//!
//! The binary is the one `cargo build` put next to the test executable (`scripts/test` builds
//! it first); set `PORTCULLIS_BIN` to test another build.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is the report

pub mod consent_client;
pub mod dev_admin;
pub mod gateway;
pub mod sdk_client;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where the `portcullis` binary is.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PORTCULLIS_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> → target/<profile>/portcullis
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("portcullis"))
        .expect("target directory");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build -p portcullis`; scripts/test does)",
        path.display()
    );
    path
}

/// A loopback address for a server whose port must be known long before it binds (a load
/// balancer's upstream, a process restarted on its old address): free now, and outside the
/// kernel's ephemeral range, so no `bind(0)` and no outgoing connection of the meantime can
/// take it. Ports are tried from a per-process, per-call starting point in 20000–32767.
pub fn reserved_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_768;
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(nanos)
        .wrapping_add(call.wrapping_mul(104_729)))
        % SPAN;
    for offset in 0..SPAN {
        let port = FIRST + (start + offset * 13) % SPAN;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().expect("local addr");
        }
    }
    free_addr()
}

/// A free loopback address (bound and released; a rare race is retried by the caller).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A running `portcullis` process. Killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Its stderr, captured to a file.
    pub log: PathBuf,
    /// Its stdout, captured to a file.
    pub out: PathBuf,
}

impl Process {
    /// Starts `portcullis <args> --listen <free addr>`, logging to a file under `log_dir`.
    pub fn start(args: &[&str], log_dir: &Path) -> Process {
        Process::start_at(args, log_dir, free_addr())
    }

    /// Starts `portcullis <args> --listen <addr>` (for a restart on the same address).
    pub fn start_at(args: &[&str], log_dir: &Path, addr: SocketAddr) -> Process {
        let log = log_dir.join(format!("portcullis-{}.log", addr.port()));
        let out = log_dir.join(format!("portcullis-{}.out", addr.port()));
        let file = std::fs::File::create(&log).expect("log file");
        let stdout = std::fs::File::create(&out).expect("stdout file");
        let child = Command::new(binary())
            .args(args)
            .arg("--listen")
            .arg(addr.to_string())
            .env("PORTCULLIS_LOG", "info")
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .expect("start portcullis");
        Process {
            child,
            addr,
            log,
            out,
        }
    }

    /// GETs `path`; `None` if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.addr, path)
    }

    /// Waits until `/readyz` answers 200, or fails the test with the process's log.
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("portcullis exited early ({status}):\n{}", self.log_text());
            }
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "portcullis not ready within {within:?}; /readyz says {:?}\n{}",
            self.get("/readyz"),
            self.log_text()
        );
    }

    /// Waits for `/readyz` to answer `status`.
    pub fn wait_readyz(&self, status: u16, within: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.get("/readyz").is_some_and(|(got, _)| got == status) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "/readyz never answered {status} within {within:?}; last {:?}\n{}",
            self.get("/readyz"),
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "portcullis did not exit within {within:?}:\n{}",
            self.log_text()
        );
    }

    /// Kills it abruptly (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM) and waits for its exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait_exit(within)
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `portcullis <args>` to completion with a timeout; returns its status and stderr.
pub fn run(args: &[&str], within: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = dir.path().join("stderr");
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start portcullis");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, std::fs::read_to_string(&err).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portcullis {args:?} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET; `None` when the connection fails.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
