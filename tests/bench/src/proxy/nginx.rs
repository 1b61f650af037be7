//! nginx as the floor of a proxy hop: Debian's nginx (`scripts/lib/nginx.sh` fetches it and
//! exports `PORTCULLIS_NGINX`) run from a temp dir with a config written here, proxying to the
//! upstream over keep-alive connections. Tuned the way one would tune it for an MCP gateway:
//! HTTP/1.1 upstream keep-alive, no response buffering (SSE), no access log, and connections
//! that are never closed for having served too many requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::child::ManagedChild;

/// A running nginx; dropping it stops nginx (SIGTERM: the master stops its workers), then
/// removes its directory.
#[derive(Debug)]
pub struct Nginx {
    /// Declared before `dir`, so it stops before its files go away.
    pub process: ManagedChild,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port><path>`.
    pub url: String,
    /// What `nginx -v` says, e.g. `nginx/1.22.1`.
    pub version: String,
}

/// Where nginx is: the given path (`--nginx`, or `PORTCULLIS_NGINX`).
pub fn binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = given.context(
        "the proxy scenario needs nginx: run it through scripts/bench (which fetches Debian's \
         nginx into .peers/nginx) or set PORTCULLIS_NGINX / --nginx",
    )?;
    anyhow::ensure!(path.is_file(), "nginx not found at {}", path.display());
    Ok(path.to_owned())
}

/// The whole config. `dir` holds the pid file, the error log and the temp paths, so nothing
/// outside it is written (nginx's compiled-in paths point into /var).
pub fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr, workers: usize) -> String {
    let dir = dir.display();
    format!(
        r#"# Written by portcullis-bench (tests/bench/src/proxy/nginx.rs).
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # Clients keep their connections for the whole run (the default closes one after 1,000
    # requests, which would measure reconnects).
    keepalive_requests 1000000;
    keepalive_timeout 300s;

    upstream mcp_upstream {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://mcp_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Streamable HTTP may answer with SSE: pass bytes on as they come.
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

/// Starts nginx on a free loopback port in front of `upstream` (whose requests go to `path`),
/// and waits until it accepts connections.
pub async fn start(
    binary: &Path,
    upstream: SocketAddr,
    path: &str,
    workers: usize,
) -> anyhow::Result<Nginx> {
    let version = version(binary)?;
    let dir = tempfile::Builder::new().prefix("nginx.").tempdir()?;
    // As root, nginx's workers run as `nobody`; let them into the temp paths.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let listen = SocketAddr::from(([127, 0, 0, 1], test_fixtures::free_loopback_port()?));
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), listen, upstream, workers.max(1)))?;
    let error_log = dir.path().join("error.log");
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        // The log for messages before the config is read (the default is under /var/log).
        .arg("-e")
        .arg(&error_log)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut process = ManagedChild::spawn("nginx", command, libc::SIGTERM)?;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            break;
        }
        let failed = match process.exited() {
            Some(status) => Some(format!("nginx exited ({status})")),
            None if Instant::now() > deadline => Some("nginx did not listen within 10 s".into()),
            None => None,
        };
        if let Some(failed) = failed {
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            anyhow::bail!("{failed} on {listen}; {}:\n{log}", error_log.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Nginx {
        process,
        dir,
        url: format!("http://{listen}{path}"),
        version,
    })
}

impl Nginx {
    /// The directory holding the config and the error log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn version(binary: &Path) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .arg("-v")
        .output()
        .with_context(|| format!("running {} -v", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text
        .trim()
        .strip_prefix("nginx version: ")
        .unwrap_or(text.trim())
        .to_owned())
}
