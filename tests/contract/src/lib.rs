//! The contract suite: one set of behaviours every `EventLog`, `ReadModelStore` and `AuditLog`
//! backend must show, run unchanged against SQLite, a single JetStream node and a 3-node
//! JetStream cluster (see `tests/*.rs`, one file per backend, each expanding `contract_tests!`).
//!
//! Owns: the `Backend` harness trait and one async function per guarantee.
//!
//! Must not: know which backend it runs against; every difference between backends belongs in
//! the backend or in its `Backend` impl, never in an `if` here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a failed expectation is the failure report

pub mod audit;
pub mod projector;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use portcullis_store::{
    AppendError, AuditLog, Bucket, CommandId, EventLog, EventStream, Expect, Key, KvError,
    NewEvent, ReadModelStore, RecordedEvent, Subject, SubjectFilter, Version, WatchEvent,
    WatchStream,
};

pub use audit::{
    a_query_finds_a_hosts_records_under_many_of_other_hosts,
    an_acknowledged_audit_record_survives_a_restart,
    audit_pages_have_no_gaps_or_repeats_while_appends_continue,
    audit_queries_filter_by_every_field_and_never_leak_another_host,
    bad_audit_input_is_rejected_and_writes_nothing,
    concurrent_audit_appends_each_land_exactly_once,
};
pub use projector::{
    a_backend_restart_keeps_read_models_and_the_checkpoint,
    a_projector_restarted_from_its_checkpoint_changes_nothing_twice,
    an_undecodable_event_stops_the_projector, replaying_from_zero_rebuilds_identical_read_models,
    the_projector_catches_up_then_follows_live,
    two_projectors_racing_produce_the_same_read_models_as_one,
};

/// How long any single awaited step may take before the test fails instead of hanging.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Clients of one backend's data.
#[derive(Clone)]
pub struct Stores {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// The read-model store.
    pub kv: Arc<dyn ReadModelStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}

/// One backend under test, isolated from every other test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A new client of the store: a new connection where the backend has connections (on a
    /// cluster, successive clients should reach different nodes).
    async fn connect(&self) -> Stores;

    /// Restarts the store: every client is dropped, the server process(es), if any, are stopped
    /// abruptly and started again on the same data, and the next `connect` reaches the
    /// restarted store. Data must survive.
    async fn restart(&mut self);
}

/// Awaits `future`, failing the test after `STEP_TIMEOUT`.
pub async fn step<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A subject on host `host`.
pub fn subject(host: &str, kind: &str, id: &str) -> Subject {
    Subject::new(host, kind, id).unwrap()
}

/// A command id.
pub fn command(id: &str) -> CommandId {
    CommandId::parse(id).unwrap()
}

/// An event whose payload names itself, so a mix-up shows in the assertion.
pub fn event(label: &str) -> NewEvent {
    NewEvent {
        event_type: "test.v1.Labelled".to_owned(),
        payload: Bytes::from(label.to_owned()),
    }
}

/// A bucket.
pub fn bucket(name: &str) -> Bucket {
    Bucket::new(name).unwrap()
}

/// A key.
pub fn key(name: &str) -> Key {
    Key::new(name).unwrap()
}

/// The next event of a subscription.
pub async fn next_event(stream: &mut EventStream) -> RecordedEvent {
    step("next event", stream.next())
        .await
        .expect("event stream ended")
        .expect("event stream failed")
}

/// The next change of a watch.
pub async fn next_change(stream: &mut WatchStream) -> WatchEvent {
    step("next watch event", stream.next())
        .await
        .expect("watch ended")
        .expect("watch failed")
}

/// Asserts that nothing more arrives on a subscription within a short while.
pub async fn assert_quiet(stream: &mut EventStream) {
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected extra event: {item:?}");
    }
}

/// The labels (payloads) of events, for compact assertions.
pub fn labels(events: &[RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Event log
// ---------------------------------------------------------------------------------------

/// Appended events come back from `load` exactly, in order, with the version of the last one.
pub async fn appended_events_load_back_in_order(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let grant = subject("h1", "grant", "g1");
    let first = stores
        .log
        .append(&grant, Version::NONE, &command("c1"), event("issued"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let second = stores
        .log
        .append(
            &grant,
            Version(first.sequence),
            &command("c2"),
            event("changed"),
        )
        .await
        .unwrap();
    assert!(second.sequence > first.sequence);

    let loaded = stores.log.load(&grant).await.unwrap();
    assert_eq!(loaded.version, Version(second.sequence));
    assert_eq!(labels(&loaded.events), ["issued", "changed"]);
    assert_eq!(loaded.events[0].sequence, first.sequence);
    assert_eq!(loaded.events[0].command_id, command("c1"));
    assert_eq!(loaded.events[0].event_type, "test.v1.Labelled");
    assert_eq!(loaded.events[0].subject, grant);
    assert!(
        loaded.events[0].recorded_at_ms > 1_700_000_000_000,
        "a real clock"
    );

    let empty = stores
        .log
        .load(&subject("h1", "grant", "nobody"))
        .await
        .unwrap();
    assert_eq!(empty.version, Version::NONE);
    assert!(empty.events.is_empty());
    assert_eq!(stores.log.head().await.unwrap(), second.sequence);
}

/// A stale expected version is a typed conflict, and nothing is written.
pub async fn a_stale_append_conflicts_and_writes_nothing(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let server = subject("h1", "server", "s1");
    let first = stores
        .log
        .append(&server, Version::NONE, &command("c1"), event("imported"))
        .await
        .unwrap();

    // Creating an aggregate that already exists.
    let err = stores
        .log
        .append(
            &server,
            Version::NONE,
            &command("c2"),
            event("imported-again"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Conflict {
                expected: Version::NONE,
                ..
            }
        ),
        "{err:?}"
    );

    // Writing at a version the aggregate never had.
    let err = stores
        .log
        .append(
            &server,
            Version(first.sequence + 1000),
            &command("c3"),
            event("ghost"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");

    // Expecting a version on an aggregate that does not exist.
    let err = stores
        .log
        .append(
            &subject("h1", "server", "s2"),
            Version(first.sequence),
            &command("c4"),
            event("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict { .. }), "{err:?}");

    let loaded = stores.log.load(&server).await.unwrap();
    assert_eq!(labels(&loaded.events), ["imported"]);
    assert_eq!(stores.log.head().await.unwrap(), first.sequence);
}

/// Of many writers racing on one version of one aggregate, exactly one wins; each other one gets
/// a conflict. Every writer has its own client (on a cluster, different nodes).
pub async fn concurrent_conflicting_appends_have_exactly_one_winner(backend: &mut dyn Backend) {
    const WRITERS: usize = 8;
    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(backend.connect().await);
    }
    let consent = subject("h1", "consent", "race");
    for round in 0..3 {
        let expected = clients[0].log.load(&consent).await.unwrap().version;
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, stores)| {
                let log = stores.log.clone();
                let barrier = barrier.clone();
                let consent = consent.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    log.append(
                        &consent,
                        expected,
                        &command(&format!("r{round}-w{i}")),
                        event(&format!("r{round}-w{i}")),
                    )
                    .await
                })
            })
            .collect();
        let mut wins = 0;
        let mut conflicts = 0;
        for task in tasks {
            match step("racing append", task).await.unwrap() {
                Ok(appended) => {
                    assert!(!appended.duplicate);
                    wins += 1;
                }
                Err(AppendError::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("a race must end in success or conflict, got {other:?}"),
            }
        }
        assert_eq!((wins, conflicts), (1, WRITERS - 1), "round {round}");
        let loaded = clients[1].log.load(&consent).await.unwrap();
        assert_eq!(loaded.events.len(), round + 1, "one event per round");
    }
}

/// A retried command (same command id) writes one event, even when other commands wrote to the
/// same aggregate in between; the retry learns the original sequence.
pub async fn a_duplicate_command_writes_one_event(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let other_client = backend.connect().await;
    let agent = subject("h1", "agent", "a1");
    let original = stores
        .log
        .append(
            &agent,
            Version::NONE,
            &command("cmd-1"),
            event("registered"),
        )
        .await
        .unwrap();

    // The immediate retry, as after a lost acknowledgement.
    let retry = other_client
        .log
        .append(
            &agent,
            Version::NONE,
            &command("cmd-1"),
            event("registered"),
        )
        .await
        .unwrap();
    assert_eq!(retry.sequence, original.sequence);
    assert!(retry.duplicate);

    // A retry that arrives after the aggregate moved on.
    let later = stores
        .log
        .append(
            &agent,
            Version(original.sequence),
            &command("cmd-2"),
            event("capped"),
        )
        .await
        .unwrap();
    let late_retry = other_client
        .log
        .append(
            &agent,
            Version::NONE,
            &command("cmd-1"),
            event("registered"),
        )
        .await
        .unwrap();
    assert_eq!(late_retry.sequence, original.sequence);
    assert!(late_retry.duplicate);

    let loaded = stores.log.load(&agent).await.unwrap();
    assert_eq!(labels(&loaded.events), ["registered", "capped"]);
    assert_eq!(stores.log.head().await.unwrap(), later.sequence);
}

/// An event over the size limit or with a bad type is rejected, and nothing is written.
pub async fn an_oversized_or_malformed_event_is_rejected(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let host = subject("h1", "host", "h1");
    let huge = NewEvent {
        event_type: "test.v1.Huge".to_owned(),
        payload: Bytes::from(vec![b'x'; portcullis_store::MAX_EVENT_BYTES + 1]),
    };
    let err = stores
        .log
        .append(&host, Version::NONE, &command("c1"), huge)
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Rejected { .. }), "{err:?}");
    let bad_type = NewEvent {
        event_type: "has space".to_owned(),
        payload: Bytes::new(),
    };
    let err = stores
        .log
        .append(&host, Version::NONE, &command("c2"), bad_type)
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Rejected { .. }), "{err:?}");
    assert_eq!(stores.log.head().await.unwrap(), 0);
    assert!(stores.log.load(&host).await.unwrap().events.is_empty());
}

/// A subscription replays matching events from its start sequence in order, then follows live
/// appends, and never shows events outside its filter.
pub async fn a_subscription_replays_then_follows_live(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let writer = backend.connect().await;
    let mut sequences = Vec::new();
    for (host, kind, id, label) in [
        ("h1", "server", "s1", "h1-s1-a"),
        ("h2", "server", "s1", "h2-s1-a"),
        ("h1", "grant", "g1", "h1-g1-a"),
        ("h1", "server", "s1", "h1-s1-b"),
    ] {
        let subject = subject(host, kind, id);
        let version = writer.log.load(&subject).await.unwrap().version;
        let appended = writer
            .log
            .append(&subject, version, &command(label), event(label))
            .await
            .unwrap();
        sequences.push(appended.sequence);
    }

    let h1 = SubjectFilter::host("h1").unwrap();
    let mut replay = stores.log.subscribe(&h1, 1).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut replay).await);
    }
    assert_eq!(labels(&seen), ["h1-s1-a", "h1-g1-a", "h1-s1-b"]);
    assert!(seen.windows(2).all(|w| w[0].sequence < w[1].sequence));

    // From the middle: only events at or after the start sequence.
    let mut from_middle = stores.log.subscribe(&h1, sequences[2]).await.unwrap();
    assert_eq!(labels(&[next_event(&mut from_middle).await]), ["h1-g1-a"]);

    // Wildcard filters across hosts.
    let servers = SubjectFilter::parse("evt.*.server.*").unwrap();
    let mut all_servers = stores.log.subscribe(&servers, 1).await.unwrap();
    let mut server_events = Vec::new();
    for _ in 0..3 {
        server_events.push(next_event(&mut all_servers).await);
    }
    assert_eq!(labels(&server_events), ["h1-s1-a", "h2-s1-a", "h1-s1-b"]);

    // Live: events appended after the subscription caught up arrive, in order, filtered.
    assert_quiet(&mut replay).await;
    let s1 = subject("h1", "server", "s1");
    let mut version = writer.log.load(&s1).await.unwrap().version;
    for i in 0..20 {
        let label = format!("live-{i}");
        let appended = writer
            .log
            .append(&s1, version, &command(&label), event(&label))
            .await
            .unwrap();
        version = Version(appended.sequence);
        let other = format!("other-{i}");
        writer
            .log
            .append(
                &subject("h2", "grant", &other),
                Version::NONE,
                &command(&other),
                event(&other),
            )
            .await
            .unwrap();
    }
    let mut live = Vec::new();
    for _ in 0..20 {
        live.push(next_event(&mut replay).await);
    }
    let expected: Vec<String> = (0..20).map(|i| format!("live-{i}")).collect();
    assert_eq!(labels(&live), expected);
    assert_quiet(&mut replay).await;
}

/// A subscription that starts past the head waits for the next event instead of failing.
pub async fn a_subscription_from_the_future_waits(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let head = stores.log.head().await.unwrap();
    let mut stream = stores
        .log
        .subscribe(&SubjectFilter::all(), head + 1)
        .await
        .unwrap();
    assert_quiet(&mut stream).await;
    let appended = stores
        .log
        .append(
            &subject("h9", "host", "h9"),
            Version::NONE,
            &command("c1"),
            event("created"),
        )
        .await
        .unwrap();
    let got = next_event(&mut stream).await;
    assert_eq!(got.sequence, appended.sequence);
}

// ---------------------------------------------------------------------------------------
// Read models
// ---------------------------------------------------------------------------------------

/// Writes honour their preconditions and revisions grow.
pub async fn read_model_writes_honour_preconditions(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let b = bucket("policy");
    stores.kv.ensure_bucket(&b).await.unwrap();
    stores.kv.ensure_bucket(&b).await.unwrap(); // idempotent
    let k = key("session.h1.s1");

    assert_eq!(stores.kv.get(&b, &k).await.unwrap(), None);
    let r1 = stores
        .kv
        .put(&b, &k, Bytes::from("v1"), Expect::Absent)
        .await
        .unwrap();
    let err = stores
        .kv
        .put(&b, &k, Bytes::from("again"), Expect::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Conflict { .. }), "{err:?}");

    let r2 = stores
        .kv
        .put(&b, &k, Bytes::from("v2"), Expect::Revision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
    let err = stores
        .kv
        .put(&b, &k, Bytes::from("stale"), Expect::Revision(r1))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Conflict { .. }), "{err:?}");

    let entry = stores.kv.get(&b, &k).await.unwrap().unwrap();
    assert_eq!((entry.value, entry.revision), (Bytes::from("v2"), r2));

    let err = stores
        .kv
        .delete(&b, &k, Expect::Revision(r1))
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Conflict { .. }), "{err:?}");
    stores
        .kv
        .delete(&b, &k, Expect::Revision(r2))
        .await
        .unwrap();
    assert_eq!(stores.kv.get(&b, &k).await.unwrap(), None);
    stores.kv.delete(&b, &k, Expect::Any).await.unwrap(); // deleting nothing is fine

    // A deleted key can be created again, with a newer revision.
    let r3 = stores
        .kv
        .put(&b, &k, Bytes::from("v3"), Expect::Absent)
        .await
        .unwrap();
    assert!(r3 > r2);

    let missing = bucket("never-created");
    let err = stores.kv.get(&missing, &k).await.unwrap_err();
    assert!(matches!(err, KvError::NoSuchBucket(_)), "{err:?}");
}

/// The bucket's last revision is that of its newest change, a delete included, and a
/// watcher that has applied it has seen everything.
pub async fn the_last_revision_is_the_newest_change(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let b = bucket("revisions");
    let missing = bucket("never-made");
    let err = stores.kv.last_revision(&missing).await.unwrap_err();
    assert!(matches!(err, KvError::NoSuchBucket(_)), "{err:?}");
    stores.kv.ensure_bucket(&b).await.unwrap();
    assert_eq!(stores.kv.last_revision(&b).await.unwrap(), 0);
    let first = stores
        .kv
        .put(&b, &key("a"), Bytes::from("1"), Expect::Any)
        .await
        .unwrap();
    assert_eq!(stores.kv.last_revision(&b).await.unwrap(), first);
    let second = stores
        .kv
        .put(&b, &key("b"), Bytes::from("2"), Expect::Any)
        .await
        .unwrap();
    assert_eq!(stores.kv.last_revision(&b).await.unwrap(), second);
    stores.kv.delete(&b, &key("a"), Expect::Any).await.unwrap();
    let after_delete = stores.kv.last_revision(&b).await.unwrap();
    assert!(after_delete > second, "{after_delete} after {second}");
    let mut watch = stores.kv.watch(&b).await.unwrap();
    let mut seen = 0;
    loop {
        match next_change(&mut watch).await {
            WatchEvent::Put(entry) => seen = seen.max(entry.revision),
            WatchEvent::Deleted { revision, .. } => seen = seen.max(revision),
            WatchEvent::CaughtUp => break,
        }
    }
    assert!(seen <= after_delete);
    let third = stores
        .kv
        .put(&b, &key("c"), Bytes::from("3"), Expect::Any)
        .await
        .unwrap();
    assert_eq!(stores.kv.last_revision(&b).await.unwrap(), third);
    match next_change(&mut watch).await {
        WatchEvent::Put(entry) => assert_eq!(entry.revision, third),
        other => panic!("expected the put, got {other:?}"),
    }
}

/// Of many writers racing with the same expected revision, exactly one wins.
pub async fn concurrent_read_model_writers_have_exactly_one_winner(backend: &mut dyn Backend) {
    const WRITERS: usize = 6;
    let b = bucket("policy");
    let k = key("snapshot.h1");
    let first = backend.connect().await;
    first.kv.ensure_bucket(&b).await.unwrap();
    let r1 = first
        .kv
        .put(&b, &k, Bytes::from("base"), Expect::Any)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    for i in 0..WRITERS {
        let stores = backend.connect().await;
        let (b, k, barrier) = (b.clone(), k.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            stores
                .kv
                .put(&b, &k, Bytes::from(format!("w{i}")), Expect::Revision(r1))
                .await
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match step("racing put", task).await.unwrap() {
            Ok(_) => winners.push(format!("w{i}")),
            Err(KvError::Conflict { .. }) => {}
            Err(other) => panic!("a race must end in success or conflict, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let value = first.kv.get(&b, &k).await.unwrap().unwrap().value;
    assert_eq!(value, Bytes::from(winners[0].clone()));
}

/// `keys` lists live keys under a prefix, on token boundaries, sorted.
pub async fn keys_are_listed_by_prefix(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let b = bucket("grants");
    stores.kv.ensure_bucket(&b).await.unwrap();
    for k in [
        "grant.h1.u1.s1",
        "grant.h1.u1.s2",
        "grant.h1.u10.s1",
        "grant.h2.u1.s1",
    ] {
        stores
            .kv
            .put(&b, &key(k), Bytes::from("x"), Expect::Any)
            .await
            .unwrap();
    }
    stores
        .kv
        .delete(&b, &key("grant.h1.u1.s2"), Expect::Any)
        .await
        .unwrap();
    let under = stores.kv.keys(&b, Some(&key("grant.h1.u1"))).await.unwrap();
    assert_eq!(under, [key("grant.h1.u1.s1")]);
    let all = stores.kv.keys(&b, None).await.unwrap();
    assert_eq!(
        all,
        [
            key("grant.h1.u1.s1"),
            key("grant.h1.u10.s1"),
            key("grant.h2.u1.s1")
        ]
    );
}

/// A batch write lands every value, in order, each with its own revision, and a watcher sees
/// each as its own change.
pub async fn a_batch_write_lands_every_value_in_order(backend: &mut dyn Backend) {
    let stores = backend.connect().await;
    let b = bucket("sessions");
    stores.kv.ensure_bucket(&b).await.unwrap();
    let before = stores
        .kv
        .put(&b, &key("session.h.s0"), Bytes::from("v0"), Expect::Any)
        .await
        .unwrap();
    let mut watch = stores.kv.watch(&b).await.unwrap();
    assert!(matches!(next_change(&mut watch).await, WatchEvent::Put(_)));
    assert_eq!(next_change(&mut watch).await, WatchEvent::CaughtUp);
    let entries: Vec<(Key, Bytes)> = (1..=50)
        .map(|i| {
            (
                key(&format!("session.h.s{i}")),
                Bytes::from(format!("v{i}")),
            )
        })
        .chain([(key("session.h.s0"), Bytes::from("v0-again"))])
        .collect();
    let last = stores.kv.put_many(&b, entries.clone()).await.unwrap();
    assert!(last > before);
    let mut previous = before;
    for (expected_key, expected_value) in &entries {
        match next_change(&mut watch).await {
            WatchEvent::Put(entry) => {
                assert_eq!(&entry.key, expected_key);
                assert_eq!(&entry.value, expected_value);
                assert!(entry.revision > previous, "revisions grow");
                previous = entry.revision;
            }
            other => panic!("expected a put, got {other:?}"),
        }
    }
    assert_eq!(previous, last);
    let entry = stores
        .kv
        .get(&b, &key("session.h.s0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.value, Bytes::from("v0-again"));
    assert_eq!(
        stores
            .kv
            .keys(&b, Some(&key("session.h")))
            .await
            .unwrap()
            .len(),
        51
    );
}

/// A watcher sees the current value of every key, then `CaughtUp`, then every change in order;
/// a second watcher on another client sees the same history.
pub async fn a_watcher_sees_every_change_in_order(backend: &mut dyn Backend) {
    let writer = backend.connect().await;
    let b = bucket("sessions");
    writer.kv.ensure_bucket(&b).await.unwrap();

    // An empty bucket is caught up at once.
    let mut empty_watch = writer.kv.watch(&b).await.unwrap();
    assert_eq!(next_change(&mut empty_watch).await, WatchEvent::CaughtUp);

    writer
        .kv
        .put(&b, &key("s.a"), Bytes::from("a1"), Expect::Any)
        .await
        .unwrap();
    writer
        .kv
        .put(&b, &key("s.b"), Bytes::from("b1"), Expect::Any)
        .await
        .unwrap();
    writer
        .kv
        .put(&b, &key("s.a"), Bytes::from("a2"), Expect::Any)
        .await
        .unwrap();

    let mut watchers = vec![
        backend.connect().await.kv.watch(&b).await.unwrap(),
        backend.connect().await.kv.watch(&b).await.unwrap(),
    ];
    for watch in &mut watchers {
        // Fold what arrives before `CaughtUp` in order: a lagging node may deliver an older
        // value of a key first, but never after a newer one, and by `CaughtUp` every key holds
        // its value as of the watch's start.
        let mut initial = std::collections::BTreeMap::new();
        let mut revisions = std::collections::BTreeMap::new();
        loop {
            match next_change(watch).await {
                WatchEvent::CaughtUp => break,
                WatchEvent::Put(entry) => {
                    let key = entry.key.to_string();
                    let previous = revisions.insert(key.clone(), entry.revision);
                    assert!(previous < Some(entry.revision), "revisions go forward");
                    initial.insert(key, entry.value);
                }
                WatchEvent::Deleted { .. } => panic!("nothing was deleted yet"),
            }
        }
        assert_eq!(
            initial.into_iter().collect::<Vec<_>>(),
            [
                ("s.a".to_owned(), Bytes::from("a2")),
                ("s.b".to_owned(), Bytes::from("b1"))
            ]
        );
    }

    // Live changes: many, mixed puts and deletes, in order with growing revisions.
    let mut expected = Vec::new();
    for i in 0..30 {
        let k = key(&format!("s.k{}", i % 4));
        if i % 5 == 4 {
            writer.kv.delete(&b, &k, Expect::Any).await.unwrap();
            expected.push(format!("del {k}"));
        } else {
            writer
                .kv
                .put(&b, &k, Bytes::from(format!("v{i}")), Expect::Any)
                .await
                .unwrap();
            expected.push(format!("put {k}=v{i}"));
        }
    }
    // The early watcher on the empty bucket saw none of the initial keys as "initial" state but
    // must see them as live changes; check it too.
    let mut early = Vec::new();
    for _ in 0..3 {
        match next_change(&mut empty_watch).await {
            WatchEvent::Put(entry) => {
                early.push(String::from_utf8_lossy(&entry.value).into_owned())
            }
            other => panic!("expected a put, got {other:?}"),
        }
    }
    assert_eq!(early, ["a1", "b1", "a2"]);
    watchers.push(empty_watch);

    for watch in &mut watchers {
        let mut seen = Vec::new();
        let mut last_revision = 0;
        for _ in 0..expected.len() {
            match next_change(watch).await {
                WatchEvent::Put(entry) => {
                    assert!(entry.revision > last_revision);
                    last_revision = entry.revision;
                    seen.push(format!(
                        "put {}={}",
                        entry.key,
                        String::from_utf8_lossy(&entry.value)
                    ));
                }
                WatchEvent::Deleted { key, revision } => {
                    assert!(revision > last_revision);
                    last_revision = revision;
                    seen.push(format!("del {key}"));
                }
                WatchEvent::CaughtUp => panic!("CaughtUp is sent once"),
            }
        }
        assert_eq!(seen, expected);
    }
}

// ---------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------

/// After an abrupt restart every event and read model is still there, and new appends get
/// sequences after the old ones (never reused).
pub async fn a_restart_keeps_events_and_read_models(backend: &mut dyn Backend) {
    let before = backend.connect().await;
    let grant = subject("h1", "grant", "g1");
    let first = before
        .log
        .append(&grant, Version::NONE, &command("c1"), event("issued"))
        .await
        .unwrap();
    let b = bucket("policy");
    before.kv.ensure_bucket(&b).await.unwrap();
    let revision = before
        .kv
        .put(&b, &key("grant.g1"), Bytes::from("medium"), Expect::Absent)
        .await
        .unwrap();
    drop(before);

    step("restart", backend.restart()).await;

    let after = backend.connect().await;
    let loaded = after.log.load(&grant).await.unwrap();
    assert_eq!(labels(&loaded.events), ["issued"]);
    assert_eq!(loaded.version, Version(first.sequence));
    let entry = after.kv.get(&b, &key("grant.g1")).await.unwrap().unwrap();
    assert_eq!(
        (entry.value, entry.revision),
        (Bytes::from("medium"), revision)
    );

    // The command id is still known (within the duplicate window) …
    let retry = after
        .log
        .append(&grant, Version::NONE, &command("c1"), event("issued"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    // … and new events continue the sequence.
    let next = after
        .log
        .append(&grant, loaded.version, &command("c2"), event("revoked"))
        .await
        .unwrap();
    assert!(next.sequence > first.sequence);
    let r2 = after
        .kv
        .put(
            &b,
            &key("grant.g1"),
            Bytes::from("low"),
            Expect::Revision(revision),
        )
        .await
        .unwrap();
    assert!(r2 > revision);
    let mut replay = after.log.subscribe(&SubjectFilter::all(), 1).await.unwrap();
    let a = next_event(&mut replay).await;
    let b2 = next_event(&mut replay).await;
    assert_eq!(labels(&[a, b2]), ["issued", "revoked"]);
}

/// Expands to one `#[tokio::test]` per contract function, each with a fresh backend from
/// `$make` (an async expression returning something that implements `Backend`).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            appended_events_load_back_in_order,
            a_stale_append_conflicts_and_writes_nothing,
            concurrent_conflicting_appends_have_exactly_one_winner,
            a_duplicate_command_writes_one_event,
            an_oversized_or_malformed_event_is_rejected,
            a_subscription_replays_then_follows_live,
            a_subscription_from_the_future_waits,
            read_model_writes_honour_preconditions,
            the_last_revision_is_the_newest_change,
            concurrent_read_model_writers_have_exactly_one_winner,
            keys_are_listed_by_prefix,
            a_batch_write_lands_every_value_in_order,
            a_watcher_sees_every_change_in_order,
            a_restart_keeps_events_and_read_models,
            the_projector_catches_up_then_follows_live,
            replaying_from_zero_rebuilds_identical_read_models,
            a_projector_restarted_from_its_checkpoint_changes_nothing_twice,
            two_projectors_racing_produce_the_same_read_models_as_one,
            a_backend_restart_keeps_read_models_and_the_checkpoint,
            an_undecodable_event_stops_the_projector,
            an_acknowledged_audit_record_survives_a_restart,
            concurrent_audit_appends_each_land_exactly_once,
            audit_queries_filter_by_every_field_and_never_leak_another_host,
            audit_pages_have_no_gaps_or_repeats_while_appends_continue,
            a_query_finds_a_hosts_records_under_many_of_other_hosts,
            bad_audit_input_is_rejected_and_writes_nothing,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let mut backend = $make.await;
                $crate::$name(&mut backend).await;
            }
        )*
    };
}
