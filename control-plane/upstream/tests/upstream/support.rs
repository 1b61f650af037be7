//! Test harness: real MCP peers started on free loopback ports (killed on drop), and tiny
//! canned HTTP servers for the failure cases.

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long a peer may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A path from an environment variable that `scripts/lib/tools.sh` exports.
pub fn peer_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(value) if !value.is_empty() => {
            let path = PathBuf::from(value);
            assert!(
                path.exists(),
                "{var}={} does not exist; re-run the peer installation (see below)\n{HOW_TO_INSTALL}",
                path.display()
            );
            path
        }
        _ => panic!("{var} is not set, so this test cannot find its MCP peer.\n{HOW_TO_INSTALL}"),
    }
}

const HOW_TO_INSTALL: &str = "Run scripts/test, or install the pinned peers and export their \
    locations with: repo=$PWD; source scripts/lib/tools.sh; ensure_mcp_peers";

/// The `tests/peers` directory of this crate.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A running peer process; killed (and reaped) on drop.
#[derive(Debug)]
pub struct Peer {
    name: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `command` and waits until every one of `ports` accepts connections.
    pub fn start(name: &str, mut command: Command, ports: &[u16]) -> Peer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        // The temp dir in the command line lets scripts/test's clean-up (`pkill -f $TMPDIR`)
        // find a peer that outlived a killed test process; the peers ignore the flag.
        command
            .arg(format!("--tag={}", dir.path().display()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name} ({command:?}): {e}"));
        let mut peer = Peer {
            name: name.to_owned(),
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = peer.child.try_wait() {
                    panic!(
                        "{} exited ({status}) before listening on {port}:\n{}",
                        peer.name,
                        peer.log()
                    );
                }
                if Instant::now() > deadline {
                    panic!(
                        "{} did not listen on {port} within {START_TIMEOUT:?}:\n{}",
                        peer.name,
                        peer.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        peer
    }

    /// What the peer printed so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `node --require loopback.cjs <script> <args>` with `env`.
pub fn node_peer(
    name: &str,
    script: &Path,
    args: &[&str],
    env: &[(&str, String)],
    ports: &[u16],
) -> Peer {
    let mut command = Command::new(peer_path("PORTCULLIS_PEER_NODE"));
    command
        .arg("--require")
        .arg(peers_dir().join("loopback.cjs"))
        .arg(script)
        .args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    Peer::start(name, command, ports)
}

/// `@modelcontextprotocol/server-everything` in streamableHttp mode; returns it and its URL.
pub fn server_everything() -> (Peer, String) {
    let script = peer_path("PORTCULLIS_PEER_EVERYTHING");
    let port = free_port();
    let peer = node_peer(
        "server-everything",
        &script,
        &["streamableHttp"],
        &[("PORT", port.to_string())],
        &[port],
    );
    (peer, format!("http://127.0.0.1:{port}/mcp"))
}

/// The TS SDK's `simpleStreamableHttp.js --oauth --oauth-strict`; its URLs say `localhost`.
pub fn sdk_oauth_example() -> (Peer, String) {
    let script = peer_path("PORTCULLIS_PEER_SDK_OAUTH_EXAMPLE");
    let mcp_port = free_port();
    let auth_port = free_port();
    let peer = node_peer(
        "sdk-oauth-example",
        &script,
        &["--oauth", "--oauth-strict"],
        &[
            ("MCP_PORT", mcp_port.to_string()),
            ("MCP_AUTH_PORT", auth_port.to_string()),
        ],
        &[mcp_port, auth_port],
    );
    (peer, format!("http://localhost:{mcp_port}/mcp"))
}

/// `tests/peers/python_server.py` (Python `mcp` 2.3.0) with `args`; returns it and its URL.
pub fn python_server(args: &[&str]) -> (Peer, String) {
    let python = peer_path("PORTCULLIS_PEER_PYTHON");
    let port = free_port();
    let mut command = Command::new(python);
    command
        .arg(peers_dir().join("python_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .args(args);
    let peer = Peer::start("python-mcp-server", command, &[port]);
    (peer, format!("http://127.0.0.1:{port}/mcp"))
}

/// A one-response HTTP server: reads a request head, writes `response`, closes. Runs until
/// the test's runtime ends.
pub async fn canned_server(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/mcp")
}

/// A server that accepts connections and never answers.
pub async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}/mcp")
}
