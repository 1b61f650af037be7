//! Runner behaviour on the embedded store that the backend contract suite does not cover:
//! option validation, readiness on an empty log, and the ways a projector stops.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use portcullis_proto::TrustLevel;
use portcullis_proto::encode_event;
use portcullis_store::{CommandId, Entry, NewEvent, Subject, Version, WatchStream};
use portcullis_store_sqlite::SqliteStore;

use super::*;
use crate::test_events::{self, HUMAN, SERVER};

/// A fresh embedded store (kept alive by the returned temp dir).
fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.sqlite")).unwrap();
    (Arc::new(store), dir)
}

fn projector(store: &Arc<SqliteStore>) -> Projector {
    Projector::new(store.clone(), store.clone(), ProjectorOptions::default()).unwrap()
}

async fn append(store: &SqliteStore, subject: &Subject, event: NewEvent, id: &str) -> u64 {
    store
        .append(
            subject,
            Version::NONE,
            &CommandId::parse(id).unwrap(),
            event,
        )
        .await
        .unwrap()
        .sequence
}

fn grant_subject() -> Subject {
    portcullis_proto::subjects::grant(test_events::HOST, HUMAN, SERVER).unwrap()
}

/// Runs the projector until it ends by itself, failing the test after ten seconds.
async fn run_to_end(projector: Projector) -> Result<(), ProjectorError> {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        projector.run(CancellationToken::new()),
    )
    .await
    .unwrap()
}

#[test]
fn buckets_take_the_suffix_and_the_name_must_be_one_token() {
    let buckets = Buckets::new(Some("rebuild")).unwrap();
    assert_eq!(
        buckets.for_kind(ModelKind::Grant).as_str(),
        "grants_rebuild"
    );
    assert_eq!(buckets.projector().as_str(), "projector_rebuild");
    assert_eq!(buckets.read_models().count(), READ_MODEL_BUCKETS.len());
    assert!(Buckets::new(Some("no.dots")).is_err());

    let (store, _dir) = store();
    for bad in ["a.b", "", "has space"] {
        let options = ProjectorOptions {
            name: bad.to_owned(),
            ..ProjectorOptions::default()
        };
        let err = Projector::new(store.clone(), store.clone(), options).unwrap_err();
        assert!(
            matches!(err, ProjectorError::Options(_)),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_log_is_caught_up_at_once() {
    let (store, _dir) = store();
    let projector = projector(&store);
    let mut progress = projector.progress();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    let seen = *progress.wait_for(|p| p.caught_up).await.unwrap();
    assert_eq!(
        seen,
        Progress {
            applied_through: 0,
            head_at_start: 0,
            caught_up: true
        }
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_event_on_the_wrong_subject_stops_the_projector_before_its_checkpoint() {
    let (store, _dir) = store();
    let server = Subject::new(test_events::HOST, "server", SERVER).unwrap();
    let sequence = append(
        &store,
        &server,
        encode_event(test_events::grant_issued(TrustLevel::High)),
        "c1",
    )
    .await;
    let err = run_to_end(projector(&store)).await.unwrap_err();
    assert!(
        matches!(&err, ProjectorError::Fold { sequence: s, source, .. }
            if *s == sequence && matches!(**source, FoldError::WrongAggregate { .. })),
        "{err:?}"
    );
    let buckets = Buckets::new(None).unwrap();
    let checkpoint = store
        .get(
            buckets.projector(),
            &Key::new("checkpoint.read_models").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(checkpoint, None);
}

#[tokio::test]
async fn a_corrupt_read_model_value_stops_the_projector_instead_of_being_overwritten() {
    let (store, _dir) = store();
    append(
        &store,
        &grant_subject(),
        encode_event(test_events::grant_issued(TrustLevel::High)),
        "c1",
    )
    .await;
    let buckets = Buckets::new(None).unwrap();
    let grants = buckets.for_kind(ModelKind::Grant);
    store.ensure_bucket(grants).await.unwrap();
    let key = Key::new(&format!("grant.{}.{HUMAN}.{SERVER}", test_events::HOST)).unwrap();
    store
        .put(grants, &key, Bytes::from_static(b"{oops"), Expect::Any)
        .await
        .unwrap();
    let err = run_to_end(projector(&store)).await.unwrap_err();
    assert!(
        matches!(&err, ProjectorError::Fold { source, .. } if matches!(**source, FoldError::CorruptValue { .. })),
        "{err:?}"
    );
    let value = store.get(grants, &key).await.unwrap().unwrap().value;
    assert_eq!(
        value,
        Bytes::from_static(b"{oops"),
        "left for an operator to see"
    );
}

#[tokio::test]
async fn a_checkpoint_ahead_of_this_projector_is_never_moved_back() {
    let (store, _dir) = store();
    let first = append(
        &store,
        &grant_subject(),
        encode_event(test_events::grant_issued(TrustLevel::High)),
        "c1",
    )
    .await;
    // Another projector of the same name already claims far more.
    let buckets = Buckets::new(None).unwrap();
    store.ensure_bucket(buckets.projector()).await.unwrap();
    let checkpoint_key = Key::new("checkpoint.read_models").unwrap();
    store
        .put(
            buckets.projector(),
            &checkpoint_key,
            Bytes::from_static(br#"{"applied_through":1000}"#),
            Expect::Any,
        )
        .await
        .unwrap();
    let projector = projector(&store);
    let mut progress = projector.progress();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    let seen = *progress.wait_for(|p| p.caught_up).await.unwrap();
    assert_eq!(seen.applied_through, 1000);
    assert!(seen.head_at_start >= first);
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let stored = store
        .get(buckets.projector(), &checkpoint_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.value,
        Bytes::from_static(br#"{"applied_through":1000}"#)
    );
}

/// A read-model store whose next `fail_puts` writes are answered with `Unavailable`; with
/// `written`, they happen anyway (the acknowledgement was lost), else they do not.
#[derive(Debug)]
struct LostAcks {
    inner: Arc<SqliteStore>,
    fail_puts: AtomicU32,
    written: bool,
}

#[async_trait::async_trait]
impl ReadModelStore for LostAcks {
    async fn ensure_bucket(&self, bucket: &Bucket) -> Result<(), KvError> {
        self.inner.ensure_bucket(bucket).await
    }
    async fn get(&self, bucket: &Bucket, key: &Key) -> Result<Option<Entry>, KvError> {
        self.inner.get(bucket, key).await
    }
    async fn put(
        &self,
        bucket: &Bucket,
        key: &Key,
        value: Bytes,
        expect: Expect,
    ) -> Result<u64, KvError> {
        let fail = self
            .fail_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !fail {
            return self.inner.put(bucket, key, value, expect).await;
        }
        if self.written {
            self.inner.put(bucket, key, value, expect).await?;
        }
        Err(KvError::Unavailable {
            context: format!("writing {bucket}/{key}"),
            source: "no answer".into(),
        })
    }
    async fn delete(&self, bucket: &Bucket, key: &Key, expect: Expect) -> Result<(), KvError> {
        self.inner.delete(bucket, key, expect).await
    }
    async fn keys(&self, bucket: &Bucket, prefix: Option<&Key>) -> Result<Vec<Key>, KvError> {
        self.inner.keys(bucket, prefix).await
    }
    async fn watch(&self, bucket: &Bucket) -> Result<WatchStream, KvError> {
        self.inner.watch(bucket).await
    }
    async fn last_revision(&self, bucket: &Bucket) -> Result<u64, KvError> {
        self.inner.last_revision(bucket).await
    }
}

async fn two_grant_events(store: &SqliteStore) -> u64 {
    let subject = grant_subject();
    let first = append(
        store,
        &subject,
        encode_event(test_events::grant_issued(TrustLevel::High)),
        "c1",
    )
    .await;
    store
        .append(
            &subject,
            Version(first),
            &CommandId::parse("c2").unwrap(),
            encode_event(test_events::grant_changed(TrustLevel::Low)),
        )
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn lost_write_acknowledgements_are_retried_and_change_nothing_twice() {
    let (store, _dir) = store();
    let last = two_grant_events(&store).await;
    let flaky = Arc::new(LostAcks {
        inner: store.clone(),
        fail_puts: AtomicU32::new(3),
        written: true,
    });
    let projector =
        Projector::new(store.clone(), flaky.clone(), ProjectorOptions::default()).unwrap();
    let mut progress = projector.progress();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        progress.wait_for(|p| p.applied_through >= last),
    )
    .await
    .unwrap()
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        flaky.fail_puts.load(Ordering::SeqCst),
        0,
        "every failure was hit"
    );

    let buckets = Buckets::new(None).unwrap();
    let key = Key::new(&format!("grant.{}.{HUMAN}.{SERVER}", test_events::HOST)).unwrap();
    let grant = store
        .get(buckets.for_kind(ModelKind::Grant), &key)
        .await
        .unwrap()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&grant.value).unwrap();
    assert_eq!(value["applied_through"], last);
    assert_eq!(value["max_trust_level"], "low");
}

#[tokio::test]
async fn a_store_that_stays_unavailable_stops_the_projector_with_its_error() {
    let (store, _dir) = store();
    two_grant_events(&store).await;
    let flaky = Arc::new(LostAcks {
        inner: store.clone(),
        fail_puts: AtomicU32::new(u32::MAX),
        written: false,
    });
    let options = ProjectorOptions {
        max_transient_failures: 2,
        ..ProjectorOptions::default()
    };
    let projector = Projector::new(store.clone(), flaky, options).unwrap();
    let err = run_to_end(projector).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, ProjectorError::Store { .. }), "{err:?}");
}

/// An event log whose first subscription goes quiet without an error, as a JetStream
/// consumer on a node that died can; later ones work.
struct StallsFirstSubscription {
    inner: Arc<SqliteStore>,
    subscriptions: AtomicU32,
}

#[async_trait::async_trait]
impl EventLog for StallsFirstSubscription {
    async fn append(
        &self,
        subject: &Subject,
        expected: Version,
        command_id: &CommandId,
        event: NewEvent,
    ) -> Result<portcullis_store::Appended, portcullis_store::AppendError> {
        self.inner
            .append(subject, expected, command_id, event)
            .await
    }

    async fn load(&self, subject: &Subject) -> Result<portcullis_store::Loaded, LogError> {
        self.inner.load(subject).await
    }

    async fn head(&self) -> Result<u64, LogError> {
        self.inner.head().await
    }

    async fn subscribe(&self, filter: &SubjectFilter, from: u64) -> Result<EventStream, LogError> {
        if self.subscriptions.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(Box::pin(futures::stream::pending()));
        }
        self.inner.subscribe(filter, from).await
    }
}

#[tokio::test]
async fn a_subscription_that_goes_quiet_with_events_pending_is_opened_again() {
    let (store, _dir) = store();
    let last = two_grant_events(&store).await;
    let log = Arc::new(StallsFirstSubscription {
        inner: store.clone(),
        subscriptions: AtomicU32::new(0),
    });
    let options = ProjectorOptions {
        stall_timeout: Duration::from_millis(100),
        ..ProjectorOptions::default()
    };
    let projector = Projector::new(log.clone(), store.clone(), options).unwrap();
    let mut progress = projector.progress();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(projector.run(shutdown.clone()));
    let reached = tokio::time::timeout(
        Duration::from_secs(5),
        progress.wait_for(|p| p.applied_through == last),
    )
    .await;
    assert!(
        reached.is_ok(),
        "the stalled subscription was never replaced"
    );
    assert_eq!(log.subscriptions.load(Ordering::SeqCst), 2);

    // Idle with nothing pending is not a stall: no further subscription.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(log.subscriptions.load(Ordering::SeqCst), 2);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
