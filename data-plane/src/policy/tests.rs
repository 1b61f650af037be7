//! Pending changes: a decision never reads a value the event log already has a newer change
//! for, on the embedded store with a real projector.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed unwrap is the report

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use portcullis_projector::{Projector, ProjectorOptions};
use portcullis_proto::events::v1::{self as pb, Event, event::Body};
use portcullis_proto::{TrustLevel, encode_event};
use portcullis_store::{CommandId, EventLog, Key, ReadModelStore, Subject, Version};
use portcullis_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::replica::{Replica, ReplicaConfig};

const HOST: &str = "acme-pink-panda-6942";
const HUMAN: &str = "01JD8X3T7Q9B2M4N6P8R0S2T4V";
const SERVER: &str = "01JD8X4A1B2C3D4E5F6G7H8J9K";

fn event(body: Body) -> Event {
    Event {
        meta: Some(pb::EventMeta {
            occurred_at_ms: 1_760_000_000_000,
            actor: Some(pb::Actor {
                kind: Some(pb::actor::Kind::AdminTokenId(
                    "01JD8X0000TOKEN00000000000".into(),
                )),
            }),
            correlation_id: "req-1".into(),
        }),
        body: Some(body),
    }
}

async fn append(store: &SqliteStore, subject: &Subject, version: u64, body: Body) -> u64 {
    store
        .append(
            subject,
            Version(version),
            &CommandId::parse(&format!("c{version}")).unwrap(),
            encode_event(event(body)),
        )
        .await
        .unwrap()
        .sequence
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Runs the projector until it has applied `sequence`, then stops it.
async fn project_through(store: &Arc<SqliteStore>, sequence: u64) {
    let projector =
        Projector::new(store.clone(), store.clone(), ProjectorOptions::default()).unwrap();
    let mut progress = projector.progress();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    tokio::time::timeout(
        Duration::from_secs(5),
        progress.wait_for(|p| p.applied_through >= sequence),
    )
    .await
    .expect("projected in time")
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// An event log that counts its subscriptions and, if asked, lets the first one go quiet
/// without an error, as a JetStream consumer on a node that died can.
struct CountingLog {
    inner: Arc<SqliteStore>,
    subscriptions: AtomicU32,
    stall_first: bool,
}

#[async_trait::async_trait]
impl EventLog for CountingLog {
    async fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: portcullis_store::NewEvent,
    ) -> Result<portcullis_store::Appended, portcullis_store::AppendError> {
        self.inner
            .append(subject, expected, command_id, event)
            .await
    }

    async fn load(
        &self,
        subject: &Subject,
    ) -> Result<portcullis_store::Loaded, portcullis_store::LogError> {
        self.inner.load(subject).await
    }

    async fn head(&self) -> Result<u64, portcullis_store::LogError> {
        self.inner.head().await
    }

    async fn subscribe(
        &self,
        filter: &portcullis_store::SubjectFilter,
        from: u64,
    ) -> Result<portcullis_store::EventStream, portcullis_store::LogError> {
        if self.subscriptions.fetch_add(1, Ordering::SeqCst) == 0 && self.stall_first {
            return Ok(Box::pin(futures::stream::pending()));
        }
        self.inner.subscribe(filter, from).await
    }
}

/// An embedded store with every bucket, and a replica following `log`'s pending changes
/// (checking the projector's checkpoint), fresh and subscribed to the log.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    log: Arc<CountingLog>,
    replica: Replica,
    policy: Policy,
    shutdown: CancellationToken,
}

async fn fixture(stall_first: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("p.db")).unwrap());
    let buckets = Buckets::new(None).unwrap();
    for bucket in buckets.read_models().chain([buckets.projector()]) {
        store.ensure_bucket(bucket).await.unwrap();
    }
    let log = Arc::new(CountingLog {
        inner: store.clone(),
        subscriptions: AtomicU32::new(0),
        stall_first,
    });
    let shutdown = CancellationToken::new();
    let config = ReplicaConfig::new(
        buckets.read_models().cloned().collect(),
        Duration::from_secs(5),
    )
    .with_projection(
        buckets.projector().clone(),
        Key::new("checkpoint.read_models").unwrap(),
    )
    .with_pending_changes(buckets.clone());
    let replica = Replica::start(config, store.clone(), log.clone(), shutdown.clone());
    let policy = Policy::new(replica.clone(), buckets);
    eventually("fresh", || replica.freshness().is_ok()).await;
    // The follower starts at the log's head: anything appended before it subscribed is the
    // replica's catch-up's business, not a pending change.
    eventually("subscribed", || {
        log.subscriptions.load(Ordering::SeqCst) == 1
    })
    .await;
    Fixture {
        _dir: dir,
        store,
        log,
        replica,
        policy,
        shutdown,
    }
}

/// Appends the grant's issue; its log sequence.
async fn issue_grant(store: &SqliteStore, subject: &Subject) -> u64 {
    append(
        store,
        subject,
        0,
        Body::GrantIssued(pb::GrantIssued {
            human_id: HUMAN.into(),
            server_id: SERVER.into(),
            max_trust_level: TrustLevel::High.into(),
        }),
    )
    .await
}

#[tokio::test]
async fn a_recorded_change_holds_reads_of_its_key_until_the_read_models_show_it() {
    let Fixture {
        _dir,
        store,
        replica,
        policy,
        shutdown,
        ..
    } = fixture(false).await;

    // Granted in the log, not yet projected: the read waits instead of saying "no grant".
    let subject = portcullis_proto::subjects::grant(HOST, HUMAN, SERVER).unwrap();
    let issued = issue_grant(&store, &subject).await;
    eventually("the follower read the grant", || {
        replica.pending_log_sequence() >= Some(issued)
    })
    .await;
    let held = policy.grant(HOST, HUMAN, SERVER);
    assert!(
        matches!(held, Err(PolicyError::Pending { sequence, .. }) if sequence == issued),
        "{held:?}"
    );
    project_through(&store, issued).await;
    eventually("the grant is read once projected", || {
        matches!(policy.grant(HOST, HUMAN, SERVER), Ok(Some(_)))
    })
    .await;

    // Revoked in the log: the replica still holds the live grant, but it is not used.
    let revoked = append(
        &store,
        &subject,
        issued,
        Body::GrantRevoked(pb::GrantRevoked {}),
    )
    .await;
    eventually("the follower read the revocation", || {
        replica.pending_log_sequence() >= Some(revoked)
    })
    .await;
    assert!(
        matches!(policy.grant(HOST, HUMAN, SERVER), Err(PolicyError::Pending { sequence, .. }) if sequence == revoked)
    );
    project_through(&store, revoked).await;
    eventually("the revocation is read once projected", || {
        matches!(policy.grant(HOST, HUMAN, SERVER), Ok(None))
    })
    .await;
    // Other keys were never held.
    assert!(matches!(policy.human(HOST, HUMAN), Ok(None)));
    assert!(
        replica
            .metrics_text()
            .contains(&format!("portcullis_policy_log_sequence {revoked}"))
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_follower_whose_subscription_goes_quiet_reads_on_without_losing_an_event() {
    let Fixture {
        _dir,
        store,
        log,
        replica,
        policy,
        shutdown,
    } = fixture(true).await;
    // Recorded while the first subscription is quiet: the next one must start before it.
    let subject = portcullis_proto::subjects::grant(HOST, HUMAN, SERVER).unwrap();
    let issued = issue_grant(&store, &subject).await;
    eventually(
        "the follower read the grant through a new subscription",
        || replica.pending_log_sequence() >= Some(issued),
    )
    .await;
    assert_eq!(log.subscriptions.load(Ordering::SeqCst), 2);
    assert!(matches!(
        policy.grant(HOST, HUMAN, SERVER),
        Err(PolicyError::Pending { .. })
    ));
    shutdown.cancel();
}
