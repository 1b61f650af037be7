//! `portcullis dev` as a user runs it: one process, state under `--data-dir`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use portcullis_e2e::{Process, run};
use portcullis_store::{Bucket, EventLog, Key, ReadModelStore};
use portcullis_store_sqlite::SqliteStore;

const READY_WITHIN: Duration = Duration::from_secs(30);

/// What the store under `data_dir` holds: the log head and the live host read models.
async fn stored_state(data_dir: &Path) -> (u64, Vec<(String, serde_json::Value)>) {
    let store =
        SqliteStore::open(&data_dir.join("portcullis.db")).expect("store opens once dev is gone");
    let head = store.head().await.expect("head");
    let hosts = Bucket::new("hosts").expect("valid");
    let mut models = Vec::new();
    for key in store
        .keys(&hosts, Some(&Key::new("host").expect("valid")))
        .await
        .expect("keys")
    {
        let entry = store
            .get(&hosts, &key)
            .await
            .expect("get")
            .expect("listed key has a value");
        models.push((
            key.to_string(),
            serde_json::from_slice(&entry.value).expect("json"),
        ));
    }
    (head, models)
}

#[tokio::test]
async fn dev_keeps_its_state_across_a_sigkill_and_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");

    let mut first = Process::start(&["dev", "--data-dir", data_arg], dir.path());
    first.wait_ready(READY_WITHIN);
    first.kill();
    let (head, hosts) = stored_state(&data).await;
    // Organization, default host assignment, host, bootstrap admin token, the host's
    // token-signing key.
    assert_eq!(head, 5, "events after the first start");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let (key, model) = &hosts[0];
    assert!(key.starts_with("host.default-"), "{key}");
    assert_eq!(model["is_default"], true, "{model}");
    let keys = model["signing_keys"].as_array().expect("signing keys");
    assert_eq!(keys.len(), 1, "{model}");
    assert_eq!(keys[0]["algorithm"], "ES256");
    assert!(
        !model.to_string().contains("sealed"),
        "no private key material in the read model: {model}"
    );

    // Restart on the same data: the same host, no new events, and ready again.
    let mut second = Process::start(&["dev", "--data-dir", data_arg], dir.path());
    second.wait_ready(READY_WITHIN);
    assert!(
        second.log_text().contains(&key["host.".len()..]),
        "{}",
        second.log_text()
    );
    second.kill();
    assert_eq!(stored_state(&data).await, (head, hosts));
}

#[test]
fn dev_makes_its_secrets_once_private_and_prints_the_token_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut first = Process::start(&["dev", "--data-dir", data_arg], dir.path());
    first.wait_ready(READY_WITHIN);
    first.kill();
    let token = std::fs::read_to_string(data.join("admin-token")).expect("token file");
    let key = std::fs::read_to_string(data.join("master-key")).expect("key file");
    assert!(
        token.trim().starts_with("pcat_") && token.trim().len() == 69,
        "{token}"
    );
    for file in ["admin-token", "master-key"] {
        let mode = std::fs::metadata(data.join(file))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert_eq!(
        std::fs::metadata(&data).expect("meta").permissions().mode() & 0o777,
        0o700
    );
    assert!(
        !first.log_text().contains(token.trim()),
        "the token is never logged"
    );
    let printed = std::fs::read_to_string(&first.out).expect("stdout");
    assert!(
        printed.contains(token.trim()),
        "printed once on creation: {printed}"
    );

    let mut second = Process::start(&["dev", "--data-dir", data_arg], dir.path());
    second.wait_ready(READY_WITHIN);
    second.kill();
    assert_eq!(
        std::fs::read_to_string(data.join("admin-token")).unwrap(),
        token
    );
    assert_eq!(
        std::fs::read_to_string(data.join("master-key")).unwrap(),
        key
    );
    let printed = std::fs::read_to_string(&second.out).expect("stdout");
    assert!(
        !printed.contains(token.trim()),
        "not printed again: {printed}"
    );
    assert!(
        !second
            .log_text()
            .contains(key.trim().split(':').nth(1).unwrap())
    );
}

#[test]
fn dev_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut dev = Process::start(&["dev", "--data-dir", data.to_str().unwrap()], dir.path());
    dev.wait_ready(READY_WITHIN);
    let status = dev.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}: {}", dev.log_text());
}

#[test]
fn a_second_dev_on_the_same_data_dir_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut first = Process::start(&["dev", "--data-dir", data_arg], dir.path());
    first.wait_ready(READY_WITHIN);
    let (status, stderr) = run(
        &["dev", "--data-dir", data_arg, "--listen", "127.0.0.1:0"],
        Duration::from_secs(15),
    );
    assert!(!status.success());
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The first one is unharmed.
    assert_eq!(first.get("/readyz").map(|(s, _)| s), Some(200));
}

#[test]
fn bad_settings_are_refused_naming_the_flag_and_its_variable() {
    for (args, expected) in [
        (
            vec!["dev", "--max-staleness", "10"],
            "--max-staleness (env PORTCULLIS_MAX_STALENESS)",
        ),
        (
            vec!["dev", "--stale-wait", "2m"],
            "--stale-wait (env PORTCULLIS_STALE_WAIT)",
        ),
        (
            vec!["dev", "--shutdown-grace", "forever"],
            "--shutdown-grace",
        ),
        (vec!["dev", "--listen", "localhost"], "--listen"),
        (
            vec!["data-plane", "--nats", "http://x:4222"],
            "--nats (env PORTCULLIS_NATS)",
        ),
        (
            vec!["projector", "--nats", "nats://x", "--replicas", "2"],
            "--replicas",
        ),
        (
            vec!["data-plane", "--nats", "nats://x:4222"],
            "--master-key (env PORTCULLIS_MASTER_KEY)",
        ),
        (
            vec![
                "data-plane",
                "--nats",
                "nats://x:4222",
                "--master-key",
                "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ],
            "--public-url (env PORTCULLIS_PUBLIC_URL)",
        ),
        (
            vec!["dev", "--upstream-timeout", "0s"],
            "--upstream-timeout",
        ),
        (vec!["control-plane"], "--nats"),
        (
            vec!["dev", "--otlp-endpoint", "http://user:pw@collector:4317"],
            "--otlp-endpoint (env PORTCULLIS_OTLP_ENDPOINT)",
        ),
    ] {
        let (status, stderr) = run(&args, Duration::from_secs(10));
        assert!(!status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn every_subcommand_documents_every_flag() {
    for sub in ["dev", "control-plane", "data-plane", "projector"] {
        let (status, _) = run(&[sub, "--help"], Duration::from_secs(10));
        assert!(status.success());
    }
    let out = std::process::Command::new(portcullis_e2e::binary())
        .args(["data-plane", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--nats",
        "--namespace",
        "--replicas",
        "--max-staleness",
        "--stale-wait",
        "--listen",
        "--log-format",
        "--log ",
        "--shutdown-grace",
        "--master-key",
        "--master-key-file",
        "--public-url",
        "--allow-private-upstreams",
        "--upstream-timeout",
        "--upstream-idle-timeout",
        "--max-request-bytes",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    for variable in [
        "PORTCULLIS_NATS",
        "PORTCULLIS_NAMESPACE",
        "PORTCULLIS_REPLICAS",
        "PORTCULLIS_MAX_STALENESS",
        "PORTCULLIS_LISTEN",
        "PORTCULLIS_MASTER_KEY",
        "PORTCULLIS_PUBLIC_URL",
        "PORTCULLIS_UPSTREAM_TIMEOUT",
        "PORTCULLIS_MAX_REQUEST_BYTES",
    ] {
        assert!(help.contains(variable), "{variable} missing");
    }
}
